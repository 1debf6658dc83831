// Network configurations: CNI network configuration files in `net.d` of both config layers
// (system `/usr/lib/tspod/net.d`, local `/etc/tspod/net.d`): rkt's `*.conf` (rkt-notes.md §6.1:
// one plugin per file) and CNI's configuration lists `*.conflist` (SPEC.md "Network
// Configuration Lists": a chain of plugins), loaded together in lexicographic order of their
// file names; two files of one layer defining one network name are an error, and a local file
// overrides a system one that defines the same name, whatever the extensions. Plus the built-in
// `default` network. Parsing and resolving are pure; `loadNetworkConfigs` is the only function
// that reads files.
//
// The `default` network is a CNI configuration too, so it is configured the way rkt users know:
// a `net.d` file named `default` overrides the built-in one. When it is a `bridge` network with
// `host-local` addresses (the built-in one is), tspod sets it up directly through netlink instead
// of running the plugins: the plugin cycle costs ~60 ms here against ~1 ms (peers.md §(a')).
// Any other `default` (ptp, macvlan ...) runs through the CNI plugins like a named network.
import fs from 'node:fs';
import path from 'node:path';

import type { NetMode } from '../../stage1/contract.js';
import { broadcastOf, formatIPv4, formatSubnet, inSubnet, parseIPv4, parseSubnet, type Subnet } from './addresses.js';
import { NetworkConfigError } from './network-error.js';

export const DEFAULT_NETWORK_NAME = 'default';

/** One CNI network configuration (the CNI spec's "network configuration" format, as rkt read it). */
export interface CniNetworkConfig {
  cniVersion?: string;
  name: string;
  type: string;
  [key: string]: unknown;
}

/** A CNI network configuration list (`.conflist`): plugins run in order for ADD, in reverse for DEL. */
export interface CniNetworkList {
  cniVersion?: string;
  name: string;
  /** Runtimes must not CHECK the list (tspod does not run CHECK at all). */
  disableCheck?: boolean | string;
  /** Plugin configurations; each gets the list's `name` and `cniVersion` (cni.ts pluginConfigs). */
  plugins: CniPluginConfig[];
}

/** One plugin of a list: its `type` and its own keys (`name` and `cniVersion` come from the list). */
export interface CniPluginConfig {
  type: string;
  [key: string]: unknown;
}

export interface LoadedNetwork {
  name: string;
  /** Where it came from: a file path, or `built-in`. */
  source: string;
  config: CniNetworkConfig | CniNetworkList;
}

export const FIREWALL_BACKENDS = ['iptables', 'nftables'] as const;
export type FirewallBackendName = (typeof FIREWALL_BACKENDS)[number];

/**
 * The built-in default network: a bridge with host-local addresses and outbound masquerading.
 * 172.31.0.0/16 is private (RFC 1918), rkt's range for `default-restricted`, away from Docker's
 * 172.17.0.0/16 and libvirt's 192.168.122.0/24.
 */
export const BUILT_IN_DEFAULT: CniNetworkConfig = {
  cniVersion: '0.4.0',
  name: DEFAULT_NETWORK_NAME,
  type: 'bridge',
  bridge: 'tspod0',
  isGateway: true,
  ipMasq: true,
  ipam: { type: 'host-local', subnet: '172.31.0.0/16' },
};

/** A bridge network tspod sets up itself (netlink, its own pool, its own firewall rules). */
export interface DirectNetwork {
  name: string;
  bridge: string;
  subnet: Subnet;
  /** The bridge's address, the pods' default route. */
  gateway: number;
  /** The pool: first and last address handed to pods (inclusive). */
  rangeStart: number;
  rangeEnd: number;
  /** Masquerade traffic from the pods to outside the subnet. */
  ipMasq: boolean;
  mtu?: number;
  /** The firewall tool (`tspod.firewall`); undefined: iptables when installed, else nftables. */
  firewall?: FirewallBackendName;
}

/** One network a pod joins, in interface order (eth0, eth1 ...). */
export type PodNetworkSpec =
  | { kind: 'direct'; name: string; ifName: string; network: DirectNetwork; source: string }
  | {
      kind: 'cni';
      name: string;
      ifName: string;
      config: CniNetworkConfig | CniNetworkList;
      source: string;
      /** `--net=NAME:ARGS`: the `KEY=VALUE;...` pairs, for CNI_ARGS (cni.ts cniArgsOf). */
      args?: string;
    };

// -------------------------------------------------------------------------------------------------
// Parsing (pure)

/** Linux interface names: 1-15 bytes (IFNAMSIZ - 1), no '/', ':' or white space (dev_valid_name). */
export function isValidInterfaceName(name: string): boolean {
  return /^[A-Za-z0-9_.-]{1,15}$/.test(name) && name !== '.' && name !== '..';
}

function parseJsonObject(text: string, source: string): Record<string, unknown> {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new NetworkConfigError(`read network configuration ${source}: not JSON (${(err as Error).message})`, { cause: err });
  }
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) throw new NetworkConfigError(`read network configuration ${source}: not a JSON object`);
  return doc as Record<string, unknown>;
}

/** `name` and `cniVersion`, the keys a plugin configuration and a list share. */
function checkNameAndVersion(config: Record<string, unknown>, source: string): void {
  if (typeof config.name !== 'string' || config.name === '') throw new NetworkConfigError(`read network configuration ${source}: "name" must be a non-empty string`);
  if (config.cniVersion !== undefined && typeof config.cniVersion !== 'string') throw new NetworkConfigError(`read network configuration ${source}: "cniVersion" must be a string`);
  // CNI spec: network names are used in paths (/var/lib/cni/networks/NAME) and as identifiers.
  if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(config.name)) throw new NetworkConfigError(`read network configuration ${source}: network name ${JSON.stringify(config.name)} is not valid (letters, digits, '_', '.', '-')`);
}

/** A CNI network configuration file's text (`.conf`: one plugin); `source` names it in errors. */
export function parseCniConfig(text: string, source: string): CniNetworkConfig {
  const config = parseJsonObject(text, source);
  if ('plugins' in config) {
    // libcni reads .conf files as single plugins too: a list there is a mistake of the file's name.
    throw new NetworkConfigError(`read network configuration ${source}: a configuration list ("plugins") in a .conf file`, {
      suggestions: [`rename it to ${source.replace(/\.conf$/, '')}.conflist`],
    });
  }
  checkNameAndVersion(config, source);
  if (typeof config.type !== 'string' || config.type === '') throw new NetworkConfigError(`read network configuration ${source}: "type" must be a non-empty string`);
  return config as CniNetworkConfig;
}

/** A CNI network configuration list's text (`.conflist`, SPEC.md "Network Configuration Lists"). */
export function parseCniConfigList(text: string, source: string): CniNetworkList {
  const config = parseJsonObject(text, source);
  checkNameAndVersion(config, source);
  // Lists came with spec 0.3.0; without a version the plugins would take 0.1.0, which has no prevResult.
  if (typeof config.cniVersion !== 'string') throw new NetworkConfigError(`read network configuration ${source}: a configuration list needs "cniVersion" (0.3.0 or later)`);
  const plugins = config.plugins;
  if (!Array.isArray(plugins) || plugins.length === 0) {
    throw new NetworkConfigError(`read network configuration ${source}: "plugins" must be a non-empty array`, {
      suggestions: ['a single plugin configuration belongs in a .conf file'],
    });
  }
  for (const [i, plugin] of plugins.entries()) {
    const where = `read network configuration ${source}: plugins[${i}]`;
    if (plugin === null || typeof plugin !== 'object' || Array.isArray(plugin)) throw new NetworkConfigError(`${where} is not a JSON object`);
    const type = (plugin as Record<string, unknown>).type;
    if (typeof type !== 'string' || type === '') throw new NetworkConfigError(`${where}: "type" must be a non-empty string`);
  }
  const disableCheck = config.disableCheck;
  if (disableCheck !== undefined && typeof disableCheck !== 'boolean' && disableCheck !== 'true' && disableCheck !== 'false') {
    throw new NetworkConfigError(`read network configuration ${source}: "disableCheck" must be true or false`);
  }
  return config as unknown as CniNetworkList;
}

/** A `net.d` file by its extension: `.conflist` is a list, anything else (`.conf`) one plugin. */
export function parseNetworkFile(text: string, source: string): CniNetworkConfig | CniNetworkList {
  return source.endsWith('.conflist') ? parseCniConfigList(text, source) : parseCniConfig(text, source);
}

/**
 * A `bridge` + `host-local` configuration as a network tspod sets up itself; undefined when the
 * configuration needs the plugins (another type, another IPAM, several ranges, routes, IPv6).
 */
export function directNetworkOf(config: CniNetworkConfig | CniNetworkList, source: string): DirectNetwork | undefined {
  // A list chains plugins after the bridge (tuning, firewall ...): only the plugins can run it.
  if ('plugins' in config || config.type !== 'bridge') return undefined;
  const ipam = config.ipam as Record<string, unknown> | undefined;
  if (ipam === undefined || ipam === null || typeof ipam !== 'object' || ipam.type !== 'host-local') return undefined;
  // Only the single-subnet form of host-local (its "subnet", "rangeStart", "rangeEnd", "gateway").
  if (ipam.ranges !== undefined || ipam.routes !== undefined || typeof ipam.subnet !== 'string') return undefined;
  if (config.ipMasq !== undefined && typeof config.ipMasq !== 'boolean') throw new NetworkConfigError(`network ${config.name} (${source}): "ipMasq" must be true or false`);
  const where = `network ${config.name} (${source})`;
  const subnet = parseSubnet(ipam.subnet, `${where}: ipam.subnet`);
  const address = (key: string, fallback: number): number => {
    const value = ipam[key];
    if (value === undefined) return fallback;
    if (typeof value !== 'string') throw new NetworkConfigError(`${where}: ipam.${key} must be a string`);
    const n = parseIPv4(value, `${where}: ipam.${key}`);
    if (!inSubnet(subnet, n) || n === subnet.base || n === broadcastOf(subnet)) {
      throw new NetworkConfigError(`${where}: ipam.${key} ${value} is not a host address of ${formatSubnet(subnet)}`);
    }
    return n;
  };
  // host-local's defaults: the gateway is the subnet's first address, the range the rest.
  const gateway = address('gateway', subnet.base + 1);
  const rangeStart = address('rangeStart', subnet.base + 1);
  const rangeEnd = address('rangeEnd', broadcastOf(subnet) - 1);
  if (rangeStart > rangeEnd) throw new NetworkConfigError(`${where}: ipam.rangeStart ${formatIPv4(rangeStart)} is after ipam.rangeEnd ${formatIPv4(rangeEnd)}`);
  const bridge = config.bridge ?? 'cni0';
  if (typeof bridge !== 'string' || !isValidInterfaceName(bridge)) throw new NetworkConfigError(`${where}: "bridge" ${JSON.stringify(bridge)} is not a valid interface name (1-15 letters, digits, '_', '.', '-')`);
  const mtu = config.mtu;
  if (mtu !== undefined && (typeof mtu !== 'number' || !Number.isInteger(mtu) || mtu < 576 || mtu > 65535)) throw new NetworkConfigError(`${where}: "mtu" must be an integer from 576 to 65535`);
  const extension = config.tspod as Record<string, unknown> | undefined;
  const firewall = extension?.firewall;
  if (firewall !== undefined && !FIREWALL_BACKENDS.includes(firewall as FirewallBackendName)) {
    throw new NetworkConfigError(`${where}: "tspod.firewall" must be one of ${FIREWALL_BACKENDS.join(', ')}`);
  }
  const network: DirectNetwork = { name: config.name, bridge, subnet, gateway, rangeStart, rangeEnd, ipMasq: config.ipMasq !== false };
  if (mtu !== undefined) network.mtu = mtu as number;
  if (firewall !== undefined) network.firewall = firewall as FirewallBackendName;
  return network;
}

/** The networks of `--net`, in interface order; undefined for host and none (no pod network). */
export function resolvePodNetworks(mode: NetMode, configs: ReadonlyMap<string, LoadedNetwork>): PodNetworkSpec[] | undefined {
  if (mode.kind === 'host' || mode.kind === 'none') return undefined;
  const names = mode.kind === 'default' ? [DEFAULT_NETWORK_NAME] : mode.names;
  return names.map((name, i): PodNetworkSpec => {
    const loaded = configs.get(name) ?? (name === DEFAULT_NETWORK_NAME ? { name, source: 'built-in', config: BUILT_IN_DEFAULT } : undefined);
    if (loaded === undefined) {
      const known = [...configs.keys()].filter((n) => n !== DEFAULT_NETWORK_NAME);
      throw new NetworkConfigError(`--net=${names.join(',')}: no network named "${name}" in net.d`, {
        suggestions: [known.length > 0 ? `known networks: ${known.join(', ')}` : 'write a CNI configuration for it to /etc/tspod/net.d/NAME.conf (or the --local-config dir)'],
      });
    }
    const ifName = `eth${i}`;
    const args = mode.kind === 'named' ? mode.cniArgs?.[name] : undefined;
    const direct = name === DEFAULT_NETWORK_NAME ? directNetworkOf(loaded.config, loaded.source) : undefined;
    if (direct !== undefined && args !== undefined) {
      // run-args refuses `default:ARGS` already; this guards the record a foreign tool wrote.
      throw new NetworkConfigError(`--net=${name}:${args}: the default network is not run by CNI plugins and takes no CNI arguments`);
    }
    return direct !== undefined
      ? { kind: 'direct', name, ifName, network: direct, source: loaded.source }
      : { kind: 'cni', name, ifName, config: loaded.config, source: loaded.source, ...(args === undefined ? {} : { args }) };
  });
}

// -------------------------------------------------------------------------------------------------
// Loading

export interface ConfigLayers {
  systemConfig: string;
  localConfig: string;
}

/** The `*.conf` and `*.conflist` files of one layer's `net.d`, in lexicographic order; none when the directory is absent. */
function confFiles(layerDir: string): string[] {
  const dir = path.join(layerDir, 'net.d');
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') return [];
    throw err;
  }
  return names.filter((n) => n.endsWith('.conf') || n.endsWith('.conflist')).sort().map((n) => path.join(dir, n));
}

/**
 * Every network of both layers by name. Within a layer, two files defining one name are an
 * error (also a `.conf` and a `.conflist`); the local layer's definition of a name replaces the
 * system layer's (also a `.conf` by a `.conflist` and the reverse).
 */
export function loadNetworkConfigs(layers: ConfigLayers): Map<string, LoadedNetwork> {
  const result = new Map<string, LoadedNetwork>();
  for (const layerDir of [layers.systemConfig, layers.localConfig]) {
    const seen = new Map<string, string>();
    for (const file of confFiles(layerDir)) {
      const config = parseNetworkFile(fs.readFileSync(file, 'utf8'), file);
      const other = seen.get(config.name);
      if (other !== undefined) throw new NetworkConfigError(`network ${config.name} is defined twice: ${other} and ${file}`, { suggestions: [`remove one of them`] });
      seen.set(config.name, file);
      result.set(config.name, { name: config.name, source: file, config });
    }
  }
  return result;
}
