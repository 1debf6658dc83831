// `tspod fetch NAME|URL` and `tspod run NAME` end to end, as a user meets them: the real CLI
// (bin/run.js) in a child process, a real dnsmasq answering for `*.test` names (A records to
// 127.53.N.x and the `_appc-discovery` TXT records), real HTTPS servers on those addresses at port
// 443 with a certificate from a test CA (NODE_EXTRA_CA_CERTS), ACIs built by Debian's actool and
// signed by GnuPG. tspod finds the servers through TSPOD_NAMESERVER, as a user would. Every
// request the servers see is recorded, so the tests can say what was NOT requested.
import { execFileSync, spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { appcArch } from '../../src/appc/labels.js';
import type { ImageManifest } from '../../src/appc/types.js';
import { validateDocument } from '../../src/appc/validate.js';
import { assembleCase } from '../../fixtures/build-fixtures.js';
import { isRoot, startLoopbackNet, type LoopbackNet } from '../discovery/loopback-net.js';
import { TspodEnv, type CliResult } from '../support/cli.js';
import { DNSMASQ_MISSING, hasDnsmasq } from '../support/dnsmasq.js';
import { GpgHome, hasGpg, type GpgKey } from '../support/gpg.js';
import { fileRoute, servedFile } from '../support/http-scenarios.js';
import { hasOpenssl, respond, type RecordedRequest, type Route } from '../support/https-server.js';
import { hasCommand } from '../support/tools.js';

const hasActool = hasCommand('actool', ['version']);
const ARCH = appcArch();
const NEEDS = `needs root (port 443, pods), openssl, gpg, actool and ${DNSMASQ_MISSING}`;

const html = (...tags: string[]): string => `<!DOCTYPE html>\n<html><head><title>t</title>\n${tags.join('\n')}\n</head><body></body></html>\n`;
const meta = (prefix: string, template: string): string => `<meta name="ac-discovery" content="${prefix} ${template}">`;
const page = (...tags: string[]): Route => respond.bytes(html(...tags), { 'content-type': 'text/html; charset=utf-8' });

interface Served {
  /** Bytes as served (the gzip'd ACI). */
  aci: Buffer;
  /** sha512-<hex> of the uncompressed tar: the id tspod must print. */
  id: string;
  asc: Buffer;
}

/**
 * An ACI as a CDN serves it (test/support/http-scenarios.ts): a strong ETag of its own, Range with
 * If-Range, 304 for a matching If-None-Match, optional Cache-Control, and optionally a 200 that
 * sends `stallAfter` bytes and then nothing, holding the connection open (a download that hangs).
 */
function aciRoute(body: Buffer, opts: { maxAge?: number; stallAfter?: number } = {}): Route {
  return fileRoute(
    servedFile(body, {
      etag: `"${crypto.createHash('sha256').update(body).digest('hex').slice(0, 24)}"`,
      cacheControl: opts.maxAge === undefined ? null : `max-age=${opts.maxAge}`,
      faults: opts.stallAfter === undefined ? [] : [{ stallAfter: opts.stallAfter }],
    }),
  );
}

/** 401 unless the request carries exactly this Authorization header. */
function withAuth(authorization: string, route: Route): Route {
  return (req, res) => {
    if (req.headers.authorization !== authorization) return void res.writeHead(401, { 'www-authenticate': 'Basic realm="t"' }).end();
    route(req, res);
  };
}

describe.skipIf(!isRoot || !hasOpenssl || !hasDnsmasq || !hasGpg || !hasActool)(`tspod fetch by name and URL over DNS and HTTPS (${NEEDS})`, () => {
  let net: LoopbackNet;
  let env: TspodEnv;
  let gpg: GpgHome;
  let signer: GpgKey;
  let stranger: GpgKey;
  const images: Record<string, Served> = {};
  const BASIC = `Basic ${Buffer.from('fetcher:s3cret').toString('base64')}`;

  /** Builds an ACI with actool from a manifest and files (or from a fixture case's rootfs). */
  function buildAci(key: string, manifest: Omit<ImageManifest, 'acKind' | 'acVersion'>, opts: { fromCase?: string; files?: Record<string, string | Buffer> } = {}): Served {
    const dir = path.join(env.base, 'src', key);
    fs.rmSync(dir, { recursive: true, force: true });
    if (opts.fromCase !== undefined) assembleCase(opts.fromCase, dir);
    fs.mkdirSync(path.join(dir, 'rootfs'), { recursive: true });
    for (const [name, content] of Object.entries(opts.files ?? { [`${key}.txt`]: `${key}\n` })) fs.writeFileSync(path.join(dir, 'rootfs', name), content);
    fs.writeFileSync(path.join(dir, 'manifest'), JSON.stringify({ acKind: 'ImageManifest', acVersion: '0.8.11', ...manifest }));
    const out = path.join(env.base, 'acis', `${key}.aci`);
    fs.mkdirSync(path.dirname(out), { recursive: true });
    execFileSync('actool', ['build', '--overwrite', '--owner-root', dir, out], { stdio: 'ignore' });
    const aci = fs.readFileSync(out);
    const id = `sha512-${crypto.createHash('sha512').update(execFileSync('gzip', ['-dc', out], { maxBuffer: 1 << 28 })).digest('hex')}`;
    const served = { aci, id, asc: gpg.signDetached(out, key.startsWith('untrusted') ? stranger.fingerprint : signer.fingerprint) };
    images[key] = served;
    return served;
  }

  const labels = (version: string) => [
    { name: 'version', value: version },
    { name: 'os', value: 'linux' },
    { name: 'arch', value: ARCH },
  ];

  /** Serves an image and its signature at `<base>.aci` / `<base>.aci.asc` on a host. */
  function serve(host: string, base: string, image: Served, opts: { maxAge?: number; stallAfter?: number; auth?: string } = {}): void {
    const wrap = (r: Route): Route => (opts.auth === undefined ? r : withAuth(opts.auth, r));
    net.https[host]!.route(`${base}.aci`, wrap(aciRoute(image.aci, opts)));
    net.https[host]!.route(`${base}.aci.asc`, wrap(respond.bytes(image.asc)));
  }

  function trust(prefix: string, key: GpgKey = signer): void {
    const dir = path.join(env.localConfig, 'trustedkeys', 'prefix.d', ...prefix.split('/'));
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, key.fp), gpg.exportPublic(key.fingerprint));
  }

  /** bin/run.js with the test's DNS and (unless `ca: false`) the test CA; never blocks the servers. */
  function tspod(args: string[], opts: { ca?: boolean; onSpawn?: (pid: number) => void } = {}): Promise<CliResult> {
    const childEnv: NodeJS.ProcessEnv = { ...process.env, TSPOD_NAMESERVER: net.dns.nameserver };
    if (opts.ca === false) delete childEnv.NODE_EXTRA_CA_CERTS;
    else childEnv.NODE_EXTRA_CA_CERTS = net.ca.caCertPath;
    const child = spawn(process.execPath, env.argv(args), { env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
    opts.onSpawn?.(child.pid!);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 90_000);
    return new Promise((resolve) =>
      child.on('close', (status) => {
        clearTimeout(timer);
        resolve({ status, stdout, stderr });
      }),
    );
  }

  async function ok(args: string[]): Promise<string> {
    const result = await tspod(args);
    if (result.status !== 0) throw new Error(`tspod ${args.join(' ')} exited ${result.status}:\n${result.stderr}${result.stdout}`);
    return result.stdout;
  }

  /** The last line of `--json` output: the result (progress events come before it). */
  const lastJson = <T>(out: string): T => JSON.parse(out.trimEnd().split('\n').at(-1)!) as T;
  const requestsOf = (host: string): RecordedRequest[] => net.https[host]?.requests ?? net.http[host]?.requests ?? [];
  const allRequests = (): number => [...Object.values(net.https), ...Object.values(net.http)].reduce((n, s) => n + s.requests.length, 0);
  const listed = async () => JSON.parse(await ok(['image', 'list', '--json'])) as { id: string; name: string; signer: string | null }[];
  const record = (id: string) => JSON.parse(fs.readFileSync(path.join(env.dir, 'cas', 'images', `${id.slice('sha512-'.length)}.json`), 'utf8')) as {
    source: { kind: string; location: string; signer: string | null; etag?: string | null; fetchedAt?: string; discovery?: string };
  };

  beforeAll(async () => {
    env = new TspodEnv();
    gpg = new GpgHome();
    signer = gpg.genKey('tspod fetch test signer <signer@example.test>');
    stranger = gpg.genKey('someone else <else@elsewhere.test>');
    const https = (routes: Record<string, Route> = {}) => ({ https: routes });
    net = await startLoopbackNet(
      {
        'example.test': https({
          '/app': page(meta('example.test/app', 'https://dl.test/{os}/{arch}/{name}-{version}.{ext}')),
          '/cached': page(meta('example.test/cached', 'https://dl.test/{name}-{version}.{ext}')),
        }),
        'parent.test': https({
          '/team/app': respond.status(404, 'not found'),
          '/team': page(),
          '/': page(meta('parent.test', 'https://dl.test/parent/{name}-{version}.{ext}')),
        }),
        'multi.test': https({
          // The first endpoint has no image: the second one is used, and the first is reported.
          '/app': page(meta('multi.test/app', 'https://dl.test/missing/{name}-{version}.{ext}'), meta('multi.test', 'https://dl.test/multi/{name}-{version}.{ext}')),
        }),
        'plain.test': { http: { '/app': page(meta('plain.test/app', 'http://plain.test/files/{name}-{version}.{ext}')) } },
        'auth.test': https({ '/app': withAuth(BASIC, page(meta('auth.test/app', 'https://dl.test/auth/{name}-{version}.{ext}'))) }),
        'wrongname.test': https({ '/app': page(meta('wrongname.test', 'https://dl.test/wrongname/{name}-{version}.{ext}')) }),
        'untrusted.test': https({ '/app': page(meta('untrusted.test', 'https://dl.test/untrusted/{name}-{version}.{ext}')) }),
        'dep.test': https({ '/': page(meta('dep.test', 'https://dl.test/deps/{name}-{version}.{ext}')) }),
        'loop.test': https({ '/': page(meta('loop.test', 'https://dl.test/loop/{name}-{version}.{ext}')) }),
        'big.test': https({ '/app': page(meta('big.test/app', 'https://dl.test/big/{name}-{version}.{ext}')) }),
        'run.test': https({ '/demo': page(meta('run.test/demo', 'https://dl.test/run/{name}-{version}.{ext}')) }),
        'dl.test': https(),
        // No address and no server: discovery walks, then reads the TXT record.
      },
      {
        txt: [
          { name: '_appc-discovery.txt.test', strings: ['v=appc1 prefix=txt.test aci=https://dl.test/txt/{name}-{version}-{os}-{arch}.{ext}'] },
        ],
      },
    );
    const served = (key: string) => images[key]!;
    buildAci('app', { name: 'example.test/app', labels: labels('1.0') });
    serve('dl.test', `/linux/${ARCH}/example.test/app-1.0`, served('app'));
    buildAci('cached', { name: 'example.test/cached', labels: labels('1.0') });
    serve('dl.test', '/example.test/cached-1.0', served('cached'), { maxAge: 3600 });
    buildAci('parent', { name: 'parent.test/team/app', labels: labels('2.0') });
    serve('dl.test', '/parent/parent.test/team/app-2.0', served('parent'));
    buildAci('multi', { name: 'multi.test/app', labels: labels('1.0') });
    serve('dl.test', '/multi/multi.test/app-1.0', served('multi'));
    buildAci('plain', { name: 'plain.test/app', labels: labels('1.0') });
    net.http['plain.test']!.route('/files/plain.test/app-1.0.aci', aciRoute(served('plain').aci));
    net.http['plain.test']!.route('/files/plain.test/app-1.0.aci.asc', respond.bytes(served('plain').asc));
    buildAci('auth', { name: 'auth.test/app', labels: labels('1.0') });
    serve('dl.test', '/auth/auth.test/app-1.0', served('auth'));
    // Named after another image: the discovered name does not match.
    buildAci('wrongname', { name: 'other.test/app', labels: labels('1.0') });
    serve('dl.test', '/wrongname/wrongname.test/app-1.0', served('wrongname'));
    buildAci('untrusted', { name: 'untrusted.test/app', labels: labels('1.0') });
    serve('dl.test', '/untrusted/untrusted.test/app-1.0', served('untrusted'));
    buildAci('txt', { name: 'txt.test/app', labels: labels('3.1') });
    serve('dl.test', `/txt/txt.test/app-3.1-linux-${ARCH}`, served('txt'));
    buildAci('dep-base', { name: 'dep.test/base', labels: labels('1.0') }, { files: { 'from-base.txt': 'base\n' } });
    serve('dl.test', '/deps/dep.test/base-1.0', served('dep-base'));
    buildAci('dep-app', { name: 'dep.test/app', labels: labels('1.0'), dependencies: [{ imageName: 'dep.test/base', labels: labels('1.0') }] }, { files: { 'from-app.txt': 'app\n' } });
    serve('dl.test', '/deps/dep.test/app-1.0', served('dep-app'));
    buildAci('loop-a', { name: 'loop.test/a', labels: labels('1.0'), dependencies: [{ imageName: 'loop.test/b', labels: labels('1.0') }] });
    serve('dl.test', '/loop/loop.test/a-1.0', served('loop-a'));
    buildAci('loop-b', { name: 'loop.test/b', labels: labels('1.0'), dependencies: [{ imageName: 'loop.test/a', labels: labels('1.0') }] });
    serve('dl.test', '/loop/loop.test/b-1.0', served('loop-b'));
    // ~2 MiB of random bytes: gzip cannot shrink it, so half of the file is ~1 MiB on the wire.
    buildAci('big', { name: 'big.test/app', labels: labels('1.0') }, { files: { 'random.bin': crypto.randomBytes(2 << 20) } });
    serve('dl.test', '/big/big.test/app-1.0', served('big'), { stallAfter: Math.floor(served('big').aci.length / 2) });
    const demoManifest = JSON.parse(fs.readFileSync(path.join(assembleCase('demo', path.join(env.base, 'demo-src')), 'manifest'), 'utf8')) as ImageManifest;
    buildAci('run', { ...demoManifest, name: 'run.test/demo', labels: labels('1.0') }, { fromCase: 'demo', files: {} });
    serve('dl.test', '/run/run.test/demo-1.0', served('run'));
    buildAci('url', { name: 'url.test/app', labels: labels('0.9') });
    serve('dl.test', '/files/app-0.9', served('url'));

    for (const prefix of ['example.test', 'parent.test', 'multi.test', 'plain.test', 'auth.test', 'wrongname.test', 'untrusted.test', 'txt.test', 'dep.test', 'loop.test', 'big.test', 'run.test', 'url.test']) {
      trust(prefix);
    }
    fs.mkdirSync(path.join(env.localConfig, 'auth.d'), { recursive: true });
    fs.writeFileSync(
      path.join(env.localConfig, 'auth.d', 'auth-test.json'),
      JSON.stringify({ rktKind: 'auth', rktVersion: 'v1', domains: ['auth.test'], type: 'basic', credentials: { user: 'fetcher', password: 's3cret' } }),
    );
  });

  afterAll(async () => {
    await net?.close();
    gpg?.cleanup();
    env?.cleanup();
  });

  it('fetches example.test/app:1.0 by meta discovery: signature first, labels filled into the template, the signer and source recorded', async () => {
    const before = requestsOf('dl.test').length;
    const result = await tspod(['fetch', 'example.test/app:1.0']);
    expect(result.status, result.stderr).toBe(0);
    expect(result.stdout.trim()).toBe(images.app!.id);
    expect(result.stderr).toContain(`signed by ${signer.fp}`);
    // {os}/{arch} came from the host, {version} from the reference; the .asc was asked for first.
    expect(requestsOf('dl.test').slice(before).map((r) => r.url)).toEqual([`/linux/${ARCH}/example.test/app-1.0.aci.asc`, `/linux/${ARCH}/example.test/app-1.0.aci`]);
    const images1 = await listed();
    validateDocument('image-list', images1, 'image list --json');
    expect(images1).toEqual([expect.objectContaining({ id: images.app!.id, name: 'example.test/app', signer: signer.fp })]);
    const source = record(images.app!.id).source;
    expect(source).toMatchObject({ kind: 'discovery', location: `https://dl.test/linux/${ARCH}/example.test/app-1.0.aci`, signer: signer.fp, discovery: `example.test/app:1.0,os=linux,arch=${ARCH}` });
    expect(source.etag).toMatch(/^"[0-9a-f]+"$/);
  });

  it('--pull-policy=new finds the image in the store and sends no request at all', async () => {
    const before = allRequests();
    const result = lastJson<{ outcome: string; record: { id: string } }>(await ok(['fetch', '--pull-policy=new', '--json', 'example.test/app:1.0']));
    expect(result).toMatchObject({ outcome: 'in-store', record: { id: images.app!.id } });
    expect(allRequests()).toBe(before);
  });

  it('--pull-policy=update (the default) revalidates with the ETag: 304, nothing downloaded, fetch time renewed', async () => {
    const fetchedAt = record(images.app!.id).source.fetchedAt!;
    const before = requestsOf('dl.test').length;
    const result = await tspod(['fetch', 'example.test/app:1.0']);
    expect(result.status, result.stderr).toBe(0);
    expect(result.stderr).toContain('unchanged on the server (304 Not Modified)');
    const aciRequests = requestsOf('dl.test').slice(before).filter((r) => r.url.endsWith('.aci'));
    expect(aciRequests).toHaveLength(1);
    expect(aciRequests[0]!.headers['if-none-match']).toBe(record(images.app!.id).source.etag);
    expect(Date.parse(record(images.app!.id).source.fetchedAt!)).toBeGreaterThan(Date.parse(fetchedAt));
  });

  it('--pull-policy=update within Cache-Control max-age uses the store without asking; --no-store downloads anyway', async () => {
    await ok(['fetch', 'example.test/cached:1.0']);
    const before = requestsOf('dl.test').length;
    const again = lastJson<{ outcome: string }>(await ok(['fetch', '--json', 'example.test/cached:1.0']));
    expect(again.outcome).toBe('in-store');
    expect(requestsOf('dl.test').length).toBe(before);
    const forced = lastJson<{ outcome: string; stored: boolean }>(await ok(['fetch', '--json', '--no-store', 'example.test/cached:1.0']));
    expect(forced).toMatchObject({ outcome: 'fetched', stored: false });
    const urls = requestsOf('dl.test').slice(before).map((r) => `${r.url} ${r.headers['if-none-match'] ?? ''}`.trim());
    expect(urls).toEqual(['/example.test/cached-1.0.aci.asc', '/example.test/cached-1.0.aci']);
  });

  it('walks up to the meta tags of a parent path', async () => {
    const result = await tspod(['fetch', 'parent.test/team/app:2.0']);
    expect(result.status, result.stderr).toBe(0);
    expect(result.stdout.trim()).toBe(images.parent!.id);
    expect(requestsOf('parent.test').map((r) => r.url)).toEqual(['/team/app?ac-discovery=1', '/team?ac-discovery=1', '/?ac-discovery=1']);
  });

  it('tries the endpoints in order: a 404 on the first is skipped for the second', async () => {
    const result = await tspod(['fetch', 'multi.test/app:1.0']);
    expect(result.status, result.stderr).toBe(0);
    expect(result.stdout.trim()).toBe(images.multi!.id);
    expect(requestsOf('dl.test').some((r) => r.url === '/missing/multi.test/app-1.0.aci')).toBe(false);
  });

  it('refuses plain HTTP discovery without --insecure-options=http, and fetches with it', async () => {
    const refused = await tspod(['fetch', 'plain.test/app:1.0']);
    expect(refused.status).toBe(254);
    expect(refused.stderr).toContain('tried https://plain.test/app?ac-discovery=1');
    expect(refused.stderr).toContain('--insecure-options=http');
    expect(requestsOf('plain.test')).toEqual([]);
    const url = await tspod(['fetch', 'http://plain.test/files/plain.test/app-1.0.aci']);
    expect(url.status).toBe(254);
    expect(url.stderr).toMatch(/plain http is not allowed/);
    expect(requestsOf('plain.test')).toEqual([]);
    const allowed = await tspod(['fetch', '--insecure-options=http', 'plain.test/app:1.0']);
    expect(allowed.status, allowed.stderr).toBe(0);
    expect(allowed.stdout.trim()).toBe(images.plain!.id);
  });

  it('refuses a server certificate from an unknown CA, and accepts it with --insecure-options=tls', async () => {
    const before = requestsOf('example.test').length;
    const refused = await tspod(['fetch', '--no-store', 'example.test/app:1.0'], { ca: false });
    expect(refused.status).toBe(254);
    expect(refused.stderr).toMatch(/tried https:\/\/example\.test\/app\?ac-discovery=1: TLS certificate not trusted/);
    expect(requestsOf('example.test').length).toBe(before);
    const allowed = await tspod(['fetch', '--no-store', '--insecure-options=tls', 'example.test/app:1.0'], { ca: false });
    expect(allowed.status, allowed.stderr).toBe(0);
    expect(allowed.stdout.trim()).toBe(images.app!.id);
  });

  it('refuses an image whose manifest names another image than the one discovered', async () => {
    const result = await tspod(['fetch', 'wrongname.test/app:1.0']);
    expect(result.status).toBe(254);
    expect(result.stderr).toContain('is named other.test/app, not wrongname.test/app; refused');
    expect((await listed()).some((i) => i.name === 'other.test/app')).toBe(false);
  });

  it('refuses an untrusted signer before requesting the image: the server never saw a request for the .aci', async () => {
    const before = requestsOf('dl.test').length;
    const result = await tspod(['fetch', 'untrusted.test/app:1.0']);
    expect(result.status).toBe(254);
    expect(result.stderr).toContain(stranger.fp);
    expect(result.stderr).toContain('tspod trust --prefix untrusted.test/app');
    expect(result.stderr).toContain('the image was not downloaded');
    expect(requestsOf('dl.test').slice(before).map((r) => r.url)).toEqual(['/untrusted/untrusted.test/app-1.0.aci.asc']);
  });

  it('resumes a download killed with SIGKILL half way: the second fetch asks for the rest with Range and If-Range', async () => {
    const big = images.big!;
    const half = Math.floor(big.aci.length / 2);
    let pid = 0;
    const first = tspod(['fetch', 'big.test/app:1.0'], { onSpawn: (p) => (pid = p) });
    const tmp = path.join(env.dir, 'cas', 'tmp');
    const partialSize = (): number => {
      const names = fs.existsSync(tmp) ? fs.readdirSync(tmp).filter((n) => n.endsWith('.partial')) : [];
      return names.reduce((n, name) => Math.max(n, fs.statSync(path.join(tmp, name)).size), 0);
    };
    const deadline = Date.now() + 30_000;
    while (partialSize() < half && Date.now() < deadline) await sleep(20);
    expect(partialSize()).toBe(half);
    process.kill(pid, 'SIGKILL');
    expect((await first).status).toBeNull();
    serve('dl.test', '/big/big.test/app-1.0', big); // the server works again
    const before = requestsOf('dl.test').length;
    const second = await tspod(['fetch', 'big.test/app:1.0']);
    expect(second.status, second.stderr).toBe(0);
    expect(second.stdout.trim()).toBe(big.id);
    const body = requestsOf('dl.test').slice(before).find((r) => r.url.endsWith('.aci'))!;
    expect(body.headers.range).toBe(`bytes=${half}-`);
    expect(body.headers['if-range']).toMatch(/^"[0-9a-f]+"$/);
    // The partial and its sidecar are gone (the killed import's temp tar is left for `image gc`).
    expect(fs.readdirSync(tmp).filter((n) => n.startsWith('download-'))).toEqual([]);
  });

  it('sends auth.d credentials to their host only', async () => {
    const before = requestsOf('dl.test').length;
    const result = await tspod(['fetch', 'auth.test/app:1.0']);
    expect(result.status, result.stderr).toBe(0);
    expect(result.stdout.trim()).toBe(images.auth!.id);
    expect(requestsOf('auth.test').map((r) => r.headers.authorization)).toEqual([BASIC]);
    const toDl = requestsOf('dl.test').slice(before);
    expect(toDl.map((r) => r.url)).toEqual(['/auth/auth.test/app-1.0.aci.asc', '/auth/auth.test/app-1.0.aci']);
    expect(toDl.map((r) => r.headers.authorization)).toEqual([undefined, undefined]);
  });

  it('falls back to the _appc-discovery DNS TXT record when no page answers', async () => {
    const result = await tspod(['fetch', 'txt.test/app:3.1']);
    expect(result.status, result.stderr).toBe(0);
    expect(result.stdout.trim()).toBe(images.txt!.id);
    expect(result.stderr).toContain('discovered txt.test/app:3.1 at dns TXT _appc-discovery.txt.test');
  });

  it('discovers and fetches a missing dependency, verified the same way, so the image renders', async () => {
    const result = lastJson<{
      record: { id: string };
      dependencies: { record: { id: string; name: string }; signer: string; outcome: string }[];
    }>(await ok(['fetch', '--json', 'dep.test/app:1.0']));
    expect(result.record.id).toBe(images['dep-app']!.id);
    expect(result.dependencies).toEqual([expect.objectContaining({ record: expect.objectContaining({ id: images['dep-base']!.id }), signer: signer.fp, outcome: 'fetched' })]);
    const dest = path.join(env.base, 'rendered-dep');
    await ok(['image', 'render', '--rootfs-only', 'dep.test/app:1.0', dest]);
    expect(fs.readFileSync(path.join(dest, 'from-base.txt'), 'utf8')).toBe('base\n');
    expect(fs.readFileSync(path.join(dest, 'from-app.txt'), 'utf8')).toBe('app\n');
  });

  it('names the cycle of a dependency loop', async () => {
    const result = await tspod(['fetch', 'loop.test/a:1.0']);
    expect(result.status).toBe(254);
    expect(result.stderr).toContain('dependency loop: loop.test/a -> loop.test/b -> loop.test/a');
  });

  it('fetches a plain https:// URL with its .asc next to it; the signer must be trusted for the name read from the manifest', async () => {
    const result = await tspod(['fetch', 'https://dl.test/files/app-0.9.aci']);
    expect(result.status, result.stderr).toBe(0);
    expect(result.stdout.trim()).toBe(images.url!.id);
    expect(record(images.url!.id).source).toMatchObject({ kind: 'https', location: 'https://dl.test/files/app-0.9.aci', signer: signer.fp });
  });

  it('--json prints progress events and then the result, one JSON object per line', async () => {
    const out = await ok(['fetch', '--json', '--no-store', 'parent.test/team/app:2.0']);
    const lines = out.trimEnd().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    const events = lines.slice(0, -1);
    expect(events.map((e) => e.event)).toEqual(expect.arrayContaining(['start', 'done']));
    for (const e of events) expect(e).toMatchObject({ type: 'progress', label: 'parent.test/team/app:2.0' });
    expect(lines.at(-1)).toMatchObject({ record: { id: images.parent!.id }, outcome: 'fetched', signer: signer.fp });
    const quiet = await tspod(['fetch', '--quiet', '--no-store', 'parent.test/team/app:2.0']);
    expect(quiet.stdout).toBe(`${images.parent!.id}\n`);
    expect(quiet.stderr).toBe('');
  });

  it('a failed discovery lists every URL and record it tried, in order', async () => {
    const result = await tspod(['fetch', '--json', 'nowhere.test/a/b:1.0']);
    expect(result.status).toBe(254);
    const { error } = JSON.parse(result.stdout.trim().split('\n').at(-1)!) as { error: { message: string } };
    const tried = [...error.message.matchAll(/tried (\S+(?: TXT \S+)?):/g)].map((m) => m[1]);
    expect(tried).toEqual([
      'https://nowhere.test/a/b?ac-discovery=1',
      'https://nowhere.test/a?ac-discovery=1',
      'https://nowhere.test?ac-discovery=1',
      'dns TXT _appc-discovery.nowhere.test',
    ]);
  });

  it('tspod run run.test/demo:1.0 fetches the image by discovery, then runs it', async () => {
    const result = await tspod(['run', 'run.test/demo:1.0']);
    expect(result.status, result.stderr).toBe(0);
    expect(result.stdout).toContain('hello from a tspod pod');
    expect(result.stderr).toContain('discovered run.test/demo:1.0 at https://run.test/demo?ac-discovery=1');
    expect((await listed()).some((i) => i.id === images.run!.id)).toBe(true);
  });
});
