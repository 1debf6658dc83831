// Cache validation for --pull-policy: the decision as data (policy x record x age), Cache-Control
// parsing, and the conditional GET against a real HTTPS server (304 = unchanged, 200 = new body).
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { decideCache, maxAgeOf, parseCacheControl, recordOfDownload, revalidate, type CacheDecision, type CacheRecord, type PullPolicy } from '../../src/http/cache.js';
import { closeAgents } from '../../src/http/client.js';
import { download } from '../../src/http/download.js';
import { libcSyscalls } from '../../src/sys/index.js';
import { fileRoute, servedFile } from '../support/http-scenarios.js';
import { hasOpenssl, makeTestCa, startServer, type TestCa, type TestServer } from '../support/https-server.js';

const NOW = Date.parse('2024-05-01T12:00:00Z');
const ago = (seconds: number) => new Date(NOW - seconds * 1000).toISOString();
const record = (over: Partial<CacheRecord> = {}): CacheRecord => ({
  url: 'https://example.com/app.aci',
  etag: '"abc"',
  lastModified: 'Mon, 01 Jan 2024 00:00:00 GMT',
  fetchedAt: ago(60),
  maxAge: 3600,
  ...over,
});

describe('decideCache', () => {
  const cases: [string, CacheRecord | undefined, PullPolicy, CacheDecision['action']][] = [
    ['nothing stored, never', undefined, 'never', 'missing'],
    ['nothing stored, new', undefined, 'new', 'refetch'],
    ['nothing stored, update', undefined, 'update', 'refetch'],
    ['stored and stale, never', record({ fetchedAt: ago(99_999) }), 'never', 'fresh'],
    ['stored and stale, new', record({ fetchedAt: ago(99_999) }), 'new', 'fresh'],
    ['update within max-age', record({ fetchedAt: ago(60), maxAge: 3600 }), 'update', 'fresh'],
    ['update at exactly max-age', record({ fetchedAt: ago(3600), maxAge: 3600 }), 'update', 'revalidate'],
    ['update past max-age with an ETag', record({ fetchedAt: ago(7200) }), 'update', 'revalidate'],
    ['update past max-age with Last-Modified only', record({ fetchedAt: ago(7200), etag: null }), 'update', 'revalidate'],
    ['update without max-age', record({ maxAge: null }), 'update', 'revalidate'],
    ['update with max-age 0 (no-cache)', record({ maxAge: 0 }), 'update', 'revalidate'],
    ['update, stale, no validator', record({ fetchedAt: ago(7200), etag: null, lastModified: null }), 'update', 'refetch'],
    ['update, fetched in the future (clock skew)', record({ fetchedAt: ago(-600) }), 'update', 'revalidate'],
    ['update, unparsable fetchedAt', record({ fetchedAt: 'yesterday' }), 'update', 'revalidate'],
  ];
  it.each(cases)('%s -> %s', (_name, rec, policy, action) => {
    expect(decideCache(rec, policy, NOW).action).toBe(action);
  });

  it('a revalidation carries the stored validators and says which header it uses', () => {
    expect(decideCache(record({ fetchedAt: ago(7200) }), 'update', NOW)).toEqual({
      action: 'revalidate',
      reason: 'older than max-age=3600; asking the server with If-None-Match',
      etag: '"abc"',
      lastModified: 'Mon, 01 Jan 2024 00:00:00 GMT',
    });
    expect(decideCache(record({ etag: null, maxAge: null }), 'update', NOW).reason).toBe('no max-age; asking the server with If-Modified-Since');
  });

  it('a fresh copy says how old it is', () => {
    expect(decideCache(record(), 'update', NOW)).toEqual({ action: 'fresh', reason: 'fetched 60 s ago, within max-age=3600' });
  });
});

describe('Cache-Control (RFC 9111 §5.2)', () => {
  const cases: [string | null, number | null][] = [
    [null, null],
    ['', null],
    ['max-age=600', 600],
    ['public, MAX-AGE=60, must-revalidate', 60],
    ['max-age="120"', 120],
    ['no-cache', 0],
    ['max-age=600, no-store', 0],
    ['max-age=abc', 0],
    ['s-maxage=600', null],
  ];
  it.each(cases)('%j -> max-age %s', (value, maxAge) => {
    expect(maxAgeOf(value)).toBe(maxAge);
  });

  it('reports the directives it understands', () => {
    expect(parseCacheControl('No-Cache, max-age=5')).toEqual({ maxAge: 5, noCache: true, noStore: false });
  });
});

describe.skipIf(!hasOpenssl)('revalidation over HTTPS (needs openssl)', () => {
  let ca: TestCa;
  let server: TestServer;
  let tmp: string;
  const body = crypto.randomBytes(50_000);
  const file = servedFile(body, { cacheControl: 'max-age=60' });

  beforeAll(async () => {
    ca = makeTestCa();
    server = await startServer({ tls: { cert: ca.cert, key: ca.key }, routes: { '/app.aci': fileRoute(file) } });
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tspod-cache-'));
  });

  afterAll(async () => {
    await closeAgents();
    await server?.close();
    ca?.cleanup();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  const opts = () => ({ ca: ca.caCert, sys: libcSyscalls, tmpDir: tmp, now: () => NOW });

  it('a 304 answer to If-None-Match means unchanged and freshens the record', async () => {
    const url = `${server.origin}/app.aci`;
    const first = await download(url, opts());
    const rec = recordOfDownload(url, first, NOW - 7200_000);
    expect(rec).toEqual({ url, etag: '"v1"', lastModified: 'Mon, 01 Jan 2024 00:00:00 GMT', fetchedAt: ago(7200), maxAge: 60 });
    expect(decideCache(rec, 'update', NOW).action).toBe('revalidate');

    file.cacheControl = 'max-age=300';
    const servedBefore = file.served;
    const result = await revalidate(rec, opts());
    expect(result).toEqual({ outcome: 'unchanged', record: { ...rec, fetchedAt: new Date(NOW).toISOString(), maxAge: 300 } });
    expect(server.requests.at(-1)?.headers).toMatchObject({ 'if-none-match': '"v1"', 'if-modified-since': 'Mon, 01 Jan 2024 00:00:00 GMT' });
    expect(file.served).toBe(servedBefore); // no body sent
    expect(fs.readdirSync(tmp)).toEqual([path.basename(first.path)]);
  });

  it('a changed ETag gets the new body and a new record', async () => {
    const url = `${server.origin}/app.aci`;
    const newer = crypto.randomBytes(60_000);
    file.body = newer;
    file.etag = '"v2"';
    const result = await revalidate({ url, etag: '"v1"', lastModified: null, fetchedAt: ago(7200), maxAge: 60 }, opts());
    expect(result.outcome).toBe('changed');
    if (result.outcome !== 'changed') return;
    expect(result.download.sha512).toBe(crypto.createHash('sha512').update(newer).digest('hex'));
    expect(fs.readFileSync(result.download.path).equals(newer)).toBe(true);
    expect(result.record).toMatchObject({ etag: '"v2"', fetchedAt: new Date(NOW).toISOString(), maxAge: 300 });
    expect(server.requests.at(-1)?.headers['if-none-match']).toBe('"v1"');
  });

  it('revalidates with If-Modified-Since alone when only Last-Modified is known', async () => {
    const url = `${server.origin}/app.aci`;
    const result = await revalidate({ url, etag: null, lastModified: 'Tue, 02 Jan 2024 00:00:00 GMT', fetchedAt: ago(7200), maxAge: null }, opts());
    expect(result.outcome).toBe('unchanged');
    const headers = server.requests.at(-1)?.headers;
    expect(headers).not.toHaveProperty('if-none-match');
    expect(headers?.['if-modified-since']).toBe('Tue, 02 Jan 2024 00:00:00 GMT');
  });
});
