// Where the keys of `tspod trust` come from, before the fingerprint review (review.ts):
// - no key argument: appc meta discovery of the prefix's `ac-discovery-pubkeys`
//   (rkt/trust.go: "no keys given, discover them"; spec/discovery.md), then a download of each
//   key URL found;
// - `user@domain`: the signer keys published for that identity through WKD or an OPENPGPKEY
//   record (discovery/signer-keys.ts; beyond rkt);
// - anything else: a key file, or an https:// URL (review.ts `loadKeySources`).
// Every key carries its origin for the review. Root keys are never discovered: rkt requires an
// explicit key file for `--root` (rkt-notes §4.1), and a key trusted for every image name should
// not come from a web page or a DNS answer. The HTTP getter and the resolver come in through the
// options (the command binds them to Context.network()); nothing here opens a connection itself.
import { discoverPublicKeys, type DiscoveryTxtResolver } from '../discovery/discover.js';
import { DEFAULT_MAX_PAGE_BYTES, failureText, isStepFailure, type HttpGet } from '../discovery/http-get.js';
import { discoverSignerKeys, type SignerKey, type SignerKeyResolver } from '../discovery/signer-keys.js';
import { NotFoundError, UsageError } from '../errors.js';
import { getBytes } from '../http/client.js';
import type { ExchangeOptions } from '../http/exchange.js';
import type { TrustTarget } from './keystore.js';
import { isKeyUrl, loadKeySources, MAX_KEY_BYTES, type KeySource } from './review.js';

/** One key argument of `tspod trust`. */
export type KeyArgument = { kind: 'location'; location: string } | { kind: 'identity'; identity: string };

/**
 * A URL is a location; a mail address (`local@domain`, no `/`, no spaces) is a signer identity;
 * anything else is a file. Decided by the spelling alone, never by what happens to exist in the
 * current directory, so the same command means the same thing everywhere: a key file whose name
 * looks like an address is given as `./alice@example.com`.
 */
export function classifyKeyArgument(arg: string): KeyArgument {
  if (isKeyUrl(arg)) return { kind: 'location', location: arg };
  if (/^[^\s/@]+@[^\s/@]+$/.test(arg)) return { kind: 'identity', identity: arg };
  return { kind: 'location', location: arg };
}

export interface GatherKeysOptions {
  /** Fetches a page or key, following redirects (getBytes bound to the command's network context). */
  get: HttpGet;
  /** TXT records for the discovery fallback, host lookups and OPENPGPKEY records (the Resolver). */
  dns: DiscoveryTxtResolver & SignerKeyResolver;
  /** `--insecure-options=http` (or `pubkey`): discovery pages and keys may come over plain http. */
  allowHttp: boolean;
  /** Non-fatal problems (a discovered key URL that failed while others worked). */
  warn: (message: string) => void;
}

/** A getter with getBytes' contract bound to the command's exchange options (resolver lookup, auth.d, TLS). */
export function networkGetter(http: ExchangeOptions): HttpGet {
  return (url, opts) => getBytes(url, { ...http, ...opts });
}

const METHOD_TEXT: Record<SignerKey['method'], string> = {
  'wkd-advanced': 'WKD (advanced method)',
  'wkd-direct': 'WKD (direct method)',
  openpgpkey: 'DNS OPENPGPKEY record',
};

/** How a signer key was found, with what vouches for it (RFC 7929 §7: only DNSSEC authenticates the record). */
export function signerKeyOrigin(key: SignerKey, address: string): string {
  let text = `${METHOD_TEXT[key.method]} for ${address}`;
  if (key.method === 'openpgpkey') {
    text += key.authenticated
      ? ', authenticated by DNSSEC (the resolver set the AD bit)'
      : ', not authenticated: no DNSSEC (the resolver did not set the AD bit)';
  }
  return text;
}

/** `ac-discovery-pubkeys` of the prefix: discovery, then a download of every key URL found. */
async function discoverPrefixKeys(prefix: string, options: GatherKeysOptions): Promise<KeySource[]> {
  const found = await discoverPublicKeys(prefix, { get: options.get, allowHttp: options.allowHttp, dns: options.dns });
  const foundThrough = found.source.startsWith('dns TXT ') ? `pubkeys= of ${found.source}` : `ac-discovery-pubkeys of ${found.source}`;
  const out: KeySource[] = [];
  const failed: string[] = [];
  for (const url of found.publicKeys) {
    try {
      const { bytes } = await options.get(url, { allowHttp: options.allowHttp, maxBytes: Math.min(MAX_KEY_BYTES, DEFAULT_MAX_PAGE_BYTES) });
      out.push({ location: url, bytes, origin: { foundThrough } });
    } catch (err) {
      if (!isStepFailure(err)) throw err;
      failed.push(`tried ${url}: ${failureText(err)}`);
    }
  }
  if (out.length === 0) {
    // Every step, the discovery's and the downloads', so the user sees the whole path.
    const tried = [...found.tried, `found ${found.publicKeys.length} key URL(s) at ${found.source}`, ...failed];
    throw new NotFoundError(`discover public keys for prefix ${prefix}: no key could be downloaded: ${tried.join('; ')}`, {
      suggestions: [
        `give the key yourself: tspod trust --prefix ${prefix} ./key.asc (or an https:// URL)`,
        ...(options.allowHttp ? [] : ['if a key URL is plain http: --insecure-options=http (unsafe)']),
      ],
    });
  }
  if (failed.length > 0) {
    options.warn(`discover public keys for prefix ${prefix}: some keys found at ${found.source} could not be downloaded: ${failed.join('; ')}`);
  }
  return out;
}

async function discoverIdentityKeys(identity: string, options: GatherKeysOptions): Promise<KeySource[]> {
  const found = await discoverSignerKeys(identity, { get: options.get, dns: options.dns });
  return found.keys.map((key) => ({
    location: key.location,
    bytes: key.bytes,
    origin: { foundThrough: signerKeyOrigin(key, found.address), identity: found.address },
  }));
}

/**
 * The keys to review for `tspod trust [--prefix P | --root] [KEY...]`, in argument order. Fails
 * (listing every location tried) when an argument yields no key.
 */
export async function gatherTrustKeys(target: TrustTarget, args: readonly string[], options: GatherKeysOptions): Promise<KeySource[]> {
  const parsed = args.map(classifyKeyArgument);
  if ('root' in target) {
    const identity = parsed.find((a): a is Extract<KeyArgument, { kind: 'identity' }> => a.kind === 'identity');
    if (parsed.length === 0 || identity !== undefined) {
      const what = identity === undefined ? 'the key file or URL' : `a key file or URL instead of ${identity.identity}`;
      throw new UsageError(`trust --root: give ${what}; root keys are never discovered`, {
        suggestions: ['tspod trust --root ./root.asc', 'or trust a discovered key for a prefix: tspod trust --prefix example.com alice@example.com'],
      });
    }
    return loadKeySources([...args], { get: options.get, allowHttp: options.allowHttp });
  }
  if (parsed.length === 0) return discoverPrefixKeys(target.prefix, options);
  const out: KeySource[] = [];
  for (const arg of parsed) {
    if (arg.kind === 'identity') out.push(...(await discoverIdentityKeys(arg.identity, options)));
    else out.push(...(await loadKeySources([arg.location], { get: options.get, allowHttp: options.allowHttp })));
  }
  return out;
}
