// Where `tspod trust` gets its keys (src/trust/discover-keys.ts), with a recording fake getter and
// resolver: argument kinds, root keys never discovered, the download of discovered key URLs and
// the error that lists every step. The same flows over real DNS and HTTPS are in
// test/integration/trust-discovery.test.ts.
import { describe, expect, it } from 'vitest';

import { DnsNotFoundError } from '../../src/discovery/dns.js';
import type { HttpGet } from '../../src/discovery/http-get.js';
import { NotFoundError, UsageError } from '../../src/errors.js';
import { HttpError } from '../../src/http/client.js';
import { classifyKeyArgument, gatherTrustKeys, signerKeyOrigin, type GatherKeysOptions } from '../../src/trust/discover-keys.js';

const KEY = new Uint8Array([0x99, 0x00, 0x01]); // only its bytes matter here; the review parses keys

const page = (...pubkeys: string[]) =>
  new TextEncoder().encode(`<html><head>${pubkeys.map((u) => `<meta name="ac-discovery-pubkeys" content="${u}">`).join('')}</head></html>`);

/** A getter serving `routes` (anything else: 404) and recording every URL asked for. */
function fakeNet(routes: Record<string, Uint8Array>) {
  const requested: string[] = [];
  const get: HttpGet = async (url) => {
    requested.push(url);
    const bytes = routes[url];
    if (bytes === undefined) throw new HttpError(url, '404 Not Found', { status: 404 });
    return { bytes, finalUrl: url };
  };
  const warnings: string[] = [];
  const options: GatherKeysOptions = {
    get,
    dns: {
      resolveTxt: async (name) => {
        throw new DnsNotFoundError(name, 'TXT', '127.0.0.1:53');
      },
      lookup: async (name) => {
        throw new DnsNotFoundError(name, 'A', '127.0.0.1:53');
      },
      resolveOpenpgpkey: async (name) => {
        throw new DnsNotFoundError(name, 'OPENPGPKEY', '127.0.0.1:53');
      },
    },
    allowHttp: false,
    warn: (m) => warnings.push(m),
  };
  return { options, requested, warnings };
}

describe('classifyKeyArgument', () => {
  it('tells URLs, signer identities and files apart by their spelling', () => {
    expect(classifyKeyArgument('https://example.com/k.asc')).toEqual({ kind: 'location', location: 'https://example.com/k.asc' });
    expect(classifyKeyArgument('https://alice@example.com/k.asc').kind).toBe('location');
    expect(classifyKeyArgument('alice@example.com')).toEqual({ kind: 'identity', identity: 'alice@example.com' });
    expect(classifyKeyArgument('./alice@example.com')).toEqual({ kind: 'location', location: './alice@example.com' });
    expect(classifyKeyArgument('keys/pub.gpg').kind).toBe('location');
    expect(classifyKeyArgument('a@b@c').kind).toBe('location');
  });
});

describe('signerKeyOrigin', () => {
  it('names the method and, for OPENPGPKEY, whether DNSSEC vouched for the answer', () => {
    const at = (method: 'wkd-advanced' | 'wkd-direct' | 'openpgpkey', authenticated?: boolean) =>
      signerKeyOrigin({ bytes: KEY, method, location: 'x', ...(authenticated === undefined ? {} : { authenticated }) }, 'alice@example.com');
    expect(at('wkd-advanced')).toBe('WKD (advanced method) for alice@example.com');
    expect(at('wkd-direct')).toBe('WKD (direct method) for alice@example.com');
    expect(at('openpgpkey', true)).toBe('DNS OPENPGPKEY record for alice@example.com, authenticated by DNSSEC (the resolver set the AD bit)');
    expect(at('openpgpkey', false)).toBe(
      'DNS OPENPGPKEY record for alice@example.com, not authenticated: no DNSSEC (the resolver did not set the AD bit)',
    );
  });
});

describe('gatherTrustKeys', () => {
  it('never discovers root keys: --root without a key, or with an identity, is refused before any request', async () => {
    const net = fakeNet({});
    const err = await gatherTrustKeys({ root: true }, [], net.options).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UsageError);
    expect((err as UsageError).message).toBe('trust --root: give the key file or URL; root keys are never discovered');
    await expect(gatherTrustKeys({ root: true }, ['alice@example.com'], net.options)).rejects.toThrow(
      /give a key file or URL instead of alice@example\.com; root keys are never discovered/,
    );
    expect(net.requested).toEqual([]);
  });

  it('downloads every ac-discovery-pubkeys URL of the prefix and says where each came from', async () => {
    const net = fakeNet({
      'https://example.com/app?ac-discovery=1': page('example.com https://example.com/k1.gpg', 'example.com/app https://cdn.example.com/k2.asc'),
      'https://example.com/k1.gpg': KEY,
      'https://cdn.example.com/k2.asc': KEY,
    });
    const keys = await gatherTrustKeys({ prefix: 'example.com/app' }, [], net.options);
    expect(keys.map((k) => [k.location, k.origin])).toEqual([
      ['https://example.com/k1.gpg', { foundThrough: 'ac-discovery-pubkeys of https://example.com/app?ac-discovery=1' }],
      ['https://cdn.example.com/k2.asc', { foundThrough: 'ac-discovery-pubkeys of https://example.com/app?ac-discovery=1' }],
    ]);
    expect(net.warnings).toEqual([]);
  });

  it('keeps the keys that downloaded and warns about the ones that did not', async () => {
    const net = fakeNet({
      'https://example.com?ac-discovery=1': page('example.com https://example.com/gone.gpg', 'example.com https://example.com/k.gpg'),
      'https://example.com/k.gpg': KEY,
    });
    const keys = await gatherTrustKeys({ prefix: 'example.com' }, [], net.options);
    expect(keys.map((k) => k.location)).toEqual(['https://example.com/k.gpg']);
    expect(net.warnings).toEqual([
      'discover public keys for prefix example.com: some keys found at https://example.com?ac-discovery=1 could not be downloaded: ' +
        'tried https://example.com/gone.gpg: 404 Not Found',
    ]);
  });

  it('fails with every step when no discovered key downloads: the pages tried, where the URLs were found, each URL', async () => {
    const net = fakeNet({ 'https://example.com?ac-discovery=1': page('example.com https://example.com/gone.gpg') });
    const err = await gatherTrustKeys({ prefix: 'example.com/app' }, [], net.options).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NotFoundError);
    expect((err as NotFoundError).message).toBe(
      'discover public keys for prefix example.com/app: no key could be downloaded: ' +
        'tried https://example.com/app?ac-discovery=1: 404 Not Found; ' +
        'found 1 key URL(s) at https://example.com?ac-discovery=1; ' +
        'tried https://example.com/gone.gpg: 404 Not Found',
    );
    expect((err as NotFoundError).suggestions[0]).toBe('give the key yourself: tspod trust --prefix example.com/app ./key.asc (or an https:// URL)');
  });

  it('looks up identities and reads URLs in argument order, each key with its origin', async () => {
    const net = fakeNet({
      'https://example.com/k.asc': KEY,
      'https://openpgpkey.example.com/.well-known/openpgpkey/example.com/hu/jycbiujnsxs47xrkethgtj69xuunurok?l=bob': KEY,
    });
    // openpgpkey.example.com exists, so WKD uses the advanced method (hash as gpg-wks-client --print-wkd-hash prints it).
    net.options.dns.lookup = async () => [{ address: '192.0.2.1', family: 4 }];
    const keys = await gatherTrustKeys({ prefix: 'example.com' }, ['https://example.com/k.asc', 'bob@example.com'], net.options);
    expect(keys.map((k) => [k.location, k.origin])).toEqual([
      ['https://example.com/k.asc', undefined],
      [
        'https://openpgpkey.example.com/.well-known/openpgpkey/example.com/hu/jycbiujnsxs47xrkethgtj69xuunurok?l=bob',
        { foundThrough: 'WKD (advanced method) for bob@example.com', identity: 'bob@example.com' },
      ],
    ]);
  });
});
