// Resolver configuration: `/etc/resolv.conf` (resolv.conf(5): nameserver, search/domain, options
// timeout/attempts/ndots), the `LOCALDOMAIN` and `RES_OPTIONS` overrides glibc honours, tspod's
// `TSPOD_NAMESERVER=host:port[,host:port...]`, and `/etc/hosts` (hosts(5)). Pure text to data;
// the resolver in dns.ts reads the files.
import net from 'node:net';

import { UsageError } from '../errors.js';

export interface Nameserver {
  host: string;
  port: number;
}

export interface ResolvConf {
  nameservers: Nameserver[];
  /** Search domains, without trailing dots. */
  search: string[];
  /** Names with at least this many dots are tried as given before the search list. */
  ndots: number;
  /** Per-try timeout. */
  timeoutMs: number;
  /** Rounds over all nameservers. */
  attempts: number;
  /** Start each query at a different nameserver (options rotate). */
  rotate: boolean;
}

export const DNS_PORT = 53;
/** resolv.conf(5): glibc uses at most MAXNS = 3 nameservers. */
export const MAX_NAMESERVERS = 3;
/** resolv.conf(5) defaults and caps: timeout 5 s (max 30), attempts 2 (max 5), ndots 1 (max 15). */
const DEFAULTS = { timeoutS: 5, attempts: 2, ndots: 1 };
const CAPS = { timeoutS: 30, attempts: 5, ndots: 15 };
/** resolv.conf(5): "If no nameserver entries are present, the default is to use the local name server." */
const LOCAL_NAMESERVER: Nameserver = { host: '127.0.0.1', port: DNS_PORT };

/** Parses resolv.conf text. Unknown keywords and options are ignored, as glibc does. */
export function parseResolvConf(text: string): ResolvConf {
  const conf: ResolvConf = {
    nameservers: [],
    search: [],
    ndots: DEFAULTS.ndots,
    timeoutMs: DEFAULTS.timeoutS * 1000,
    attempts: DEFAULTS.attempts,
    rotate: false,
  };
  for (const raw of text.split('\n')) {
    // resolv.conf(5): "a semicolon (;) or hash character (#) in column one" starts a comment;
    // glibc also strips them after a value, so do the same.
    const line = raw.replace(/[;#].*$/, '').trim();
    if (line === '') continue;
    const [keyword, ...args] = line.split(/\s+/);
    switch (keyword) {
      case 'nameserver': {
        // glibc accepts an IPv6 address with a zone (`fe80::1%eth0`); net.isIP does not.
        const host = args[0];
        if (host !== undefined && net.isIP(host.replace(/%.*$/, '')) !== 0 && conf.nameservers.length < MAX_NAMESERVERS) {
          conf.nameservers.push({ host, port: DNS_PORT });
        }
        break;
      }
      case 'domain':
        // resolv.conf(5): "The domain and search keywords are mutually exclusive. If more than one
        // instance of these keywords is present, the last instance wins."
        conf.search = args.length > 0 ? [stripDot(args[0]!)] : [];
        break;
      case 'search':
        conf.search = args.map(stripDot).filter((d) => d !== '');
        break;
      case 'options':
        applyOptions(conf, args);
        break;
      default:
        break;
    }
  }
  if (conf.nameservers.length === 0) conf.nameservers.push({ ...LOCAL_NAMESERVER });
  return conf;
}

/** `RES_OPTIONS` and `LOCALDOMAIN` (resolv.conf(5) "ENVIRONMENT") applied over a parsed file. */
export function applyResolverEnvironment(conf: ResolvConf, env: NodeJS.ProcessEnv): ResolvConf {
  const out = { ...conf, nameservers: [...conf.nameservers], search: [...conf.search] };
  if (env.LOCALDOMAIN !== undefined) out.search = env.LOCALDOMAIN.trim().split(/\s+/).filter((d) => d !== '').map(stripDot);
  if (env.RES_OPTIONS !== undefined) applyOptions(out, env.RES_OPTIONS.trim().split(/\s+/));
  if (env.TSPOD_NAMESERVER !== undefined && env.TSPOD_NAMESERVER.trim() !== '') {
    out.nameservers = parseNameserverList(env.TSPOD_NAMESERVER, 'TSPOD_NAMESERVER');
  }
  return out;
}

function applyOptions(conf: ResolvConf, options: string[]): void {
  for (const option of options) {
    const [name, value] = option.split(':', 2);
    const n = value === undefined ? NaN : Number.parseInt(value, 10);
    if (name === 'rotate') conf.rotate = true;
    if (!Number.isFinite(n) || n < 0) continue;
    if (name === 'timeout') conf.timeoutMs = Math.max(1, Math.min(n, CAPS.timeoutS)) * 1000;
    else if (name === 'attempts') conf.attempts = Math.max(1, Math.min(n, CAPS.attempts));
    else if (name === 'ndots') conf.ndots = Math.min(n, CAPS.ndots);
  }
}

/**
 * `TSPOD_NAMESERVER`: a comma list of `host[:port]`; IPv6 as `[addr]:port` or a bare address
 * (port 53). Only IP addresses: the resolver cannot resolve its own nameserver's name.
 */
export function parseNameserverList(text: string, origin = 'TSPOD_NAMESERVER'): Nameserver[] {
  const out: Nameserver[] = [];
  for (const item of text.split(',').map((s) => s.trim()).filter((s) => s !== '')) {
    out.push(parseNameserver(item, origin));
  }
  if (out.length === 0) {
    throw new UsageError(`read ${origin}: no nameserver given`, { suggestions: [`${origin}=127.0.0.1:5353`, `${origin}=[::1]:53`] });
  }
  return out;
}

function parseNameserver(item: string, origin: string): Nameserver {
  let host = item;
  let portText: string | undefined;
  const bracketed = /^\[([^\]]+)\](?::(.*))?$/.exec(item);
  if (bracketed) {
    host = bracketed[1]!;
    portText = bracketed[2];
  } else if (net.isIPv6(item)) {
    host = item;
  } else if (item.includes(':')) {
    const colon = item.lastIndexOf(':');
    host = item.slice(0, colon);
    portText = item.slice(colon + 1);
  }
  const fail = (cause: string): never => {
    throw new UsageError(`read ${origin}: "${item}" ${cause}`, {
      suggestions: [`${origin}=127.0.0.1:5353`, `${origin}=[::1]:53`],
    });
  };
  if (net.isIP(host) === 0) fail('is not an IP address (host[:port], IPv6 as [addr]:port)');
  let port = DNS_PORT;
  if (portText !== undefined) {
    if (!/^\d{1,5}$/.test(portText)) fail('has an invalid port');
    port = Number(portText);
    if (port < 1 || port > 65535) fail('has a port outside 1-65535');
  }
  return { host, port };
}

/** hosts(5) as a map from lowercase name to its addresses, in file order. */
export type HostsTable = Map<string, string[]>;

/** Parses hosts(5): `address canonical_name [aliases...]`, `#` comments. Bad addresses are skipped. */
export function parseHosts(text: string): HostsTable {
  const table: HostsTable = new Map();
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*$/, '').trim();
    if (line === '') continue;
    const [address, ...names] = line.split(/\s+/);
    if (address === undefined || net.isIP(address.replace(/%.*$/, '')) === 0) continue;
    for (const name of names) {
      const key = stripDot(name.toLowerCase());
      const list = table.get(key) ?? [];
      if (!list.includes(address)) list.push(address);
      table.set(key, list);
    }
  }
  return table;
}

function stripDot(name: string): string {
  return name.endsWith('.') ? name.slice(0, -1) : name;
}

/**
 * The names to query for `name`, in order (resolv.conf(5) "search" and "ndots"): a name ending
 * in `.` is absolute and tried alone; a name with at least `ndots` dots is tried as given first,
 * then with each search domain; a shorter one with the search domains first.
 */
export function searchCandidates(name: string, conf: Pick<ResolvConf, 'search' | 'ndots'>): string[] {
  if (name.endsWith('.')) return [name.slice(0, -1)];
  const dots = name.split('.').length - 1;
  const searched = conf.search.map((d) => `${name}.${d}`);
  return dots >= conf.ndots ? [name, ...searched] : [...searched, name];
}
