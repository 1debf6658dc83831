// Value parsers for the flags of `tspod run` / `tspod prepare` (rkt's rkt/cli_apps.go and
// rkt/run.go flag types): volumes, mounts, ports, networks, DNS, environment pairs, capability
// and seccomp sets, resource quantities. Pure; every failure is a UsageError naming the flag.

import { isIP } from 'node:net';
import { isAbsolute } from 'node:path';

import { isACIdentifier, isACName, parseQuantity, type EnvironmentVariable, type ExposedPort, type Volume } from '../appc/index.js';
import { LINUX_CAPABILITIES } from '../appc/linux-capabilities.js';
import { UsageError } from '../errors.js';
import type { NetMode } from '../../stage1/contract.js';

/** Environment variable names as appc's environment type accepts them (schema/types/environment.go). */
export const ENV_NAME_PATTERN = /^[A-Za-z_][A-Za-z0-9_.-]*$/;

/** `--mount volume=NAME,target=PATH`. */
export interface MountFlag {
  volume: string;
  target: string;
}

/** `--seccomp mode=retain|remove[,errno=E],syscalls...`, as the appc seccomp isolators take it. */
export interface SeccompFlag {
  mode: 'retain' | 'remove';
  errno?: string;
  set: string[];
}

function fail(flag: string, value: string, problem: string, suggestions: string[] = []): never {
  throw new UsageError(`--${flag} ${JSON.stringify(value)}: ${problem}`, { suggestions });
}

/** `--flag`, `--flag=true`, `--flag=false` (Go strconv.ParseBool spellings). */
export function parseBool(flag: string, value: string): boolean {
  if (['1', 't', 'T', 'true', 'TRUE', 'True'].includes(value)) return true;
  if (['0', 'f', 'F', 'false', 'FALSE', 'False'].includes(value)) return false;
  return fail(flag, value, 'must be true or false');
}

export function parseInteger(flag: string, value: string, min: number, max: number): number {
  if (!/^[+-]?[0-9]+$/.test(value)) fail(flag, value, `must be an integer in ${min}..${max}`);
  const n = Number(value);
  if (n < min || n > max) fail(flag, value, `must be an integer in ${min}..${max}`);
  return n;
}

/** `NAME=VALUE`; the value may contain `=` and be empty. */
export function parseEnvPair(flag: string, value: string): EnvironmentVariable {
  const eq = value.indexOf('=');
  if (eq <= 0) fail(flag, value, 'must have the form NAME=VALUE');
  const name = value.slice(0, eq);
  if (!ENV_NAME_PATTERN.test(name)) fail(flag, value, `"${name}" is not a valid environment variable name`);
  return { name, value: value.slice(eq + 1) };
}

/** `NAME=VALUE` for annotations (NAME an AC identifier). */
export function parseAnnotationPair(flag: string, value: string): { name: string; value: string } {
  const eq = value.indexOf('=');
  if (eq <= 0) fail(flag, value, 'must have the form NAME=VALUE');
  const name = value.slice(0, eq);
  if (!isACIdentifier(name)) fail(flag, value, `"${name}" must be an ac identifier (lowercase, e.g. example.com/owner)`);
  return { name, value: value.slice(eq + 1) };
}

/** `NAME=VALUE` for user labels and user annotations (free-form names). */
export function parseUserPair(flag: string, value: string): [string, string] {
  const eq = value.indexOf('=');
  if (eq <= 0) fail(flag, value, 'must have the form NAME=VALUE');
  return [value.slice(0, eq), value.slice(eq + 1)];
}

/** `key=value,key=value` pairs after an optional leading bare word (`--volume NAME,kind=...`). */
function keyValues(flag: string, value: string, parts: string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of parts) {
    const eq = part.indexOf('=');
    if (eq <= 0) fail(flag, value, `"${part}" must have the form key=value`);
    // Keys match case-insensitively, as rkt's (appc VolumeFromString) do: readOnly = readonly.
    const key = part.slice(0, eq).toLowerCase();
    if (out.has(key)) fail(flag, value, `"${part.slice(0, eq)}" given twice`);
    out.set(key, part.slice(eq + 1));
  }
  return out;
}

/** `--volume NAME,kind=host|empty,source=PATH,readOnly=bool,recursive=bool,mode=0755,uid=N,gid=N`. */
export function parseVolumeFlag(value: string): Volume {
  const flag = 'volume';
  const [name = '', ...rest] = value.split(',');
  if (!isACName(name)) {
    fail(flag, value, `volume name "${name}" must be an ac name (lowercase letters, digits and "-")`, [
      'write it as NAME,kind=host,source=/path or NAME,kind=empty',
    ]);
  }
  const kv = keyValues(flag, value, rest);
  const known = new Set(['kind', 'source', 'readonly', 'recursive', 'mode', 'uid', 'gid']);
  for (const key of kv.keys()) if (!known.has(key)) fail(flag, value, `unknown key "${key}" (known: kind, source, readOnly, recursive, mode, uid, gid)`);
  const kind = kv.get('kind');
  if (kind !== 'host' && kind !== 'empty') fail(flag, value, 'kind must be host or empty');
  const volume: Volume = { name, kind };
  const source = kv.get('source');
  if (kind === 'host') {
    if (source === undefined || source === '') fail(flag, value, 'a host volume needs source=/absolute/path');
    if (!isAbsolute(source)) fail(flag, value, `source "${source}" must be an absolute path`);
    volume.source = source;
    for (const key of ['mode', 'uid', 'gid']) {
      if (kv.has(key)) fail(flag, value, `${key} is only allowed for kind=empty volumes (spec/pods.md)`);
    }
  } else {
    if (source !== undefined) fail(flag, value, 'an empty volume takes no source');
    const mode = kv.get('mode') ?? '0755';
    if (!/^0?[0-7]{3,4}$/.test(mode)) fail(flag, value, `mode "${mode}" must be octal, e.g. 0755`);
    volume.mode = mode;
    volume.uid = kv.has('uid') ? parseInteger(flag, kv.get('uid')!, 0, 4294967294) : 0;
    volume.gid = kv.has('gid') ? parseInteger(flag, kv.get('gid')!, 0, 4294967294) : 0;
  }
  if (kv.has('readonly')) volume.readOnly = parseBool(flag, kv.get('readonly')!);
  if (kv.has('recursive')) volume.recursive = parseBool(flag, kv.get('recursive')!);
  return volume;
}

/** `--mount volume=NAME,target=PATH`. */
export function parseMountFlag(value: string): MountFlag {
  const flag = 'mount';
  const kv = keyValues(flag, value, value.split(','));
  for (const key of kv.keys()) if (key !== 'volume' && key !== 'target') fail(flag, value, `unknown key "${key}" (known: volume, target)`);
  const volume = kv.get('volume');
  const target = kv.get('target');
  if (volume === undefined || target === undefined) fail(flag, value, 'must have the form volume=NAME,target=/path');
  if (!isACName(volume)) fail(flag, value, `volume name "${volume}" must be an ac name`);
  if (!isAbsolute(target)) fail(flag, value, `target "${target}" must be an absolute path`);
  return { volume, target };
}

/**
 * `--port NAME:HOSTPORT[:HOSTIP]`; rkt's own spelling `NAME:[HOSTIP:]HOSTPORT` is accepted too
 * (the address is recognised as the part that is an IP, so IPv6 works in either position).
 */
export function parsePortFlag(value: string): ExposedPort {
  const flag = 'port';
  const colon = value.indexOf(':');
  const name = colon > 0 ? value.slice(0, colon) : '';
  const rest = value.slice(colon + 1);
  if (!isACName(name)) fail(flag, value, 'must have the form NAME:HOSTPORT[:HOSTIP] with NAME an app port name');
  let hostPort: string | undefined;
  let hostIP: string | undefined;
  const unbracket = (ip: string): string => (ip.startsWith('[') && ip.endsWith(']') ? ip.slice(1, -1) : ip);
  if (/^[0-9]+$/.test(rest)) {
    hostPort = rest;
  } else {
    const portFirst = /^([0-9]+):(.+)$/.exec(rest);
    const ipFirst = /^(.+):([0-9]+)$/.exec(rest);
    if (portFirst !== null && isIP(unbracket(portFirst[2]!)) !== 0) {
      hostPort = portFirst[1];
      hostIP = unbracket(portFirst[2]!);
    } else if (ipFirst !== null && isIP(unbracket(ipFirst[1]!)) !== 0) {
      hostIP = unbracket(ipFirst[1]!);
      hostPort = ipFirst[2];
    }
  }
  if (hostPort === undefined) fail(flag, value, 'must have the form NAME:HOSTPORT[:HOSTIP], e.g. http:8080 or http:8080:127.0.0.1');
  const port: ExposedPort = { name, hostPort: parseInteger(flag, hostPort, 1, 65535) };
  if (hostIP !== undefined) port.hostIP = hostIP;
  return port;
}

/**
 * `--net=host|none|default|NAME[:ARGS][,NAME[:ARGS]...]`. ARGS are rkt's per-network CNI
 * arguments, `KEY=VALUE;KEY2=VALUE2` (rkt-notes.md §6.1; `--net=mynet:IP=10.1.2.3`), passed to
 * that network's plugins as CNI_ARGS (src/net/cni.ts cniArgsOf). Networks are separated by ',',
 * so neither keys nor values may contain ',' ';' or '='.
 */
export function parseNetFlag(value: string): NetMode {
  const flag = 'net';
  const entries = value.split(',').map((n) => n.trim());
  if (entries.some((n) => n === '')) fail(flag, value, 'empty network name');
  const names: string[] = [];
  const cniArgs: Record<string, string> = {};
  for (const entry of entries) {
    const colon = entry.indexOf(':');
    const name = colon < 0 ? entry : entry.slice(0, colon);
    names.push(name);
    if (colon < 0) continue;
    if (name === 'default' || name === 'host' || name === 'none') {
      fail(flag, value, `network "${name}" takes no CNI arguments (${name === 'default' ? 'the built-in default network is not run by CNI plugins' : 'it is not a CNI network'})`, [
        'write a CNI network to net.d and pass the arguments to it: --net=NAME:IP=10.1.2.3',
      ]);
    }
    cniArgs[name] = parseCniArgs(flag, value, name, entry.slice(colon + 1));
  }
  for (const special of ['host', 'none'] as const) {
    if (names.includes(special)) {
      if (names.length > 1) fail(flag, value, `"${special}" cannot be combined with other networks`);
      return { kind: special };
    }
  }
  if (names.length === 1 && names[0] === 'default') return { kind: 'default' };
  for (const n of names) {
    if (!/^[a-z0-9][a-z0-9_.-]*$/i.test(n)) fail(flag, value, `"${n}" is not a valid network name`);
  }
  if (new Set(names).size !== names.length) fail(flag, value, 'a network is named twice');
  return Object.keys(cniArgs).length === 0 ? { kind: 'named', names } : { kind: 'named', names, cniArgs };
}

/** The ARGS of `--net=NAME:ARGS`: `KEY=VALUE` pairs separated by ';', returned as written. */
function parseCniArgs(flag: string, value: string, name: string, args: string): string {
  const where = `network "${name}"`;
  const example = [`--net=${name}:IP=10.1.2.3`, `--net=${name}:IP=10.1.2.3;KEY=VALUE`];
  if (args === '') fail(flag, value, `${where}: no CNI arguments after ":"`, example);
  const keys = new Set<string>();
  for (const pair of args.split(';')) {
    if (pair === '') fail(flag, value, `${where}: an empty CNI argument (";" at the start, at the end or twice)`, example);
    const parts = pair.split('=');
    if (parts.length !== 2) {
      fail(flag, value, `${where}: CNI argument "${pair}" must be one KEY=VALUE (no "=" or ";" inside a key or value)`, example);
    }
    const [key, val] = parts as [string, string];
    // CNI_ARGS keys are the names of Go struct fields that the plugins match (libcni types.LoadArgs).
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) fail(flag, value, `${where}: CNI argument key "${key}" must be letters, digits and '_'`, example);
    if (val === '') fail(flag, value, `${where}: CNI argument "${key}" has an empty value`, example);
    if (keys.has(key)) fail(flag, value, `${where}: CNI argument "${key}" is given twice`);
    keys.add(key);
  }
  return args;
}

/** `--net` spelled back from a NetMode (generate systemd recreates a pod's run flags). */
export function formatNetFlag(net: NetMode): string {
  if (net.kind !== 'named') return net.kind;
  return net.names.map((n) => (net.cniArgs?.[n] === undefined ? n : `${n}:${net.cniArgs[n]}`)).join(',');
}

/** One `--dns` value: comma-separated IPs, or `host`, or `none`. */
export function parseDnsFlag(value: string): string[] {
  const servers = value.split(',').map((s) => s.trim());
  for (const s of servers) {
    if (s === 'host' || s === 'none') {
      if (servers.length > 1) fail('dns', value, `"${s}" cannot be combined with servers`);
    } else if (isIP(s) === 0) {
      fail('dns', value, `"${s}" is not an IP address (or host, none)`);
    }
  }
  return servers;
}

/** `--hostname`: a DNS name that sethostname(2) accepts (at most 64 bytes). */
export function parseHostname(value: string): string {
  const label = /^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?$/;
  if (value.length > 64 || !value.split('.').every((l) => label.test(l))) {
    fail('hostname', value, 'must be a host name of at most 64 characters (letters, digits, "-" and ".")');
  }
  return value;
}

/** `--caps-retain` / `--caps-remove`: CAP_ names, case-insensitive, `CAP_` prefix optional. */
export function parseCapabilities(flag: string, value: string): string[] {
  const caps: string[] = [];
  for (const raw of value.split(',')) {
    const upper = raw.trim().toUpperCase();
    if (upper === '') fail(flag, value, 'empty capability name');
    const cap = upper.startsWith('CAP_') ? upper : `CAP_${upper}`;
    if (!Object.hasOwn(LINUX_CAPABILITIES, cap)) {
      fail(flag, value, `"${raw}" is not a Linux capability (see capabilities(7), e.g. CAP_NET_ADMIN)`);
    }
    if (!caps.includes(cap)) caps.push(cap);
  }
  return caps;
}

/** `--seccomp mode=retain|remove[,errno=EPERM],syscall,@group,...` (rkt Documentation/seccomp-guide.md). */
export function parseSeccompFlag(value: string): SeccompFlag {
  const flag = 'seccomp';
  let mode: SeccompFlag['mode'] | undefined;
  let errno: string | undefined;
  const set: string[] = [];
  for (const raw of value.split(',')) {
    const part = raw.trim();
    if (part.startsWith('mode=')) {
      const m = part.slice(5);
      if (m !== 'retain' && m !== 'remove') fail(flag, value, 'mode must be retain or remove');
      if (mode !== undefined) fail(flag, value, 'mode given twice');
      mode = m;
    } else if (part.startsWith('errno=')) {
      const e = part.slice(6);
      if (!/^E[A-Z0-9]+$/.test(e)) fail(flag, value, `errno "${e}" must be an errno name such as EPERM`);
      if (errno !== undefined) fail(flag, value, 'errno given twice');
      errno = e;
    } else if (/^@[a-z0-9][a-z0-9._/-]*$/i.test(part) || /^[a-z0-9_]+$/.test(part)) {
      if (!set.includes(part)) set.push(part);
    } else {
      fail(flag, value, `"${part}" is neither mode=, errno=, a syscall name nor an @group`);
    }
  }
  if (mode === undefined) fail(flag, value, 'needs mode=retain or mode=remove', ['e.g. --seccomp mode=remove,errno=EPERM,reboot,@docker/default-blacklist']);
  if (set.length === 0) fail(flag, value, 'needs at least one syscall or @group');
  return errno === undefined ? { mode, set } : { mode, errno, set };
}

/** `--memory` / `--cpu`: a positive appc resource quantity; the user's spelling is kept. */
export function parseQuantityFlag(flag: string, value: string): string {
  let n: number;
  try {
    n = parseQuantity(value);
  } catch {
    const hint = /^[0-9.]+K$/.test(value) ? ' (use lowercase "k" for 1000 or "Ki" for 1024)' : '';
    return fail(flag, value, `must be a quantity such as 500m, 128M, 1Gi${hint}`);
  }
  if (!(n > 0)) fail(flag, value, 'must be greater than zero');
  return value;
}
