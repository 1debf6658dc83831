// How every connection is made, against real HTTPS servers on loopback with a test CA: the DNS
// lookup hook, TLS verification and --insecure-options=tls, plain HTTP and --insecure-options=http,
// credentials sent only to their own host (across redirects), and the retry rules (503 then
// success, 429 with Retry-After, a reset connection, never a 404). Both getBytes and download.
import crypto from 'node:crypto';
import fs from 'node:fs';
import type { LookupFunction } from 'node:net';
import os from 'node:os';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { loadAuthConfig, type AuthConfig } from '../../src/http/auth.js';
import { closeAgents, getBytes, HttpError } from '../../src/http/client.js';
import { download } from '../../src/http/download.js';
import { DEFAULT_RETRY_POLICY } from '../../src/http/retry.js';
import { libcSyscalls } from '../../src/sys/index.js';
import { fileRoute, makeNamedLeaf, recordingSleep, servedFile, statusSequence } from '../support/http-scenarios.js';
import { hasOpenssl, makeTestCa, respond, startServer, type TestCa, type TestServer } from '../support/https-server.js';
import { rejection } from '../support/rejection.js';

/** The HttpError a request rejects with. */
const httpRejection = (p: Promise<unknown>): Promise<HttpError> => rejection(p, HttpError);

/** A resolver that knows only `names` (all on 127.0.0.1) and records every question. */
function fakeLookup(names: string[]): { lookup: LookupFunction; asked: string[] } {
  const asked: string[] = [];
  const lookup: LookupFunction = (hostname, options, callback) => {
    asked.push(hostname);
    if (!names.includes(hostname)) {
      callback(Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' }), '', 0);
      return;
    }
    // Node's connect asks for all addresses when autoSelectFamily is on (the default since Node 20).
    if (options.all) callback(null, [{ address: '127.0.0.1', family: 4 }]);
    else callback(null, '127.0.0.1', 4);
  };
  return { lookup, asked };
}

const sha512 = (b: Buffer) => crypto.createHash('sha512').update(b).digest('hex');

describe.skipIf(!hasOpenssl)('connections (needs openssl)', () => {
  let ca: TestCa;
  let a: TestServer;
  let b: TestServer;
  let named: TestServer;
  let selfSigned: TestServer;
  let plain: TestServer;
  let tmp: string;
  let auth: AuthConfig;
  const body = crypto.randomBytes(200_000);
  const fast = recordingSleep();
  const common = () => ({ ca: ca.caCert, sys: libcSyscalls, tmpDir: tmp, sleep: fast.sleep });

  beforeAll(async () => {
    ca = makeTestCa();
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tspod-conn-'));
    const tls = { cert: ca.cert, key: ca.key };
    a = await startServer({ tls, routes: { '/private': respond.bytes('secret'), '/file': fileRoute(servedFile(body)) } });
    b = await startServer({ tls, routes: { '/private': respond.bytes('other'), '/file': fileRoute(servedFile(body)) } });
    a.route('/to-b', respond.redirect(`${b.origin}/private`));
    a.route('/file-to-b', respond.redirect(`${b.origin}/file`));
    a.route('/to-localhost', respond.redirect(`https://localhost:${a.port}/private`));
    b.route('/to-a', respond.redirect(`${a.origin}/private`));
    named = await startServer({ tls: makeNamedLeaf(ca, ['registry.tspod.test']), routes: { '/file': fileRoute(servedFile(body)) } });
    selfSigned = await startServer({ tls: { cert: ca.selfSignedCert, key: ca.selfSignedKey }, routes: { '/file': fileRoute(servedFile(body)) } });
    plain = await startServer({ routes: { '/file': fileRoute(servedFile(body)) } });

    const config = path.join(tmp, 'config');
    fs.mkdirSync(path.join(config, 'auth.d'), { recursive: true });
    fs.writeFileSync(
      path.join(config, 'auth.d', 'a.json'),
      JSON.stringify({ rktKind: 'auth', rktVersion: 'v1', domains: [`127.0.0.1:${a.port}`], type: 'basic', credentials: { user: 'alice', password: 's3cret' } }),
    );
    auth = loadAuthConfig({ systemDir: path.join(tmp, 'no-system'), localDir: config });
  });

  afterAll(async () => {
    await closeAgents();
    await Promise.all([a, b, named, selfSigned, plain].map((s) => s?.close()));
    ca?.cleanup();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  describe('the DNS lookup hook', () => {
    it('resolves a made-up name through the hook for getBytes and download, TLS verified for that name', async () => {
      const { lookup, asked } = fakeLookup(['registry.tspod.test']);
      const url = `https://registry.tspod.test:${named.port}/file`;
      const small = await getBytes(url, { ca: ca.caCert, lookup });
      expect(sha512(Buffer.from(small.bytes))).toBe(sha512(body));
      await closeAgents(); // a new connection, so the hook is asked again
      const big = await download(url, { ...common(), lookup, key: 'lookup' });
      expect(big.sha512).toBe(sha512(body));
      expect(asked).toEqual(['registry.tspod.test', 'registry.tspod.test']);
      expect(named.requests.map((r) => r.headers.host)).toEqual([`registry.tspod.test:${named.port}`, `registry.tspod.test:${named.port}`]);
      fs.rmSync(big.path);
    });

    it('reports the hook\'s failure for a name it does not know', async () => {
      const { lookup } = fakeLookup([]);
      const err = await httpRejection(getBytes(`https://nowhere.tspod.test:${named.port}/file`, { ca: ca.caCert, lookup }));
      expect(err.message).toMatch(/ENOTFOUND nowhere\.tspod\.test/);
    });
  });

  describe('TLS and plain HTTP', () => {
    it('refuses a server whose CA is not trusted, for download too', async () => {
      const err = await httpRejection(download(`${a.origin}/file`, { sys: libcSyscalls, tmpDir: tmp, sleep: fast.sleep }));
      expect(err.message).toMatch(/^download https:\/\/127\.0\.0\.1:\d+\/file: TLS certificate not trusted: .*UNABLE_TO_VERIFY_LEAF_SIGNATURE/);
      expect(err.suggestions.join(' ')).toContain('--insecure-options=tls');
    });

    it('refuses a self-signed certificate without insecureTls and accepts it with', async () => {
      const err = await httpRejection(download(`${selfSigned.origin}/file`, { ...common() }));
      expect(err.message).toMatch(/TLS certificate not trusted: .*SELF_SIGNED/);
      const ok = await download(`${selfSigned.origin}/file`, { ...common(), insecureTls: true });
      expect(ok.sha512).toBe(sha512(body));
      fs.rmSync(ok.path);
    });

    it('refuses plain http without allowHttp (no request sent) and downloads with it', async () => {
      const before = plain.requests.length;
      const err = await httpRejection(download(`${plain.origin}/file`, { ...common() }));
      expect(err.message).toBe(`download ${plain.origin}/file: plain http is not allowed`);
      expect(err.suggestions).toEqual(['use an https:// URL, or pass --insecure-options=http']);
      expect(plain.requests.length).toBe(before);
      const ok = await download(`${plain.origin}/file`, { ...common(), allowHttp: true });
      expect(ok.sha512).toBe(sha512(body));
      fs.rmSync(ok.path);
    });
  });

  describe('credentials go only to their host', () => {
    const expected = `Basic ${Buffer.from('alice:s3cret').toString('base64')}`;
    const last = (s: TestServer, url: string) => s.requests.filter((r) => r.url === url).at(-1);

    it('sends them to the configured host:port', async () => {
      await getBytes(`${a.origin}/private`, { ca: ca.caCert, auth });
      expect(last(a, '/private')?.headers.authorization).toBe(expected);
    });

    it('drops them on a redirect to another server (getBytes and download)', async () => {
      const r = await getBytes(`${a.origin}/to-b`, { ca: ca.caCert, auth });
      expect(Buffer.from(r.bytes).toString()).toBe('other');
      expect(last(a, '/to-b')?.headers.authorization).toBe(expected);
      expect(last(b, '/private')?.headers).not.toHaveProperty('authorization');

      const d = await download(`${a.origin}/file-to-b`, { ...common(), auth, key: 'auth-redirect' });
      expect(d.finalUrl).toBe(`${b.origin}/file`);
      expect(last(a, '/file-to-b')?.headers.authorization).toBe(expected);
      expect(last(b, '/file')?.headers).not.toHaveProperty('authorization');
      fs.rmSync(d.path);
    });

    it('drops them on a redirect to another name of the same server (localhost vs 127.0.0.1)', async () => {
      const { lookup } = fakeLookup(['localhost']);
      const before = a.requests.length;
      await getBytes(`${a.origin}/to-localhost`, { ca: ca.caCert, auth, lookup });
      const [first, second] = a.requests.slice(before);
      expect(first).toMatchObject({ url: '/to-localhost', headers: { authorization: expected } });
      expect(second?.url).toBe('/private');
      expect(second?.headers.host).toBe(`localhost:${a.port}`);
      expect(second?.headers).not.toHaveProperty('authorization');
    });

    it('a redirect back to the configured host gets that host\'s credentials', async () => {
      await getBytes(`${b.origin}/to-a`, { ca: ca.caCert, auth });
      expect(last(b, '/to-a')?.headers).not.toHaveProperty('authorization');
      expect(last(a, '/private')?.headers.authorization).toBe(expected);
    });

    it('suggests adding credentials on a 401 from a host without any', async () => {
      b.route('/locked', respond.status(401));
      const err = await httpRejection(getBytes(`${b.origin}/locked`, { ca: ca.caCert, auth }));
      expect(err.message).toBe(`get ${b.origin}/locked: 401 Unauthorized`);
      expect(err.suggestions).toEqual([`add credentials for 127.0.0.1:${b.port} to an auth.d/*.json file of the local config (rktKind "auth")`]);
      a.route('/locked', respond.status(403));
      const withCreds = await httpRejection(getBytes(`${a.origin}/locked`, { ca: ca.caCert, auth }));
      expect(withCreds.suggestions[0]).toMatch(new RegExp(`^check the credentials for 127\\.0\\.0\\.1:${a.port} in .*a\\.json$`));
    });
  });

  describe('retries', () => {
    it('retries a 503 with backoff, then succeeds (getBytes with a policy, download by default)', async () => {
      const sleep = recordingSleep();
      const route = statusSequence([{ status: 503 }, { status: 503 }], respond.bytes('finally'));
      a.route('/flaky', route);
      const r = await getBytes(`${a.origin}/flaky`, { ca: ca.caCert, retry: { ...DEFAULT_RETRY_POLICY, baseDelayMs: 100 }, sleep: sleep.sleep });
      expect(Buffer.from(r.bytes).toString()).toBe('finally');
      expect(route.hits()).toBe(3);
      expect(sleep.delays).toHaveLength(2);
      expect(sleep.delays[0]).toBeGreaterThanOrEqual(50);
      expect(sleep.delays[0]).toBeLessThanOrEqual(100);
      expect(sleep.delays[1]).toBeGreaterThanOrEqual(100);
      expect(sleep.delays[1]).toBeLessThanOrEqual(200);

      const file = servedFile(body);
      const dlRoute = statusSequence([{ status: 502 }], fileRoute(file));
      b.route('/flaky-file', dlRoute);
      const dlSleep = recordingSleep();
      const events: string[] = [];
      const d = await download(`${b.origin}/flaky-file`, { ...common(), sleep: dlSleep.sleep, key: 'flaky', onProgress: (e) => events.push(e.type) });
      expect(d.sha512).toBe(sha512(body));
      expect(dlRoute.hits()).toBe(2);
      expect(dlSleep.delays).toHaveLength(1);
      expect(events[0]).toBe('retry');
      fs.rmSync(d.path);
    });

    it('gives up after the policy\'s tries with the count in the error', async () => {
      const sleep = recordingSleep();
      const route = statusSequence(Array(10).fill({ status: 500 }), respond.bytes('never'));
      a.route('/down', route);
      const err = await httpRejection(getBytes(`${a.origin}/down`, { ca: ca.caCert, retry: { ...DEFAULT_RETRY_POLICY, attempts: 3 }, sleep: sleep.sleep }));
      expect(err.message).toBe(`get ${a.origin}/down: 500 Internal Server Error (gave up after 3 tries)`);
      expect(err.status).toBe(500);
      expect(route.hits()).toBe(3);
    });

    it('never retries a 404', async () => {
      const sleep = recordingSleep();
      const before = b.requests.length;
      const err = await httpRejection(download(`${b.origin}/missing.aci`, { ...common(), sleep: sleep.sleep }));
      expect(err.message).toBe(`download ${b.origin}/missing.aci: 404 Not Found`);
      expect(err.status).toBe(404);
      expect(b.requests.length - before).toBe(1);
      expect(sleep.delays).toEqual([]);
    });

    it('waits what a 429 Retry-After asks', async () => {
      const sleep = recordingSleep();
      const route = statusSequence([{ status: 429, headers: { 'retry-after': '2' } }], respond.bytes('ok'));
      a.route('/busy', route);
      const r = await getBytes(`${a.origin}/busy`, { ca: ca.caCert, retry: DEFAULT_RETRY_POLICY, sleep: sleep.sleep });
      expect(Buffer.from(r.bytes).toString()).toBe('ok');
      expect(sleep.delays).toEqual([2000]);
    });

    it('stops waiting for a retry at the overall deadline, with an HttpError saying so', async () => {
      const route = statusSequence([{ status: 503, headers: { 'retry-after': '20' } }], respond.bytes('too late'));
      a.route('/slow-retry', route);
      const started = Date.now();
      const err = await httpRejection(getBytes(`${a.origin}/slow-retry`, { ca: ca.caCert, retry: DEFAULT_RETRY_POLICY, timeoutMs: 2000 }));
      expect(err.message).toBe(`get ${a.origin}/slow-retry: 503 Service Unavailable, Retry-After 20 s; timed out waiting to try again`);
      expect(Date.now() - started).toBeLessThan(15_000);
      expect(route.hits()).toBe(1);
    });

    it('retries a connection the server resets before answering', async () => {
      const sleep = recordingSleep();
      let hits = 0;
      a.route('/reset', (req, res) => {
        hits += 1;
        if (hits === 1) req.socket.destroy();
        else respond.bytes('after reset')(req, res);
      });
      const r = await getBytes(`${a.origin}/reset`, { ca: ca.caCert, retry: DEFAULT_RETRY_POLICY, sleep: sleep.sleep });
      expect(Buffer.from(r.bytes).toString()).toBe('after reset');
      expect(hits).toBe(2);
      expect(sleep.delays).toHaveLength(1);
    });
  });
});
