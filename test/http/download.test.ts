// Resumable downloads against a real HTTPS server on loopback that cuts, stalls and changes its
// file on demand (test/support/http-scenarios.ts): resume with Range + If-Range, restart when the
// file changed, a partial left by a process killed with SIGKILL resumed by a new call, size cap,
// idle and overall timeouts, the sha512 and onData stream covering every byte exactly once.
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';

import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';

import { closeAgents, HttpError } from '../../src/http/client.js';
import { download, partialKey, partialPaths, type DownloadEvent, type DownloadOptions } from '../../src/http/download.js';
import { NO_RETRY } from '../../src/http/retry.js';
import { libcSyscalls } from '../../src/sys/index.js';
import { fileRoute, recordingSleep, servedFile, type ServedFile } from '../support/http-scenarios.js';
import { hasOpenssl, makeTestCa, startServer, type TestCa, type TestServer } from '../support/https-server.js';
import { rejection } from '../support/rejection.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const sha512 = (b: Uint8Array) => crypto.createHash('sha512').update(b).digest('hex');

/**
 * The N of a request's `Range: bytes=N-`. Bytes the server sent before a cut may not all reach the
 * file (undici drops what its body stream buffered when the connection fails), so tests compare
 * the Range with what is on disk, not with where the server cut.
 */
function rangeFrom(header: string | string[] | undefined): number {
  const m = /^bytes=(\d+)-$/.exec(String(header));
  return m ? Number(m[1]) : NaN;
}

/** The HttpError a request rejects with. */
const httpRejection = (p: Promise<unknown>): Promise<HttpError> => rejection(p, HttpError);

/** Collects what onData sees; a restart empties it, as a verifier would start over. */
function collector(): { opts: Pick<DownloadOptions, 'onData' | 'onRestart'>; bytes: () => Buffer; restarts: string[]; offsets: number[] } {
  let chunks: Buffer[] = [];
  const restarts: string[] = [];
  const offsets: number[] = [];
  let expected = 0;
  return {
    opts: {
      onData: (chunk, offset) => {
        // Every byte exactly once, in order: each chunk starts where the previous one ended.
        if (offset !== expected) throw new Error(`onData at ${offset}, expected ${expected}`);
        offsets.push(offset);
        chunks.push(Buffer.from(chunk));
        expected = offset + chunk.length;
      },
      onRestart: (reason) => {
        restarts.push(reason);
        chunks = [];
        expected = 0;
      },
    },
    bytes: () => Buffer.concat(chunks),
    restarts,
    offsets,
  };
}

describe.skipIf(!hasOpenssl)('download (needs openssl)', () => {
  let ca: TestCa;
  let server: TestServer;
  let tmp: string;
  let counter = 0;
  let url: string;
  let file: ServedFile;
  const body = crypto.randomBytes(2 * 1024 * 1024);
  const half = body.length / 2;

  /** Options of a test: its own key (partial name) and a sleep that does not wait. */
  const base = (extra: Partial<DownloadOptions> = {}): DownloadOptions => ({
    ca: ca.caCert,
    sys: libcSyscalls,
    tmpDir: tmp,
    key: `t${counter}`,
    sleep: recordingSleep().sleep,
    ...extra,
  });
  const requestsFor = (p: string) => server.requests.filter((r) => r.url === p);

  beforeAll(async () => {
    ca = makeTestCa();
    server = await startServer({ tls: { cert: ca.cert, key: ca.key } });
  });

  beforeEach(() => {
    counter += 1;
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tspod-dl-'));
    file = servedFile(body);
    server.route(`/f${counter}.aci`, fileRoute(file));
    url = `${server.origin}/f${counter}.aci`;
  });

  afterEach(() => {
    for (const res of file.stalled) res.destroy();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  afterAll(async () => {
    await closeAgents();
    await server?.close();
    ca?.cleanup();
  });

  it('downloads a file: sha512, size, validators, content type, progress from start to done', async () => {
    file.cacheControl = 'max-age=3600';
    const events: DownloadEvent[] = [];
    const seen = collector();
    const r = await download(url, base({ ...seen.opts, onProgress: (e) => events.push(e) }));
    expect(r).toMatchObject({
      sha512: sha512(body),
      bytes: body.length,
      etag: '"v1"',
      lastModified: 'Mon, 01 Jan 2024 00:00:00 GMT',
      cacheControl: 'max-age=3600',
      contentType: 'application/octet-stream',
      finalUrl: url,
      resumedFrom: 0,
    });
    expect(sha512(fs.readFileSync(r.path))).toBe(sha512(body));
    expect(path.dirname(r.path)).toBe(tmp);
    expect(seen.bytes().equals(body)).toBe(true);
    expect(events[0]).toEqual({ type: 'start', url, bytes: 0, total: body.length, resumedFrom: 0 });
    expect(events.at(-1)).toMatchObject({ type: 'done', bytes: body.length, total: body.length });
    const data = events.filter((e): e is Extract<DownloadEvent, { type: 'data' }> => e.type === 'data');
    expect(data.length).toBeGreaterThan(1);
    expect(data.every((e, i) => i === 0 || e.bytes > data[i - 1]!.bytes)).toBe(true);
    // Nothing left behind but the finished file.
    expect(fs.readdirSync(tmp)).toEqual([path.basename(r.path)]);
  });

  it('hashBody: false skips the sha512 (undefined) and still delivers and stores every byte across a resume', async () => {
    file.faults = [{ resetAfter: half }];
    const seen = collector();
    const r = await download(url, base({ sleep: recordingSleep().sleep, ...seen.opts, hashBody: false }));
    expect(r.sha512).toBeUndefined();
    expect(sha512(fs.readFileSync(r.path))).toBe(sha512(body));
    expect(seen.bytes().equals(body)).toBe(true);
  });

  it('resumes a body whose connection the server destroyed at half, with Range + If-Range; the sha512 covers the whole file', async () => {
    file.faults = [{ resetAfter: half }];
    const sleeper = recordingSleep();
    const events: DownloadEvent[] = [];
    const seen = collector();
    const r = await download(url, base({ sleep: sleeper.sleep, ...seen.opts, onProgress: (e) => events.push(e) }));
    const [first, second] = requestsFor(`/f${counter}.aci`);
    expect(first?.headers).not.toHaveProperty('range');
    const from = rangeFrom(second?.headers.range);
    expect(from).toBeGreaterThan(0);
    expect(from).toBeLessThanOrEqual(half);
    expect(second?.headers['if-range']).toBe('"v1"');
    expect(file.partial).toBe(1);
    expect(r.sha512).toBe(sha512(body));
    expect(sha512(fs.readFileSync(r.path))).toBe(sha512(body));
    expect(seen.bytes().equals(body)).toBe(true);
    expect(seen.restarts).toEqual([]);
    expect(sleeper.delays).toHaveLength(1);
    expect(events.filter((e) => e.type === 'retry')).toHaveLength(1);
  });

  it('restarts from zero when the ETag changed (If-Range -> 200), telling onData to start over', async () => {
    const changed = crypto.randomBytes(body.length + 1000);
    file.faults = [{ cutAfter: half }];
    const events: DownloadEvent[] = [];
    const seen = collector();
    // The server publishes a new version while the client waits to retry.
    const sleepThenChange = async () => {
      file.body = changed;
      file.etag = '"v2"';
    };
    const r = await download(url, base({ sleep: sleepThenChange, ...seen.opts, onProgress: (e) => events.push(e) }));
    const second = requestsFor(`/f${counter}.aci`)[1];
    expect(rangeFrom(second?.headers.range)).toBeGreaterThan(0);
    expect(second?.headers['if-range']).toBe('"v1"');
    expect(file.partial).toBe(0); // the server answered 200
    expect(r).toMatchObject({ sha512: sha512(changed), bytes: changed.length, etag: '"v2"' });
    expect(sha512(fs.readFileSync(r.path))).toBe(sha512(changed));
    expect(seen.restarts).toHaveLength(1);
    expect(seen.restarts[0]).toMatch(/the server sent the whole file/);
    expect(seen.bytes().equals(changed)).toBe(true);
    expect(events.some((e) => e.type === 'restart')).toBe(true);
  });

  it('keeps the partial when it gives up, and a later call resumes it (prefix replayed to onData)', async () => {
    file.faults = [{ cutAfter: half }];
    const err = await httpRejection(download(url, base({ retry: NO_RETRY })));
    const { partial, sidecar } = partialPaths(tmp, `t${counter}`);
    const kept = fs.statSync(partial).size;
    expect(kept).toBeGreaterThan(0);
    expect(kept).toBeLessThanOrEqual(half);
    expect(err.message).toMatch(new RegExp(`^download ${url}: connection closed by the server .*\\(${kept} bytes kept for a later run\\)$`));
    expect(JSON.parse(fs.readFileSync(sidecar, 'utf8'))).toMatchObject({ version: 1, url, ifRange: '"v1"', etag: '"v1"', bytes: kept, total: body.length });

    const seen = collector();
    const events: DownloadEvent[] = [];
    const r = await download(url, base({ ...seen.opts, onProgress: (e) => events.push(e) }));
    expect(requestsFor(`/f${counter}.aci`).at(-1)?.headers).toMatchObject({ range: `bytes=${kept}-`, 'if-range': '"v1"' });
    expect(r).toMatchObject({ sha512: sha512(body), bytes: body.length, resumedFrom: kept });
    expect(seen.bytes().equals(body)).toBe(true);
    expect(seen.offsets[0]).toBe(0);
    expect(events[0]).toMatchObject({ type: 'start', bytes: kept, total: body.length, resumedFrom: kept });
    expect(fs.existsSync(partial)).toBe(false);
    expect(fs.existsSync(sidecar)).toBe(false);
  });

  it('refuses to resume a partial of an older version in a later call: 200 -> restart from zero', async () => {
    file.faults = [{ cutAfter: half }];
    await httpRejection(download(url, base({ retry: NO_RETRY })));
    const kept = fs.statSync(partialPaths(tmp, `t${counter}`).partial).size;
    const changed = crypto.randomBytes(1000);
    file.body = changed;
    file.etag = '"v2"';
    const events: DownloadEvent[] = [];
    const r = await download(url, base({ onProgress: (e) => events.push(e) }));
    expect(requestsFor(`/f${counter}.aci`).at(-1)?.headers).toMatchObject({ range: `bytes=${kept}-`, 'if-range': '"v1"' });
    expect(r).toMatchObject({ sha512: sha512(changed), bytes: 1000, resumedFrom: 0 });
    expect(fs.readFileSync(r.path).equals(changed)).toBe(true);
    expect(events.map((e) => e.type)).toContain('restart');
  });

  it('resumes with the Last-Modified date as If-Range when there is no ETag', async () => {
    file.etag = null;
    file.faults = [{ cutAfter: half }];
    const r = await download(url, base());
    const second = requestsFor(`/f${counter}.aci`)[1];
    expect(rangeFrom(second?.headers.range)).toBeGreaterThan(0);
    expect(second?.headers['if-range']).toBe('Mon, 01 Jan 2024 00:00:00 GMT');
    expect(r.sha512).toBe(sha512(body));
  });

  it('never resumes without a strong validator (weak ETag, no Last-Modified): the retry starts from zero', async () => {
    file.etag = 'W/"weak"';
    file.lastModified = null;
    file.faults = [{ cutAfter: half }];
    const seen = collector();
    const r = await download(url, base(seen.opts));
    const [, second] = requestsFor(`/f${counter}.aci`);
    expect(second?.headers).not.toHaveProperty('range');
    expect(second?.headers).not.toHaveProperty('if-range');
    expect(r.sha512).toBe(sha512(body));
    expect(seen.restarts).toHaveLength(1);
    expect(seen.bytes().equals(body)).toBe(true);
  });

  it('restarts when a 206 does not start where the partial ends', async () => {
    let hits = 0;
    server.route(`/bad-range${counter}`, (req, res) => {
      hits += 1;
      if (hits === 1) {
        res.writeHead(200, { etag: '"x"', 'content-length': body.length });
        res.write(body.subarray(0, half), () => res.socket?.end());
      } else if (req.headers.range) {
        const wrong = rangeFrom(req.headers.range) + 10;
        res.writeHead(206, { etag: '"x"', 'content-range': `bytes ${wrong}-${body.length - 1}/${body.length}`, 'content-length': body.length - wrong });
        res.end(body.subarray(wrong));
      } else {
        res.writeHead(200, { etag: '"x"', 'content-length': body.length }).end(body);
      }
    });
    const seen = collector();
    const r = await download(`${server.origin}/bad-range${counter}`, base(seen.opts));
    expect(hits).toBe(3);
    expect(r.sha512).toBe(sha512(body));
    expect(seen.restarts[0]).toMatch(/^a 206 answer starting at byte (\d+) instead of (\d+): starting again from zero$/);
    const [, got, wanted] = /byte (\d+) instead of (\d+)/.exec(seen.restarts[0]!)!;
    expect(Number(got)).toBe(Number(wanted) + 10);
    expect(seen.bytes().equals(body)).toBe(true);
  });

  it('refuses a body over maxBytes by Content-Length without keeping anything', async () => {
    const before = file.served;
    const err = await httpRejection(download(url, base({ maxBytes: 1024 })));
    expect(err.message).toBe(`download ${url}: response of ${body.length} bytes exceeds the limit of 1024 bytes`);
    expect(file.served - before).toBe(1);
    expect(fs.readdirSync(tmp)).toEqual([]);
  });

  it('refuses a chunked body once it passes maxBytes', async () => {
    server.route(`/chunked${counter}`, (_req, res) => {
      res.writeHead(200, { etag: '"c"' });
      for (let i = 0; i < 8; i++) res.write(Buffer.alloc(4096, i));
      res.end();
    });
    const err = await httpRejection(download(`${server.origin}/chunked${counter}`, base({ maxBytes: 10_000 })));
    expect(err.message).toBe(`download ${server.origin}/chunked${counter}: response exceeds the limit of 10000 bytes`);
    expect(fs.readdirSync(tmp)).toEqual([]);
  });

  it('fails a stalled body after the idle timeout and keeps what arrived', async () => {
    file.faults = [{ stallAfter: 100_000 }];
    const err = await httpRejection(download(url, base({ idleTimeoutMs: 1000, retry: NO_RETRY })));
    expect(err.message).toBe(`download ${url}: no data for 1000 ms while waiting for the response body (idle timeout) (100000 bytes kept for a later run)`);
    expect(fs.statSync(partialPaths(tmp, `t${counter}`).partial).size).toBe(100_000);
  });

  it('retries after an idle timeout, resuming where the stalled body stopped', async () => {
    file.faults = [{ stallAfter: 100_000 }];
    const r = await download(url, base({ idleTimeoutMs: 1000 }));
    expect(requestsFor(`/f${counter}.aci`)[1]?.headers).toMatchObject({ range: 'bytes=100000-' });
    expect(r.sha512).toBe(sha512(body));
  });

  it('stops at the overall timeout even while bytes trickle in', async () => {
    server.route(`/trickle${counter}`, (_req, res) => {
      res.writeHead(200, { etag: '"t"', 'content-length': 1000 });
      const timer = setInterval(() => res.write('x'), 50);
      res.on('close', () => clearInterval(timer));
    });
    const err = await httpRejection(download(`${server.origin}/trickle${counter}`, base({ timeoutMs: 1500, idleTimeoutMs: 5000 })));
    expect(err.message).toMatch(new RegExp(`^download ${server.origin}/trickle${counter}: timed out after 1500 ms \\(\\d+ bytes kept for a later run\\)$`));
  });

  it('two concurrent downloads of one URL both succeed (the second in a private partial)', async () => {
    const [x, y] = await Promise.all([download(url, base({ key: undefined })), download(url, base({ key: undefined }))]);
    expect(x.sha512).toBe(sha512(body));
    expect(y.sha512).toBe(sha512(body));
    expect(x.path).not.toBe(y.path);
    expect(fs.readdirSync(tmp).sort()).toEqual([path.basename(x.path), path.basename(y.path)].sort());
    expect(partialPaths(tmp, partialKey(url)).partial).toMatch(/download-[0-9a-f]{32}\.partial$/);
  });

  it('resumes the partial of a process killed with SIGKILL', async () => {
    file.faults = [{ stallAfter: half }];
    const key = `killed${counter}`;
    const { partial, sidecar } = partialPaths(tmp, key);
    const script = `
      import fs from 'node:fs';
      import { download } from ${JSON.stringify(path.join(repoRoot, 'dist/src/http/download.js'))};
      import { libcSyscalls } from ${JSON.stringify(path.join(repoRoot, 'dist/src/sys/index.js'))};
      const [url, tmpDir, caPath, key] = process.argv.slice(1);
      await download(url, { tmpDir, key, sys: libcSyscalls, ca: fs.readFileSync(caPath, 'utf8') });
      process.stdout.write('finished');`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script, url, tmp, ca.caCertPath, key], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<NodeJS.Signals | number | null>((resolve) => child.on('exit', (code, signal) => resolve(signal ?? code)));
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      if (fs.existsSync(partial) && fs.statSync(partial).size >= half && fs.existsSync(sidecar)) break;
      if (child.exitCode !== null) break;
      await sleep(20);
    }
    expect(fs.existsSync(partial) ? fs.statSync(partial).size : -1, `child stderr: ${stderr}`).toBe(half);
    child.kill('SIGKILL');
    expect(await exited).toBe('SIGKILL');

    const seen = collector();
    const r = await download(url, base({ key, ...seen.opts }));
    expect(requestsFor(`/f${counter}.aci`).at(-1)?.headers).toMatchObject({ range: `bytes=${half}-`, 'if-range': '"v1"' });
    expect(r).toMatchObject({ sha512: sha512(body), bytes: body.length, resumedFrom: half });
    expect(seen.bytes().equals(body)).toBe(true);
    expect(sha512(fs.readFileSync(r.path))).toBe(sha512(body));
  });

  it('discards the partial when onData refuses the bytes', async () => {
    const err = await download(url, base({ onData: () => {
      throw new Error('bad signature');
    } })).catch((e: unknown) => e);
    expect(err).toEqual(new Error('bad signature'));
    expect(fs.readdirSync(tmp)).toEqual([]);
  });
});
