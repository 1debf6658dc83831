// A pod's network record, `net-info.json` in the pod directory (rkt's file name): written by
// stage0 before it creates anything for the pod's networks and again once they are up, so that
// `list`/`status` show the networks and addresses, and the exit path or `gc` can undo exactly
// what was made, also after kill -9 of `tspod run`. Kept free of heavy imports: `list` reads it.
import fs from 'node:fs';
import path from 'node:path';

import type { CniNetworkConfig, CniNetworkList, FirewallBackendName } from './config.js';
import type { ForwardedPort } from './firewall.js';

export const NET_INFO_FILE = 'net-info.json';
export const NET_INFO_VERSION = 1;

export interface NetInfoNetwork {
  name: string;
  kind: 'direct' | 'cni';
  /** The pod's interface (eth0, eth1 ...). */
  ifName: string;
  /** The pod's address on this network, once known. */
  ip?: string;
  prefixLength?: number;
  gateway?: string;
  /** direct: the bridge, the host end of the veth pair, and the lease file. */
  bridge?: string;
  hostVeth?: string;
  lease?: string;
  /**
   * cni: what the ADD got, which a DEL must get the same (the configuration, one plugin or a
   * list, CNI_PATH and CNI_ARGS), and its result: the chain's last one once the ADD is done, the
   * latest plugin's while it runs (DEL's prevResult, also after a kill -9 in the middle).
   */
  config?: CniNetworkConfig | CniNetworkList;
  cniPath?: string[];
  cniArgs?: string;
  result?: unknown;
  /** cni: a failed ADD already ran its cleanup DEL (cni.ts addNetwork): nothing is left to delete. */
  deleted?: boolean;
}

export interface NetInfo {
  version: number;
  uuid: string;
  /** `setting-up` while stage0 creates things, `up` once the pod's networks are ready, `down` once removed. */
  state: 'setting-up' | 'up' | 'down';
  networks: NetInfoNetwork[];
  /** The firewall tool the pod's rules were added with (absent: no rules). */
  firewall?: FirewallBackendName;
  ports: ForwardedPort[];
}

export function netInfoPath(podDir: string): string {
  return path.join(podDir, NET_INFO_FILE);
}

/** The record, or undefined when the pod has none (host or none networking, or it never got that far). */
export function readNetInfo(podDir: string): NetInfo | undefined {
  let text: string;
  try {
    text = fs.readFileSync(netInfoPath(podDir), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') return undefined;
    throw err;
  }
  try {
    const info = JSON.parse(text) as NetInfo;
    return info.version === NET_INFO_VERSION && Array.isArray(info.networks) ? info : undefined;
  } catch {
    return undefined; // torn by a crash between write and rename cannot happen (atomic); foreign: ignore
  }
}

/** api/v1 NetInfo entries (`list --json`, `status --json`): the networks that have an address. */
export function apiNetworks(info: NetInfo | undefined): { net_name: string; iface_name: string; ip: string }[] {
  if (info === undefined || info.state !== 'up') return [];
  return info.networks.filter((n) => n.ip !== undefined).map((n) => ({ net_name: n.name, iface_name: n.ifName, ip: n.ip! }));
}
