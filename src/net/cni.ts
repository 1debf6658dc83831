// Running CNI plugins for the named networks of `net.d` (CNI spec, SPEC.md "Parameters" and
// "Result"): the plugin named by the configuration's `type` is found in CNI_PATH and executed
// with CNI_COMMAND (ADD on start, DEL on stop and gc), CNI_CONTAINERID (the pod UUID), CNI_NETNS,
// CNI_IFNAME (eth0, eth1 ...), CNI_PATH and, with `--net=NAME:ARGS`, CNI_ARGS in its environment
// and the configuration on stdin. A network is one plugin (`.conf`) or a chain of them
// (`.conflist`, SPEC.md "Network Configuration Lists"): `addNetwork` and `delNetwork` run the
// chain, threading each plugin's result into the next as `prevResult`.
// Results of every spec version the Debian plugins speak (0.1.0 to 1.0.0) are read. The plugins
// do their host-side work in the network namespace they start in, so stage0 runs them from its
// main thread while that thread is in the host's network namespace (src/net/pod-network.ts).

import type { CniNetworkConfig, CniNetworkList } from './config.js';
import { NetworkSetupError } from './network-error.js';
import { firstExecutable, runCommand, type CommandRunner } from './run-command.js';

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
  /**
   * ADD of a chain's second and later plugins: the previous plugin's result (spec 0.3.0 and
   * later); DEL: the ADD's result (spec 0.4.0 and later). Passed as `prevResult`.
   */
  prevResult?: unknown;
  /** CNI_ARGS (`IgnoreUnknown=1;IP=10.1.2.3`), from `--net=NAME:ARGS`. */
  args?: string;
  /** In errors: which plugin of a chain (`plugin 2 of 3 (tuning)`). */
  label?: string;
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
    ...(invocation.args === undefined ? {} : { CNI_ARGS: invocation.args }),
  };
}

/**
 * The configuration on the plugin's stdin: as written, plus `prevResult` when known and the
 * configuration's version has it (ADD: 0.3.0, the version of configuration lists; DEL: 0.4.0).
 */
export function cniStdin(invocation: CniInvocation): string {
  const since = invocation.command === 'ADD' ? '0.3.0' : '0.4.0';
  const withPrev = invocation.prevResult !== undefined && versionAtLeast(invocation.config.cniVersion, since);
  return JSON.stringify(withPrev ? { ...invocation.config, prevResult: invocation.prevResult } : invocation.config);
}

/**
 * CNI_ARGS for `--net=NAME:ARGS` (rkt's form, `KEY=VALUE;KEY2=VALUE2`): prefixed with
 * `IgnoreUnknown=1`, as rkt and libcni users do, so a plugin of the chain that knows no key (only
 * host-local reads `IP`) does not fail (CONVENTIONS.md "CNI_ARGS"); unless ARGS sets it itself.
 */
export function cniArgsOf(args: string | undefined): string | undefined {
  if (args === undefined || args === '') return undefined;
  return args.split(';').some((pair) => pair.split('=')[0] === 'IgnoreUnknown') ? args : `IgnoreUnknown=1;${args}`;
}

export function versionAtLeast(version: string | undefined, min: string): boolean {
  const parse = (v: string): number[] => v.split('.').map((n) => Number(n) || 0);
  const a = parse(version ?? '0.1.0');
  const b = parse(min);
  for (let i = 0; i < 3; i++) if ((a[i] ?? 0) !== (b[i] ?? 0)) return (a[i] ?? 0) > (b[i] ?? 0);
  return true;
}

export function findPlugin(type: string, dirs: readonly string[]): string | undefined {
  // The type is a file name, never a path (CNI spec: "the name of the plugin binary").
  if (type.includes('/') || type === '.' || type === '..') return undefined;
  return firstExecutable(type, dirs);
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

/** For messages: `CNI ADD of network NAME, plugin 2 of 3 (tuning), for pod UUID`. */
function describeCall(command: CniInvocation['command'], network: string, label: string | undefined, containerId: string): string {
  return `CNI ${command} of network ${network}${label === undefined ? '' : `, ${label},`} for pod ${containerId}`;
}

function pluginNotFound(what: string, type: string, dirs: readonly string[]): NetworkSetupError {
  return new NetworkSetupError(`${what}: plugin "${type}" not found in ${dirs.join(':')}`, {
    suggestions: ['apt-get install containernetworking-plugins', 'or set CNI_PATH to the directory of the plugins'],
  });
}

/** Runs the plugin; an ADD returns its result. */
export async function invokeCni(invocation: CniInvocation, run: CommandRunner = runCommand): Promise<CniResult | undefined> {
  const { config } = invocation;
  const what = describeCall(invocation.command, config.name, invocation.label, invocation.containerId);
  const plugin = findPlugin(config.type, invocation.path);
  if (plugin === undefined) throw pluginNotFound(what, config.type, invocation.path);
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

// -------------------------------------------------------------------------------------------------
// Networks: a plugin or a chain of them

/** Whether a network configuration is a list (`.conflist`). */
export function isNetworkList(config: CniNetworkConfig | CniNetworkList): config is CniNetworkList {
  return Array.isArray((config as CniNetworkList).plugins);
}

/**
 * The configuration each plugin of a network gets, in ADD order: a `.conf` as written; the
 * plugins of a list with the list's `name` and `cniVersion` (SPEC.md: "the runtime MUST replace
 * the name and cniVersion fields in each individual network configuration in the list").
 */
export function pluginConfigs(config: CniNetworkConfig | CniNetworkList): CniNetworkConfig[] {
  if (!isNetworkList(config)) return [config];
  return config.plugins.map((plugin) => ({ ...plugin, name: config.name, ...(config.cniVersion === undefined ? {} : { cniVersion: config.cniVersion }) }) as CniNetworkConfig);
}

export interface CniNetworkInvocation {
  containerId: string;
  netns: string;
  ifName: string;
  path: string[];
  network: CniNetworkConfig | CniNetworkList;
  /** CNI_ARGS, the same for every plugin and for ADD and DEL (cniArgsOf). */
  args?: string;
}

const labelOf = (configs: readonly CniNetworkConfig[], i: number): string | undefined => (configs.length === 1 ? undefined : `plugin ${i + 1} of ${configs.length} (${configs[i]!.type})`);

/** Why a network's ADD failed, and whether the DEL that cleaned up after it succeeded. */
export class CniAddError extends NetworkSetupError {
  /** The index of the failing plugin. */
  failedPlugin = 0;
  /** Whether the cleanup DEL succeeded (nothing of the network is left). */
  cleanedUp = false;
  /** The last result the chain got before the failure (for a later DEL's prevResult). */
  lastResult: unknown;
}

/**
 * ADD of a network: each plugin in order, the previous plugin's result as `prevResult`; the last
 * result is the network's (`onResult` sees each one, for the record). On a failure, DEL runs for
 * every plugin of the list in reverse order (delNetwork), as SPEC.md says a runtime handling the
 * failure should ("for all plugins in the list, even if some were not called during the ADD
 * action"), with the last good result; a CniAddError names the failing plugin and says whether
 * that cleanup worked.
 */
export async function addNetwork(invocation: CniNetworkInvocation, run: CommandRunner = runCommand, onResult?: (raw: unknown) => void): Promise<CniResult> {
  const configs = pluginConfigs(invocation.network);
  // Every plugin of the chain is looked up first: a missing one fails before anything exists.
  for (const [i, config] of configs.entries()) {
    if (findPlugin(config.type, invocation.path) === undefined) {
      throw pluginNotFound(describeCall('ADD', config.name, labelOf(configs, i), invocation.containerId), config.type, invocation.path);
    }
  }
  let prevResult: unknown;
  let result: CniResult | undefined;
  for (const [i, config] of configs.entries()) {
    try {
      result = await invokeCni(
        {
          command: 'ADD',
          containerId: invocation.containerId,
          netns: invocation.netns,
          ifName: invocation.ifName,
          path: invocation.path,
          config,
          ...(prevResult === undefined ? {} : { prevResult }),
          ...(invocation.args === undefined ? {} : { args: invocation.args }),
          ...(labelOf(configs, i) === undefined ? {} : { label: labelOf(configs, i)! }),
        },
        run,
      );
    } catch (err) {
      const failure = err as Error;
      let cleanup: unknown;
      try {
        await delNetwork({ ...invocation, ...(prevResult === undefined ? {} : { prevResult }) }, run);
      } catch (delErr) {
        cleanup = delErr;
      }
      const message = cleanup === undefined ? failure.message : `${failure.message}; the cleanup DEL failed too: ${(cleanup as Error).message}`;
      const suggestions = cleanup !== undefined ? ['tspod gc'] : failure instanceof NetworkSetupError ? failure.suggestions : [];
      const error = new CniAddError(message, { cause: failure, suggestions });
      error.failedPlugin = i;
      error.cleanedUp = cleanup === undefined;
      error.lastResult = prevResult;
      throw error;
    }
    prevResult = result!.raw;
    onResult?.(prevResult);
  }
  return result!;
}

/**
 * DEL of a network: the plugins in reverse order, each with the ADD's result as `prevResult`
 * (when known; SPEC.md: it "may be omitted for DEL if not available"). Best effort: a failing
 * plugin does not stop the others, and every failure is reported, each naming its plugin.
 * SPEC.md ("Network Configuration List Error Handling") and libcni stop the list at the first
 * failure instead; for a teardown that would leave the earlier plugins' state (the lease, the
 * veth, iptables rules) behind for good whenever one plugin's DEL keeps failing (a plugin
 * removed from CNI_PATH), and the plugins' DELs are independent and idempotent. The pod's
 * record then stays up, so a later `tspod gc` runs the whole DEL again.
 */
export async function delNetwork(invocation: CniNetworkInvocation & { prevResult?: unknown }, run: CommandRunner = runCommand): Promise<void> {
  const configs = pluginConfigs(invocation.network);
  const errors: Error[] = [];
  for (let i = configs.length - 1; i >= 0; i--) {
    try {
      await invokeCni(
        {
          command: 'DEL',
          containerId: invocation.containerId,
          netns: invocation.netns,
          ifName: invocation.ifName,
          path: invocation.path,
          config: configs[i]!,
          ...(invocation.prevResult === undefined ? {} : { prevResult: invocation.prevResult }),
          ...(invocation.args === undefined ? {} : { args: invocation.args }),
          ...(labelOf(configs, i) === undefined ? {} : { label: labelOf(configs, i)! }),
        },
        run,
      );
    } catch (err) {
      errors.push(err as Error);
    }
  }
  if (errors.length === 1) throw errors[0]!;
  if (errors.length > 1) throw new NetworkSetupError(errors.map((e) => e.message).join('; '), { cause: errors[0], suggestions: ['tspod gc'] });
}
