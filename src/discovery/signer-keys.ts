// Keys for a signer identity `user@domain` (beyond rkt): the OpenPGP Web Key Directory
// (draft-koch-openpgp-webkey-service §3.1: advanced method at `openpgpkey.<domain>` when that
// host exists, else the direct method at `<domain>`) and OPENPGPKEY DNS records (RFC 7929).
// Returns raw key bytes and where they came from; whether to trust them is the fingerprint
// review's business (src/trust/review.ts). The HTTP getter and the resolver come in through the
// options. The hashes (z-base-32 of SHA-1, truncated SHA-256) are pure and exported.
import { createHash } from 'node:crypto';
import { domainToASCII } from 'node:url';

import { NotFoundError, UsageError } from '../errors.js';
import { DEFAULT_MAX_PAGE_BYTES, failureText, isStepFailure, type HttpGet } from './http-get.js';

/** z-base-32 alphabet (Zooko's "human-oriented base-32", as GnuPG's zb32_encode). */
const ZBASE32 = 'ybndrfg8ejkmcpqxot1uwisza345h769';

/** z-base-32: 5 bits per character, most significant first, no padding. */
export function zbase32(bytes: Uint8Array): string {
  let out = '';
  let buffer = 0;
  let bits = 0;
  for (const byte of bytes) {
    buffer = (buffer << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += ZBASE32[(buffer >>> (bits - 5)) & 31];
      bits -= 5;
    }
    buffer &= (1 << bits) - 1;
  }
  if (bits > 0) out += ZBASE32[(buffer << (5 - bits)) & 31];
  return out;
}

export interface Mailbox {
  /** The local part as given. */
  local: string;
  /** The domain, lowercased, in ASCII (IDNA) form. */
  domain: string;
}

/** `user@domain` or a user id such as `Jane Doe <jane@example.com>`. */
export function parseMailbox(identity: string): Mailbox {
  const angle = /<([^<>]+)>\s*$/.exec(identity);
  const address = (angle ? angle[1]! : identity).trim();
  const at = address.lastIndexOf('@');
  const local = at > 0 ? address.slice(0, at) : '';
  const domain = at > 0 ? domainToASCII(address.slice(at + 1).toLowerCase()) : '';
  if (local === '' || domain === '' || /\s/.test(local)) {
    throw new UsageError(`discover keys for "${identity}": not an email address (user@domain)`, {
      suggestions: ['give the key yourself: tspod trust --prefix PREFIX ./key.asc'],
    });
  }
  return { local, domain };
}

/**
 * The WKD hash of a local part (draft-koch-openpgp-webkey-service §3.1): ASCII upper case mapped
 * to lower case, SHA-1, z-base-32. Same as `gpg-wks-client --print-wkd-hash`.
 */
export function wkdHash(local: string): string {
  const lowered = local.replace(/[A-Z]/g, (c) => c.toLowerCase());
  return zbase32(createHash('sha1').update(lowered, 'utf8').digest());
}

/** The advanced and direct WKD URLs of an address (§3.1; `l=` carries the unchanged local part). */
export function wkdUrls(identity: string): { advanced: string; direct: string } {
  const { local, domain } = parseMailbox(identity);
  const tail = `hu/${wkdHash(local)}?l=${encodeURIComponent(local)}`;
  return {
    advanced: `https://openpgpkey.${domain}/.well-known/openpgpkey/${domain}/${tail}`,
    direct: `https://${domain}/.well-known/openpgpkey/${tail}`,
  };
}

/**
 * RFC 7929 §3: the owner name of an OPENPGPKEY record is the hex of the first 28 octets of the
 * SHA2-256 of the local part, then `._openpgpkey.` and the domain. First the local part as given
 * (the RFC's rule); then, if different, lowercased, which is what GnuPG publishes
 * (`gpg --export-options export-dane`).
 */
export function openpgpkeyOwnerNames(identity: string): string[] {
  const { local, domain } = parseMailbox(identity);
  const owner = (l: string): string => `${createHash('sha256').update(l, 'utf8').digest().subarray(0, 28).toString('hex')}._openpgpkey.${domain}`;
  const names = [owner(local)];
  const lower = local.toLowerCase();
  if (lower !== local) names.push(owner(lower));
  return names;
}

export type SignerKeyMethod = 'wkd-advanced' | 'wkd-direct' | 'openpgpkey';

export interface SignerKey {
  /** A binary transferable public key (RFC 4880 §11.1), as served. */
  bytes: Uint8Array;
  method: SignerKeyMethod;
  /** The URL, or `dns OPENPGPKEY <owner name>`. */
  location: string;
  /** OPENPGPKEY only: the resolver set the AD bit (validated with DNSSEC by a resolver). */
  authenticated?: boolean;
}

export interface SignerKeyResolver {
  /** Addresses of a host; used to learn whether `openpgpkey.<domain>` exists. */
  lookup(hostname: string, options?: { family?: number }): Promise<unknown[]>;
  resolveOpenpgpkey(name: string): Promise<{ keys: Uint8Array[]; authenticated: boolean }>;
}

export interface SignerKeyOptions {
  get: HttpGet;
  /** Without it, OPENPGPKEY is not tried and the WKD method is chosen by trying the advanced host. */
  dns?: SignerKeyResolver;
  /** Which mechanisms, in order (default: WKD, then OPENPGPKEY). */
  methods?: readonly ('wkd' | 'openpgpkey')[];
  maxBytes?: number;
}

export interface DiscoveredSignerKeys {
  /** `user@domain`. */
  address: string;
  /** The keys of the first mechanism that gave any. */
  keys: SignerKey[];
  tried: string[];
}

/** Signer key discovery found nothing; `tried` lists each step. */
export class SignerKeyDiscoveryError extends NotFoundError {
  readonly tried: string[];
  constructor(address: string, tried: string[]) {
    super(`discover keys for ${address}: ${tried.join('; ')}`, {
      suggestions: [`give the key yourself: tspod trust --prefix PREFIX ./key.asc`],
    });
    this.tried = tried;
  }
}

function hasErrorCode(err: unknown, codes: readonly string[]): boolean {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 6; e = e.cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && codes.includes(code)) return true;
  }
  return false;
}

/** RFC 4880 §4.2: every packet header has bit 7 set; armored keys start with the armor line. */
function looksLikeKey(bytes: Uint8Array): boolean {
  if (bytes.length === 0) return false;
  if ((bytes[0]! & 0x80) !== 0) return true;
  return Buffer.from(bytes.subarray(0, 64)).toString('latin1').trimStart().startsWith('-----BEGIN PGP PUBLIC KEY BLOCK');
}

/** One WKD GET: the key, or undefined with the failure recorded (and returned, for its code). */
async function fetchWkd(url: string, method: SignerKeyMethod, options: SignerKeyOptions, tried: string[]): Promise<{ key?: SignerKey; error?: Error }> {
  try {
    const { bytes } = await options.get(url, { maxBytes: options.maxBytes ?? DEFAULT_MAX_PAGE_BYTES });
    if (!looksLikeKey(bytes)) {
      tried.push(`tried WKD ${url}: not an OpenPGP key (${bytes.length === 0 ? 'empty' : `starts with 0x${bytes[0]!.toString(16).padStart(2, '0')}`})`);
      return {};
    }
    return { key: { bytes, method, location: url } };
  } catch (err) {
    if (!isStepFailure(err)) throw err;
    tried.push(`tried WKD ${url}: ${failureText(err)}`);
    return { error: err };
  }
}

async function discoverWkd(identity: string, options: SignerKeyOptions, tried: string[]): Promise<SignerKey[]> {
  const { domain } = parseMailbox(identity);
  const urls = wkdUrls(identity);
  const host = `openpgpkey.${domain}`;
  // §3.1: "Only if the required sub-domain does not exist, they SHOULD fall back to the direct
  // method." Ask DNS when a resolver is given; else learn it from the advanced attempt.
  if (options.dns) {
    let exists = true;
    try {
      await options.dns.lookup(host);
    } catch (err) {
      if (!isStepFailure(err)) throw err;
      if (hasErrorCode(err, ['ENOTFOUND', 'ENODATA'])) exists = false;
      else tried.push(`tried WKD host ${host}: ${failureText(err)}`);
    }
    if (exists) {
      const { key } = await fetchWkd(urls.advanced, 'wkd-advanced', options, tried);
      return key ? [key] : [];
    }
    tried.push(`tried WKD advanced method: ${host} does not exist, so the direct method applies`);
    const { key } = await fetchWkd(urls.direct, 'wkd-direct', options, tried);
    return key ? [key] : [];
  }
  const advanced = await fetchWkd(urls.advanced, 'wkd-advanced', options, tried);
  if (advanced.key) return [advanced.key];
  // The HTTP layer's lookup reports a missing host as ENOTFOUND somewhere in the cause chain.
  if (!hasErrorCode(advanced.error, ['ENOTFOUND', 'ENODATA'])) return [];
  const direct = await fetchWkd(urls.direct, 'wkd-direct', options, tried);
  return direct.key ? [direct.key] : [];
}

async function discoverOpenpgpkey(identity: string, dns: SignerKeyResolver, tried: string[]): Promise<SignerKey[]> {
  for (const owner of openpgpkeyOwnerNames(identity)) {
    try {
      const { keys, authenticated } = await dns.resolveOpenpgpkey(owner);
      return keys.map((bytes) => ({ bytes, method: 'openpgpkey' as const, location: `dns OPENPGPKEY ${owner}`, authenticated }));
    } catch (err) {
      if (!isStepFailure(err)) throw err;
      tried.push(`tried dns OPENPGPKEY ${owner}: ${failureText(err)}`);
    }
  }
  return [];
}

/**
 * Keys published for a signer identity, by WKD then OPENPGPKEY (or `options.methods`); the first
 * mechanism that yields keys wins. Throws SignerKeyDiscoveryError listing every step otherwise.
 */
export async function discoverSignerKeys(identity: string, options: SignerKeyOptions): Promise<DiscoveredSignerKeys> {
  const { local, domain } = parseMailbox(identity);
  const address = `${local}@${domain}`;
  const tried: string[] = [];
  for (const method of options.methods ?? ['wkd', 'openpgpkey']) {
    let keys: SignerKey[] = [];
    if (method === 'wkd') keys = await discoverWkd(identity, options, tried);
    else if (options.dns) keys = await discoverOpenpgpkey(identity, options.dns, tried);
    else tried.push('skipped OPENPGPKEY: no DNS resolver given');
    if (keys.length > 0) return { address, keys, tried };
  }
  throw new SignerKeyDiscoveryError(address, tried);
}
