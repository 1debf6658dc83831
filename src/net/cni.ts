// Running CNI plugins for the named networks of `net.d` (CNI spec, SPEC.md "Parameters" and
// "Result"): the plugin named by the configuration's `type` is found in CNI_PATH and executed
// with CNI_COMMAND (ADD on start, DEL on stop and gc), CNI_CONTAINERID (the pod UUID), CNI_NETNS,
// CNI_IFNAME (eth0, eth1 ...) and CNI_PATH in its environment and the configuration on stdin.
// Results of every spec version the Debian plugins speak (0.1.0 to 1.0.0) are read. The plugins
// do their host-side work in the network namespace they start in, so stage0 runs them from its
// main thread while that thread is in the host's network namespace (src/net/pod-network.ts).
import fs from 'node:fs';
import path from 'node:path';

import type { CniNetworkConfig } from './config.js';
import { NetworkSetupError } from './network-error.js';
import { runCommand, type CommandRunner } from './run-command.js';

/** Where Debian's containernetworking-plugins installs them, then the upstream default. */
export const DEFAULT_CNI_PATH = ['/usr/lib/cni', '/opt/cni/bin'];

/** CNI_PATH: the `CNI_PATH` environment variable of tspod when set (as libcni users read it), else the defaults. */
export function cniPath(env: NodeJS.ProcessEnv = process.env): string[] {
  const fromEnv = env.CNI_PATH?.split(':').filter((d) => d !== '');
  return fromEnv !== undefined && fromEnv.length > 0 ? fromEnv : DEFAULT_CNI_PATH;
}

export interface CniInvocation {
  command: 'ADD' | 'DEL';
  containerId: string;
  /** A path to the pod's network namespace; '' for a DEL after the namespace is gone. */
  netns: string;
  ifName: string;
  path: string[];
  config: CniNetworkConfig;
  /** DEL: the ADD's result, passed as `prevResult` (spec 0.4.0 and later). */
  prevResult?: unknown;
}

/** The plugin's environment: the CNI parameters plus PATH (the plugins run iptables). */
export function cniEnvironment(invocation: CniInvocation, base: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  return {
    PATH: base.PATH ?? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    CNI_COMMAND: invocation.command,
    CNI_CONTAINERID: invocation.containerId,
    CNI_NETNS: invocation.netns,
    CNI_IFNAME: invocation.ifName,
    CNI_PATH: invocation.path.join(':'),
  };
}

/** The configuration on the plugin's stdin: as written, plus `prevResult` for a DEL when known. */
export function cniStdin(invocation: CniInvocation): string {
  const withPrev = invocation.command === 'DEL' && invocation.prevResult !== undefined && versionAtLeast(invocation.config.cniVersion, '0.4.0');
  return JSON.stringify(withPrev ? { ...invocation.config, prevResult: invocation.prevResult } : invocation.config);
}

function versionAtLeast(version: string | undefined, min: string): boolean {
  const parse = (v: string): number[] => v.split('.').map((n) => Number(n) || 0);
  const a = parse(version ?? '0.1.0');
  const b = parse(min);
  for (let i = 0; i < 3; i++) if ((a[i] ?? 0) !== (b[i] ?? 0)) return (a[i] ?? 0) > (b[i] ?? 0);
  return true;
}

export function findPlugin(type: string, dirs: readonly string[]): string | undefined {
  // The type is a file name, never a path (CNI spec: "the name of the plugin binary").
  if (type.includes('/') || type === '.' || type === '..') return undefined;
  for (const dir of dirs) {
    const candidate = path.join(dir, type);
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      return candidate;
    } catch {
      // next directory
    }
  }
  return undefined;
}

export interface CniAddress {
  ip: string;
  prefixLength: number;
  gateway?: string;
}

export interface CniResult {
  /** The first IPv4 address on the pod's interface (any interface when none says which). */
  address?: CniAddress;
  nameservers: string[];
  /** The result as the plugin printed it, for DEL's prevResult. */
  raw: unknown;
}

function splitCidr(cidr: unknown): { ip: string; prefixLength: number } | undefined {
  if (typeof cidr !== 'string') return undefined;
  const match = /^([0-9.]+)\/(\d{1,2})$/.exec(cidr);
  return match === null ? undefined : { ip: match[1]!, prefixLength: Number(match[2]) };
}

/** An ADD result (spec 0.1.0-0.2.0 `ip4`, or 0.3.0 and later `ips`/`interfaces`). */
export function parseCniResult(raw: unknown, ifName: string): CniResult {
  const doc = (raw ?? {}) as Record<string, unknown>;
  const dns = (doc.dns ?? {}) as { nameservers?: unknown };
  const nameservers = Array.isArray(dns.nameservers) ? dns.nameservers.filter((s): s is string => typeof s === 'string') : [];
  let address: CniAddress | undefined;
  if (Array.isArray(doc.ips)) {
    const interfaces = Array.isArray(doc.interfaces) ? (doc.interfaces as { name?: unknown; sandbox?: unknown }[]) : [];
    const ips = doc.ips as { address?: unknown; gateway?: unknown; interface?: unknown; version?: unknown }[];
    const v4 = ips.filter((ip) => splitCidr(ip.address) !== undefined);
    const onPod = v4.find((ip) => typeof ip.interface === 'number' && interfaces[ip.interface]?.name === ifName && interfaces[ip.interface]?.sandbox !== undefined);
    const chosen = onPod ?? v4[0];
    if (chosen !== undefined) {
      address = { ...splitCidr(chosen.address)! };
      if (typeof chosen.gateway === 'string') address.gateway = chosen.gateway;
    }
  } else if (doc.ip4 !== undefined) {
    const ip4 = doc.ip4 as { ip?: unknown; gateway?: unknown };
    const split = splitCidr(ip4.ip);
    if (split !== undefined) {
      address = { ...split };
      if (typeof ip4.gateway === 'string') address.gateway = ip4.gateway;
    }
  }
  return { ...(address === undefined ? {} : { address }), nameservers, raw };
}

/** The CNI error a plugin printed (`{"code", "msg", "details"}`), or its raw output. */
function pluginError(stdout: string, stderr: string): string {
  try {
    const doc = JSON.parse(stdout) as { code?: number; msg?: string; details?: string };
    if (typeof doc.msg === 'string') return `${doc.msg}${doc.details ? ` (${doc.details})` : ''}${doc.code === undefined ? '' : ` [CNI error ${doc.code}]`}`;
  } catch {
    // not JSON
  }
  return (stderr.trim() || stdout.trim() || 'no output').slice(0, 2000);
}

/** Runs the plugin; an ADD returns its result. */
export async function invokeCni(invocation: CniInvocation, run: CommandRunner = runCommand): Promise<CniResult | undefined> {
  const { config } = invocation;
  const what = `CNI ${invocation.command} of network ${config.name} for pod ${invocation.containerId}`;
  const plugin = findPlugin(config.type, invocation.path);
  if (plugin === undefined) {
    throw new NetworkSetupError(`${what}: plugin "${config.type}" not found in ${invocation.path.join(':')}`, {
      suggestions: ['apt-get install containernetworking-plugins', 'or set CNI_PATH to the directory of the plugins'],
    });
  }
  const result = await run(plugin, [], cniStdin(invocation), cniEnvironment(invocation));
  if (result.code !== 0) throw new NetworkSetupError(`${what}: ${pluginError(result.stdout, result.stderr)}`);
  if (invocation.command === 'DEL') return undefined;
  let raw: unknown;
  try {
    raw = JSON.parse(result.stdout);
  } catch {
    throw new NetworkSetupError(`${what}: the plugin's result is not JSON: ${result.stdout.slice(0, 200)}`);
  }
  return parseCniResult(raw, invocation.ifName);
}
