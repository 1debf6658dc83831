// The DNS stub resolver tspod uses for every name it looks up: queries built and parsed with
// dns-packet, sent over UDP with a fallback to TCP when the answer is truncated (RFC 1035
// §4.2.1, RFC 7766 §5), to the nameservers of /etc/resolv.conf or TSPOD_NAMESERVER, with its
// timeouts, attempts and search list; /etc/hosts first for addresses. Record types: A, AAAA,
// TXT and OPENPGPKEY (RFC 7929, type 61). `createLookup` adapts it to Node's `lookup` hook so
// the HTTP layer resolves through it (undici `connect.lookup`). No DNSSEC validation: the AD
// bit of a validating resolver is passed on as `authenticated`.
import dgram from 'node:dgram';
import fs from 'node:fs/promises';
import type { LookupAddress } from 'node:dns';
import net, { type LookupFunction } from 'node:net';
import { randomInt } from 'node:crypto';
import { domainToASCII } from 'node:url';

import dnsPacket, { type Answer, type DecodedPacket, type Packet } from 'dns-packet';

import { TspodError } from '../errors.js';
import {
  applyResolverEnvironment,
  parseHosts,
  parseResolvConf,
  searchCandidates,
  type HostsTable,
  type Nameserver,
  type ResolvConf,
} from './resolv-conf.js';

export type RecordType = 'A' | 'AAAA' | 'TXT' | 'OPENPGPKEY' | 'CNAME';

/** RFC 7929 §2: OPENPGPKEY is RR type 61; dns-packet has no name for it. */
export const OPENPGPKEY_TYPE = 61;
const WIRE_TYPE: Record<RecordType, string> = {
  A: 'A',
  AAAA: 'AAAA',
  TXT: 'TXT',
  CNAME: 'CNAME',
  OPENPGPKEY: `UNKNOWN_${OPENPGPKEY_TYPE}`,
};
/** RFC 1035 §4.2.1: without EDNS a UDP answer holds at most 512 bytes. */
const CLASSIC_UDP_SIZE = 512;
/** EDNS0 buffer size advertised (RFC 6891); 1232 avoids IP fragmentation (DNS flag day 2020). */
export const DEFAULT_UDP_PAYLOAD_SIZE = 1232;
/** RFC 1034 §3.6.2: follow at most a few CNAMEs; real chains are short, loops are not. */
const MAX_CNAME_CHAIN = 16;

export type DnsErrorCode = 'ENOTFOUND' | 'ENODATA' | 'ETIMEOUT' | 'ESERVFAIL' | 'EREFUSED' | 'EBADRESP' | 'ECONNREFUSED' | 'EBADNAME';

/**
 * A failed lookup. `code` uses the names of Node's dns module (ENOTFOUND, ENODATA, ETIMEOUT, ...)
 * so that code handling Node's errors (net, undici) recognises these too.
 */
export class DnsError extends TspodError {
  readonly code: DnsErrorCode;
  readonly hostname: string;
  readonly rrtype: string;
  /** Node's lookup errors carry the syscall; net and undici print it. */
  readonly syscall: string;
  constructor(code: DnsErrorCode, hostname: string, rrtype: string, cause: string, opts: { cause?: unknown; suggestions?: string[] } = {}) {
    super(`resolve ${rrtype} ${hostname}: ${cause}`, { cause: opts.cause, suggestions: opts.suggestions });
    this.code = code;
    this.hostname = hostname;
    this.rrtype = rrtype;
    this.syscall = `query${rrtype}`;
  }
}

/** NXDOMAIN: the name does not exist at all (RFC 1035 §4.1.1 RCODE 3). */
export class DnsNotFoundError extends DnsError {
  constructor(hostname: string, rrtype: string, server: string) {
    super('ENOTFOUND', hostname, rrtype, `no such domain (NXDOMAIN from ${server})`, {
      suggestions: ['check the spelling of the name', 'check /etc/resolv.conf, or point tspod at another server with TSPOD_NAMESERVER=host:port'],
    });
  }
}

/** NOERROR without records of the type: the name exists, the record does not (RFC 2308 §2.2). */
export class DnsNoDataError extends DnsError {
  constructor(hostname: string, rrtype: string, server: string) {
    super('ENODATA', hostname, rrtype, `the name exists but has no ${rrtype} record (answer from ${server})`);
  }
}

/** No nameserver answered in time. */
export class DnsTimeoutError extends DnsError {
  constructor(hostname: string, rrtype: string, detail: string) {
    super('ETIMEOUT', hostname, rrtype, `no answer: ${detail}`, {
      suggestions: ['check the network and the nameservers in /etc/resolv.conf', 'use another nameserver: TSPOD_NAMESERVER=host:port'],
    });
  }
}

/** Every nameserver failed otherwise (SERVFAIL, REFUSED, connection refused, garbage). */
export class DnsServerError extends DnsError {}

export interface DnsResponse {
  /** The name that answered (after the search list), without a trailing dot. */
  name: string;
  /** Records of the asked type, CNAMEs followed. */
  answers: Answer[];
  /** The AD bit (RFC 4035 §3.2.3): a validating resolver vouched for the answer. */
  authenticated: boolean;
  /** `host:port` of the nameserver that answered. */
  server: string;
  /** Whether the answer came over TCP (after a truncated UDP answer). */
  tcp: boolean;
}

export interface ResolverOptions {
  /** Default /etc/resolv.conf. */
  resolvConfPath?: string;
  /** Default /etc/hosts. */
  hostsPath?: string;
  /** Environment for TSPOD_NAMESERVER, LOCALDOMAIN and RES_OPTIONS (default process.env). */
  env?: NodeJS.ProcessEnv;
  /** Use exactly these nameservers (overrides resolv.conf and TSPOD_NAMESERVER). */
  nameservers?: Nameserver[];
  /** Per-try timeout (overrides `options timeout:`). */
  timeoutMs?: number;
  /** Rounds over the nameservers (overrides `options attempts:`). */
  attempts?: number;
  /** EDNS0 UDP payload size to advertise; 0 sends classic queries (512-byte answers). */
  udpPayloadSize?: number;
}

export interface ResolverLookupOptions {
  /** 0 (both), 4 or 6. */
  family?: number;
}

interface Exchange {
  response: DecodedPacket;
  tcp: boolean;
}

/** A failure at one nameserver, kept to explain the final error. */
interface ServerFailure {
  server: string;
  kind: 'timeout' | 'servfail' | 'refused' | 'connection' | 'badresp';
  text: string;
}

export class Resolver {
  private readonly options: ResolverOptions;
  private confPromise: Promise<ResolvConf> | undefined;
  private hostsPromise: Promise<HostsTable> | undefined;
  private nextServer = 0;

  constructor(options: ResolverOptions = {}) {
    this.options = options;
  }

  /** The effective configuration (read once). */
  config(): Promise<ResolvConf> {
    this.confPromise ??= this.loadConfig();
    return this.confPromise;
  }

  private async loadConfig(): Promise<ResolvConf> {
    const path = this.options.resolvConfPath ?? '/etc/resolv.conf';
    let text = '';
    try {
      text = await fs.readFile(path, 'utf8');
    } catch (err) {
      // A missing resolv.conf means "use the local nameserver" (resolv.conf(5)); say nothing.
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
        throw new TspodError(`read resolver configuration ${path}: ${(err as Error).message}`, { cause: err });
      }
    }
    const conf = applyResolverEnvironment(parseResolvConf(text), this.options.env ?? process.env);
    if (this.options.nameservers !== undefined && this.options.nameservers.length > 0) conf.nameservers = [...this.options.nameservers];
    if (this.options.timeoutMs !== undefined) conf.timeoutMs = this.options.timeoutMs;
    if (this.options.attempts !== undefined) conf.attempts = Math.max(1, this.options.attempts);
    return conf;
  }

  private hosts(): Promise<HostsTable> {
    this.hostsPromise ??= fs.readFile(this.options.hostsPath ?? '/etc/hosts', 'utf8').then(parseHosts, (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return new Map<string, string[]>();
      throw new TspodError(`read hosts file ${this.options.hostsPath ?? '/etc/hosts'}: ${err.message}`, { cause: err });
    });
    return this.hostsPromise;
  }

  /**
   * Queries `name` for `type`, with the search list. Throws DnsNotFoundError, DnsNoDataError,
   * DnsTimeoutError or DnsServerError.
   */
  async query(name: string, type: RecordType): Promise<DnsResponse> {
    const conf = await this.config();
    const ascii = toQueryName(name, type);
    const candidates = searchCandidates(ascii, conf);
    let asGiven: DnsError | undefined;
    let first: DnsError | undefined;
    for (const candidate of candidates) {
      try {
        return await this.queryExact(candidate, type, conf);
      } catch (err) {
        // glibc res_search: only "no such name" and "no data" move on to the next candidate.
        if (!(err instanceof DnsNotFoundError || err instanceof DnsNoDataError)) throw err;
        first ??= err;
        if (candidate === ascii.replace(/\.$/, '')) asGiven = err;
      }
    }
    // Report the name the user gave, not the last search-list expansion.
    throw asGiven ?? first!;
  }

  /** IPv4 addresses of `name` (DNS only; `lookup` consults /etc/hosts first). */
  async resolve4(name: string): Promise<string[]> {
    return (await this.query(name, 'A')).answers.map((a) => String(a.data));
  }

  async resolve6(name: string): Promise<string[]> {
    return (await this.query(name, 'AAAA')).answers.map((a) => String(a.data));
  }

  /** TXT records as Node's dns.resolveTxt returns them: one array of strings per record. */
  async resolveTxt(name: string): Promise<string[][]> {
    return (await this.query(name, 'TXT')).answers.map((a) => (a.data as Buffer[]).map((b) => b.toString('utf8')));
  }

  /** OPENPGPKEY records (RFC 7929 §2.1: RDATA is a binary transferable public key). */
  async resolveOpenpgpkey(name: string): Promise<{ keys: Uint8Array[]; authenticated: boolean; server: string }> {
    const res = await this.query(name, 'OPENPGPKEY');
    return { keys: res.answers.map((a) => new Uint8Array(a.data as Buffer)), authenticated: res.authenticated, server: res.server };
  }

  /**
   * Addresses for a host name as getaddrinfo would give them: an IP literal as is, then
   * /etc/hosts, then loopback for localhost names, then DNS (A and AAAA for family 0, IPv4 first).
   */
  async lookup(hostname: string, options: ResolverLookupOptions = {}): Promise<LookupAddress[]> {
    const family = options.family ?? 0;
    const host = hostname.replace(/^\[(.*)\]$/, '$1');
    const literal = net.isIP(host);
    if (literal !== 0) {
      if (family !== 0 && family !== literal) {
        throw new DnsNoDataError(host, family === 4 ? 'A' : 'AAAA', 'the address itself');
      }
      return [{ address: host, family: literal }];
    }
    const key = host.toLowerCase().replace(/\.$/, '');
    const fromHosts = ((await this.hosts()).get(key) ?? [])
      .map((address) => ({ address, family: net.isIP(address.replace(/%.*$/, '')) }))
      .filter((a) => family === 0 || a.family === family);
    if (fromHosts.length > 0) return fromHosts;
    // RFC 6761 §6.3: localhost names always resolve to loopback, and are never sent to DNS.
    if (key === 'localhost' || key.endsWith('.localhost')) {
      const loopback: LookupAddress[] = [
        { address: '127.0.0.1', family: 4 },
        { address: '::1', family: 6 },
      ];
      return loopback.filter((a) => family === 0 || a.family === family);
    }
    const types: ('A' | 'AAAA')[] = family === 4 ? ['A'] : family === 6 ? ['AAAA'] : ['A', 'AAAA'];
    const settled = await Promise.allSettled(types.map((t) => this.query(host, t)));
    const addresses: LookupAddress[] = [];
    const errors: DnsError[] = [];
    settled.forEach((s, i) => {
      if (s.status === 'fulfilled') {
        for (const a of s.value.answers) addresses.push({ address: String(a.data), family: types[i] === 'A' ? 4 : 6 });
      } else if (s.reason instanceof DnsError) {
        errors.push(s.reason);
      } else {
        throw s.reason;
      }
    });
    if (addresses.length > 0) return addresses;
    if (errors.length === 2 && errors.every((e) => e instanceof DnsNoDataError)) {
      throw new DnsError('ENODATA', host, 'A/AAAA', 'the name exists but has no A or AAAA record');
    }
    throw errors.find((e) => e instanceof DnsNotFoundError) ?? errors.find((e) => !(e instanceof DnsNoDataError)) ?? errors[0]!;
  }

  /** One name, no search list: each attempt walks the nameservers (resolv.conf(5) attempts/rotate). */
  private async queryExact(name: string, type: RecordType, conf: ResolvConf): Promise<DnsResponse> {
    const failures: ServerFailure[] = [];
    const servers = conf.nameservers;
    const start = conf.rotate ? this.nextServer++ % servers.length : 0;
    for (let attempt = 0; attempt < conf.attempts; attempt++) {
      for (let i = 0; i < servers.length; i++) {
        const server = servers[(start + i) % servers.length]!;
        const label = formatServer(server);
        let exchange: Exchange;
        try {
          exchange = await this.exchange(server, name, type, conf.timeoutMs);
        } catch (err) {
          failures.push(describeTransportFailure(label, err));
          continue;
        }
        const { response, tcp } = exchange;
        switch (response.rcode) {
          case 'NOERROR': {
            const answers = followCnames(name, WIRE_TYPE[type], response.answers);
            if (answers.length === 0) throw new DnsNoDataError(name, type, label);
            return { name, answers, authenticated: response.flag_ad, server: label, tcp };
          }
          case 'NXDOMAIN':
            throw new DnsNotFoundError(name, type, label);
          case 'SERVFAIL':
            failures.push({ server: label, kind: 'servfail', text: `${label}: SERVFAIL (server failure)` });
            break;
          case 'REFUSED':
            failures.push({ server: label, kind: 'refused', text: `${label}: REFUSED (the server does not answer this query)` });
            break;
          default:
            failures.push({ server: label, kind: 'badresp', text: `${label}: ${response.rcode}` });
        }
      }
    }
    const rounds = `${conf.attempts} attempt${conf.attempts === 1 ? '' : 's'}`;
    if (failures.every((f) => f.kind === 'timeout')) {
      const each = `${conf.timeoutMs / 1000} s`;
      throw new DnsTimeoutError(name, type, `${rounds} of ${each} at ${[...new Set(failures.map((f) => f.server))].join(', ')}`);
    }
    const distinct = [...new Set(failures.map((f) => f.text))];
    const code: DnsErrorCode = failures.some((f) => f.kind === 'refused')
      ? 'EREFUSED'
      : failures.some((f) => f.kind === 'servfail')
        ? 'ESERVFAIL'
        : failures.some((f) => f.kind === 'connection')
          ? 'ECONNREFUSED'
          : 'EBADRESP';
    throw new DnsServerError(code, name, type, `every nameserver failed (${rounds}): ${distinct.join('; ')}`, {
      suggestions: ['check the nameservers in /etc/resolv.conf', 'use another nameserver: TSPOD_NAMESERVER=host:port'],
    });
  }

  /** One query to one server: UDP, then TCP if the answer is truncated; EDNS dropped on FORMERR. */
  private async exchange(server: Nameserver, name: string, type: RecordType, timeoutMs: number): Promise<Exchange> {
    const ednsSize = this.options.udpPayloadSize ?? DEFAULT_UDP_PAYLOAD_SIZE;
    let query = buildQuery(name, type, ednsSize);
    let response = await udpExchange(server, query, timeoutMs);
    // RFC 6891 §7: a server that does not know EDNS answers FORMERR; ask again without it.
    if (response.rcode === 'FORMERR' && ednsSize > 0) {
      query = buildQuery(name, type, 0);
      response = await udpExchange(server, query, timeoutMs);
    }
    // RFC 7766 §5: "a truncated UDP response ... the requestor SHOULD retry using TCP".
    if (response.flag_tc) return { response: await tcpExchange(server, query, timeoutMs), tcp: true };
    return { response, tcp: false };
  }
}

/** A name as it goes on the wire: IDNA (A-labels), length-checked (RFC 1035 §2.3.4). */
function toQueryName(name: string, type: string): string {
  const absolute = name.endsWith('.');
  const bare = absolute ? name.slice(0, -1) : name;
  // `_appc-discovery` and `_openpgpkey` labels are not host names; domainToASCII would refuse
  // the underscore in some versions, so only convert labels that need it.
  const labels = bare.split('.').map((l) => (/^[\x00-\x7f]*$/.test(l) ? l : domainToASCII(l)));
  const bad = (why: string): never => {
    throw new DnsError('EBADNAME', name, type, why);
  };
  if (bare === '' || labels.some((l) => l === '')) bad('not a valid domain name (empty label)');
  if (labels.some((l) => l.length > 63)) bad('not a valid domain name (a label is longer than 63 bytes)');
  if (labels.join('.').length > 253) bad('not a valid domain name (longer than 253 bytes)');
  return labels.join('.') + (absolute ? '.' : '');
}

function buildQuery(name: string, type: RecordType, ednsSize: number): Packet & { id: number } {
  return {
    type: 'query',
    // RFC 5452 §9.2: an unpredictable id (with a random source port from the OS) resists spoofing.
    id: randomInt(0, 65536),
    // RFC 6840 §5.7: setting AD in a query asks a validating resolver to report validation.
    flags: dnsPacket.RECURSION_DESIRED | dnsPacket.AUTHENTIC_DATA,
    questions: [{ type: WIRE_TYPE[type], name: name.replace(/\.$/, ''), class: 'IN' }],
    additionals: ednsSize > 0 ? [{ type: 'OPT', name: '.', udpPayloadSize: Math.max(ednsSize, CLASSIC_UDP_SIZE) }] : [],
  };
}

/** The response answers `query` (id, QR bit and question: RFC 5452 §4.1). */
function matches(query: Packet & { id: number }, response: DecodedPacket): boolean {
  const q = query.questions![0]!;
  const r = response.questions[0];
  return (
    response.id === query.id &&
    response.flag_qr &&
    (r === undefined || (r.name.toLowerCase() === q.name.toLowerCase() && r.type === q.type))
  );
}

function udpExchange(server: Nameserver, query: Packet & { id: number }, timeoutMs: number): Promise<DecodedPacket> {
  return new Promise((resolve, reject) => {
    const socket = dgram.createSocket(net.isIPv6(server.host.replace(/%.*$/, '')) ? 'udp6' : 'udp4');
    const timer = setTimeout(() => finish(new TransportError('timeout', `no answer within ${timeoutMs} ms`)), timeoutMs);
    let done = false;
    function finish(err: Error | undefined, packet?: DecodedPacket): void {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.close();
      if (err) reject(err);
      else resolve(packet!);
    }
    socket.on('error', (err: NodeJS.ErrnoException) => {
      // A connected UDP socket reports the ICMP "port unreachable" as ECONNREFUSED.
      finish(new TransportError('connection', err.code === 'ECONNREFUSED' ? 'connection refused (ECONNREFUSED)' : (err.code ?? err.message)));
    });
    socket.on('message', (msg) => {
      let packet: DecodedPacket;
      try {
        packet = dnsPacket.decode(msg);
      } catch {
        return; // not a DNS message: ignore it and keep waiting, as for a spoofed one
      }
      if (matches(query, packet)) finish(undefined, packet);
    });
    // connect(): the kernel then drops datagrams from any other address and port.
    socket.connect(server.port, server.host, () => {
      socket.send(dnsPacket.encode(query), (err) => {
        if (err) finish(new TransportError('connection', (err as NodeJS.ErrnoException).code ?? err.message));
      });
    });
  });
}

function tcpExchange(server: Nameserver, query: Packet & { id: number }, timeoutMs: number): Promise<DecodedPacket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: server.host, port: server.port });
    const chunks: Buffer[] = [];
    let received = 0;
    let done = false;
    const timer = setTimeout(() => finish(new TransportError('timeout', `no TCP answer within ${timeoutMs} ms`)), timeoutMs);
    function finish(err: Error | undefined, packet?: DecodedPacket): void {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else resolve(packet!);
    }
    socket.on('connect', () => socket.write(dnsPacket.streamEncode(query)));
    socket.on('error', (err: NodeJS.ErrnoException) => finish(new TransportError('connection', `tcp: ${err.code ?? err.message}`)));
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      received += chunk.length;
      if (received < 2) return;
      const all = Buffer.concat(chunks, received);
      // RFC 1035 §4.2.2: each TCP message is preceded by a two-byte length field.
      const length = all.readUInt16BE(0);
      if (received < 2 + length) return;
      let packet: DecodedPacket;
      try {
        packet = dnsPacket.decode(all.subarray(2, 2 + length));
      } catch (err) {
        return finish(new TransportError('badresp', `tcp: malformed answer (${(err as Error).message})`));
      }
      if (!matches(query, packet)) return finish(new TransportError('badresp', 'tcp: answer does not match the question'));
      finish(undefined, packet);
    });
    socket.on('end', () => finish(new TransportError('connection', 'tcp: connection closed before a full answer')));
  });
}

class TransportError extends Error {
  constructor(
    readonly kind: 'timeout' | 'connection' | 'badresp',
    message: string,
  ) {
    super(message);
  }
}

function describeTransportFailure(server: string, err: unknown): ServerFailure {
  if (err instanceof TransportError) return { server, kind: err.kind, text: `${server}: ${err.message}` };
  return { server, kind: 'badresp', text: `${server}: ${err instanceof Error ? err.message : String(err)}` };
}

/** Records of `wireType` owned by `name` or by a name it is a CNAME of (RFC 1034 §3.6.2). */
function followCnames(name: string, wireType: string, answers: Answer[]): Answer[] {
  const owners = new Set([name.toLowerCase().replace(/\.$/, '')]);
  for (let i = 0; i < MAX_CNAME_CHAIN; i++) {
    const before = owners.size;
    for (const a of answers) {
      if (a.type === 'CNAME' && owners.has(a.name.toLowerCase()) && typeof a.data === 'string') owners.add(a.data.toLowerCase());
    }
    if (owners.size === before) break;
  }
  return answers.filter((a) => a.type === wireType && owners.has(a.name.toLowerCase()));
}

function formatServer(server: Nameserver): string {
  return net.isIPv6(server.host.replace(/%.*$/, '')) ? `[${server.host}]:${server.port}` : `${server.host}:${server.port}`;
}

/** Node's `lookup` hook (net.connect, tls.connect, undici `connect.lookup`). */
export type LookupHook = LookupFunction;

/**
 * A `lookup` for net/tls/undici that resolves through `resolver` (dns.lookup's contract:
 * `options.all` gives every address, else the first; `options.family` 4, 6 or 0/'IPv4'/'IPv6').
 */
export function createLookup(resolver: Pick<Resolver, 'lookup'>): LookupHook {
  return (hostname, options, callback) => {
    const raw = (options as { family?: number | string }).family;
    const family = raw === 4 || raw === 'IPv4' ? 4 : raw === 6 || raw === 'IPv6' ? 6 : 0;
    resolver.lookup(hostname, { family }).then(
      (addresses) => {
        if (options.all) callback(null, addresses);
        else callback(null, addresses[0]!.address, addresses[0]!.family);
      },
      (err: NodeJS.ErrnoException) => callback(err, options.all ? [] : '', undefined),
    );
  };
}
