// OCI pulls through the real CLI against Debian's docker-registry (issue 6 parts 3 and 8): layer
// blobs kept in the store and not downloaded again for a second image that shares them, a pull
// killed with SIGKILL half-way resumed with a Range request, a zstd layer (the `zstd` binary
// compresses it here), hostile layers refused with nothing stored, hardlinks to files of lower
// layers, and `image rm` / `image gc` removing layer blobs no image uses. Between tspod and the
// registry sits a small http front (in this process) that counts blob requests, records their
// Range headers and, when asked, stops sending a blob half-way.
import type { ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { TspodEnv, TspodEnvs } from '../support/cli.js';
import { buildLayout, type LayerSpec, type TarEntry } from '../support/oci-layout.js';
import { hasRegistryTools, REGISTRY_SKIP_REASON, skopeoPush, startRegistry, type TestRegistry } from '../support/registry.js';
import { hasCommand } from '../support/tools.js';

const hasZstd = hasCommand('zstd', ['--version']);

/** An http front for the registry: counts blob GETs, keeps their Range headers, can stall a blob. */
interface Front {
  host: string;
  blobGets: Map<string, number>;
  ranges: Map<string, string[]>;
  /** Blobs of which only this many bytes are sent, then the connection hangs. */
  stall: Map<string, number>;
  close(): Promise<void>;
}

async function startFront(upstreamPort: number): Promise<Front> {
  const blobGets = new Map<string, number>();
  const ranges = new Map<string, string[]>();
  const stall = new Map<string, number>();
  const hanging = new Set<http.ServerResponse>();
  const server = http.createServer((req, res) => {
    const digest = /\/blobs\/(sha256:[0-9a-f]{64})$/.exec(req.url ?? '')?.[1];
    if (digest !== undefined && req.method === 'GET') {
      blobGets.set(digest, (blobGets.get(digest) ?? 0) + 1);
      if (req.headers.range !== undefined) ranges.set(digest, [...(ranges.get(digest) ?? []), req.headers.range]);
    }
    const upstream = http.request({ host: '127.0.0.1', port: upstreamPort, method: req.method, path: req.url, headers: req.headers }, (up) => {
      res.writeHead(up.statusCode ?? 502, up.headers);
      const limit = digest === undefined ? undefined : stall.get(digest);
      if (limit === undefined) {
        up.pipe(res);
        return;
      }
      let sent = 0;
      hanging.add(res);
      up.on('data', (chunk: Buffer) => {
        if (sent >= limit) return;
        const part = chunk.subarray(0, limit - sent);
        sent += part.length;
        res.write(part);
      });
    });
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as import('node:net').AddressInfo;
  return {
    host: `127.0.0.1:${port}`,
    blobGets,
    ranges,
    stall,
    close: async () => {
      for (const res of hanging) res.destroy();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}


const fetchArgs = (ref: string): string[] => ['fetch', '--insecure-options=image,http', ref];

function ociBlobs(env: TspodEnv): string[] {
  const dir = path.join(env.dir, 'cas', 'oci', 'blobs', 'sha256');
  return fs.existsSync(dir) ? fs.readdirSync(dir).map((hex) => `sha256:${hex}`).sort() : [];
}

/** Every path under `root` with what rendering must reproduce (directory times included). */
function describeTree(root: string, rel = ''): string[] {
  const out: string[] = [];
  for (const name of fs.readdirSync(path.join(root, rel)).sort()) {
    const child = rel === '' ? name : `${rel}/${name}`;
    const abs = path.join(root, child);
    const st = fs.lstatSync(abs);
    const what = st.isSymbolicLink() ? `-> ${fs.readlinkSync(abs)}` : st.isFile() ? crypto.createHash('sha256').update(fs.readFileSync(abs)).digest('hex') : 'dir';
    out.push(`${child} ${(st.mode & 0o7777).toString(8)} ${Math.floor(st.mtimeMs / 1000)} ${st.nlink > 1 && st.isFile() ? 'linked ' : ''}${what}`);
    if (st.isDirectory()) out.push(...describeTree(root, child));
  }
  return out;
}

async function waitFor(check: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe.skipIf(!hasRegistryTools)(`OCI pulls: layer reuse, resume, zstd, hostile layers, hardlinks, gc (${REGISTRY_SKIP_REASON})`, () => {
  let registry: TestRegistry;
  let front: Front;
  let work: string;
  const envs = new TspodEnvs();
  const newEnv = (): TspodEnv => envs.make();
  /** Builds `layers` as an image and pushes it as `repo:1`; returns the layer digests. */
  const push = async (repo: string, layers: LayerSpec[]): Promise<string[]> => {
    const layout = path.join(work, repo.replace(/\//g, '_'));
    const image = await buildLayout(layout, 't', { layers, config: { config: { Cmd: ['/bin/true'] } } });
    skopeoPush(layout, `${registry.host}/${repo}:1`);
    return image.layers.map((d) => d.digest);
  };
  const base: LayerSpec = { entries: [{ name: 'base/', type: 'directory' }, { name: 'base/lib', content: 'shared base layer\n' }] };

  beforeAll(async () => {
    registry = await startRegistry();
    front = await startFront(registry.port);
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'tspod-oci-pull-'));
  }, 60_000);

  afterAll(async () => {
    envs.cleanup();
    await front?.close();
    await registry?.stop();
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  it('a second image sharing a layer does not download it again; image rm and image gc remove the blobs no image uses', async () => {
    const env = newEnv();
    const [baseA, ownA] = await push('tspod/share-a', [base, { entries: [{ name: 'a', content: 'image a\n' }] }]);
    const [baseB, ownB] = await push('tspod/share-b', [base, { entries: [{ name: 'b', content: 'image b\n' }] }]);
    expect(baseB).toBe(baseA);

    const a = await env.runAsync(fetchArgs(`docker://${front.host}/tspod/share-a:1`));
    expect(a.status, a.stderr).toBe(0);
    const b = await env.runAsync(fetchArgs(`docker://${front.host}/tspod/share-b:1`));
    expect(b.status, b.stderr).toBe(0);
    expect(front.blobGets.get(baseA!)).toBe(1);
    expect(front.blobGets.get(ownA!)).toBe(1);
    expect(front.blobGets.get(ownB!)).toBe(1);
    expect(ociBlobs(env)).toEqual([baseA!, ownA!, ownB!].sort());

    // Both trees are right: b's base came from the store's copy.
    const dest = path.join(env.base, 'render-b');
    env.ok(['image', 'render', b.stdout.trim(), dest]);
    expect(fs.readFileSync(path.join(dest, 'rootfs/base/lib'), 'utf8')).toBe('shared base layer\n');
    expect(fs.readFileSync(path.join(dest, 'rootfs/b'), 'utf8')).toBe('image b\n');

    // image rm of a: its own layer goes, the shared one stays for b.
    env.ok(['image', 'rm', a.stdout.trim()]);
    expect(ociBlobs(env)).toEqual([baseA!, ownB!].sort());

    // A layer record whose image is not listed (a fetch killed before its catalog record) keeps
    // nothing: image gc removes it and the blobs only it named.
    const recordB = path.join(env.dir, 'cas', 'images', `${b.stdout.trim().slice('sha512-'.length)}.json`);
    fs.rmSync(recordB);
    env.ok(['image', 'gc', '--grace-period=0']);
    expect(ociBlobs(env)).toEqual([]);
    expect(fs.readdirSync(path.join(env.dir, 'cas', 'oci', 'images'))).toEqual([]);
  }, 60_000);

  it('keeps the applied tree as the rendered tree, equal to an extraction of the stored ACI', async () => {
    const env = newEnv();
    await push('tspod/adopt', [
      { entries: [{ name: 'etc/', type: 'directory' }, { name: 'etc/gone', content: 'x\n' }, { name: 'etc/keep', content: 'k\n' }, { name: 'bin/', type: 'directory' }, { name: 'bin/tool', content: 't\n' }] },
      { entries: [{ name: 'etc/.wh.gone' }, { name: 'bin/hard', type: 'link', linkname: 'bin/tool' }, { name: 'bin/sym', type: 'symlink', linkname: 'tool' }] },
    ]);
    const result = await env.runAsync(fetchArgs(`docker://${front.host}/tspod/adopt:1`));
    expect(result.status, result.stderr).toBe(0);
    const id = result.stdout.trim();
    const trees = fs.readdirSync(path.join(env.dir, 'trees')).filter((n) => !n.startsWith('.'));
    expect(trees).toHaveLength(1);
    const info = JSON.parse(fs.readFileSync(path.join(env.dir, 'trees', trees[0]!, 'tree.json'), 'utf8')) as { imageId: string; layers: string[] };
    expect(info).toMatchObject({ imageId: id, layers: [id] });
    // A render from the stored ACI alone (another store, the blob imported as a file) gives the same tree.
    const other = newEnv();
    const blob = path.join(env.dir, 'cas', 'blob', 'sha512', id.slice(7, 9), id.slice(7));
    expect(other.run(['fetch', '--insecure-options=image', blob]).stdout.trim()).toBe(id);
    const dest = path.join(other.base, 'render');
    other.ok(['image', 'render', '--rootfs-only', id, dest]);
    const adopted = describeTree(path.join(env.dir, 'trees', trees[0]!, 'rootfs'));
    expect(adopted.join('\n')).toBe(describeTree(dest).join('\n'));
    expect(adopted.some((l) => l.startsWith('bin/hard 644') && l.includes('linked'))).toBe(true);
    expect(adopted.some((l) => l.startsWith('etc/gone'))).toBe(false);
  }, 60_000);

  it('a pull killed with SIGKILL half-way resumes on the next fetch with a Range request', async () => {
    const env = newEnv();
    // 1 MiB of random bytes: gzip cannot shrink it, so the blob is about that size.
    const big = crypto.randomBytes(1 << 20);
    const [layer] = await push('tspod/resume', [{ entries: [{ name: 'big', content: big }] }]);
    const ref = `docker://${front.host}/tspod/resume:1`;
    const cut = 300_000;
    front.stall.set(layer!, cut);
    const tmp = path.join(env.dir, 'cas', 'tmp');
    const partialSize = (): number => {
      const names = fs.existsSync(tmp) ? fs.readdirSync(tmp).filter((n) => n.endsWith('.partial')) : [];
      return names.reduce((sum, n) => sum + (fs.statSync(path.join(tmp, n), { throwIfNoEntry: false })?.size ?? 0), 0);
    };
    const child: ChildProcess = env.spawn(fetchArgs(ref));
    try {
      await waitFor(() => partialSize() >= cut, 'the partial download to reach the stall point');
    } finally {
      child.kill('SIGKILL');
    }
    await new Promise((r) => child.once('exit', r));
    expect(env.json<unknown[]>(['image', 'list'])).toEqual([]);

    front.stall.delete(layer!);
    const result = await env.runAsync(fetchArgs(ref));
    expect(result.status, result.stderr).toBe(0);
    expect(front.ranges.get(layer!)).toEqual([`bytes=${cut}-`]);
    const dest = path.join(env.base, 'render');
    env.ok(['image', 'render', result.stdout.trim(), dest]);
    expect(fs.readFileSync(path.join(dest, 'rootfs/big')).equals(big)).toBe(true);
  }, 60_000);

  it.skipIf(!hasZstd)('applies a zstd layer over a gzip one (needs zstd)', async () => {
    const env = newEnv();
    const [, zstdLayer] = await push('tspod/zstd', [base, { compression: 'zstd', entries: [{ name: 'base/lib', content: 'replaced by the zstd layer\n' }, { name: 'z', content: 'zstd\n' }] }]);
    const blob = fs.readFileSync(registry.blobPath(zstdLayer!));
    expect(blob.subarray(0, 4)).toEqual(Buffer.from([0x28, 0xb5, 0x2f, 0xfd])); // the registry serves it as zstd
    const result = await env.runAsync(fetchArgs(`docker://${front.host}/tspod/zstd:1`));
    expect(result.status, result.stderr).toBe(0);
    expect(result.stderr).not.toMatch(/media type says/);
    const dest = path.join(env.base, 'render');
    env.ok(['image', 'render', result.stdout.trim(), dest]);
    expect(fs.readFileSync(path.join(dest, 'rootfs/base/lib'), 'utf8')).toBe('replaced by the zstd layer\n');
    expect(fs.readFileSync(path.join(dest, 'rootfs/z'), 'utf8')).toBe('zstd\n');
  }, 60_000);

  it.each([
    ['a `..` path', [{ name: '../escape', content: 'out\n' }], /escapes the target/],
    [
      'a write through a symlink of the same layer',
      [
        { name: 'link', type: 'symlink', linkname: '/tmp' },
        { name: 'link/evil', content: 'out\n' },
      ],
      /parent link is a symlink in this archive/,
    ],
    ['a hardlink escaping with `..`', [{ name: 'hard', type: 'link', linkname: '../../etc/passwd' }], /escapes the target/],
  ] as [string, TarEntry[], RegExp][])('refuses an upper layer with %s: nothing stored', async (what, entries, message) => {
    const env = newEnv();
    const repo = `tspod/hostile-${crypto.createHash('sha256').update(what).digest('hex').slice(0, 8)}`;
    await push(repo, [base, { entries }]);
    const result = await env.runAsync(fetchArgs(`docker://${front.host}/${repo}:1`));
    expect(result.status).toBe(254);
    expect(result.stderr).toMatch(message);
    expect(result.stderr).toMatch(/apply layer 2\/2/);
    expect(env.json<unknown[]>(['image', 'list'])).toEqual([]);
    expect(fs.existsSync(path.join(os.tmpdir(), 'evil'))).toBe(false);
    // Nothing of the applied tree is left in the store's tmp area.
    expect(fs.readdirSync(path.join(env.dir, 'cas', 'tmp')).filter((n) => n.startsWith('oci-') || n.startsWith('aci-'))).toEqual([]);
  }, 60_000);

  it('contains an absolute path in a layer (the leading / is removed, as GNU tar does)', async () => {
    const env = newEnv();
    const marker = `tspod-abs-${crypto.randomBytes(4).toString('hex')}`;
    await push('tspod/absolute', [base, { entries: [{ name: `/tmp/${marker}`, content: 'inside\n' }] }]);
    const result = await env.runAsync(fetchArgs(`docker://${front.host}/tspod/absolute:1`));
    expect(result.status, result.stderr).toBe(0);
    expect(fs.existsSync(path.join('/tmp', marker))).toBe(false);
    const dest = path.join(env.base, 'render');
    env.ok(['image', 'render', result.stdout.trim(), dest]);
    expect(fs.readFileSync(path.join(dest, 'rootfs/tmp', marker), 'utf8')).toBe('inside\n');
  }, 60_000);

  it('applies a hardlink to a file of a lower layer; refuses one through a lower symlink', async () => {
    const env = newEnv();
    await push('tspod/hardlink', [
      { entries: [{ name: 'bin/', type: 'directory' }, { name: 'bin/tool', content: '#!/bin/sh\necho lower\n' }, { name: 'etc', type: 'symlink', linkname: '/etc' }] },
      { entries: [{ name: 'usr/', type: 'directory' }, { name: 'usr/tool', type: 'link', linkname: 'bin/tool' }] },
    ]);
    const ok = await env.runAsync(fetchArgs(`docker://${front.host}/tspod/hardlink:1`));
    expect(ok.status, ok.stderr).toBe(0);
    const dest = path.join(env.base, 'render');
    env.ok(['image', 'render', ok.stdout.trim(), dest]);
    const rootfs = path.join(dest, 'rootfs');
    expect(fs.statSync(path.join(rootfs, 'usr/tool')).ino).toBe(fs.statSync(path.join(rootfs, 'bin/tool')).ino);
    expect(fs.readFileSync(path.join(rootfs, 'usr/tool'), 'utf8')).toBe('#!/bin/sh\necho lower\n');

    await push('tspod/hardlink-bad', [
      { entries: [{ name: 'etc', type: 'symlink', linkname: '/etc' }] },
      { entries: [{ name: 'stolen', type: 'link', linkname: 'etc/passwd' }] },
    ]);
    const bad = await env.runAsync(fetchArgs(`docker://${front.host}/tspod/hardlink-bad:1`));
    expect(bad.status).toBe(254);
    expect(bad.stderr).toMatch(/hardlink target etc\/passwd goes through the symlink etc/);
    expect(env.json<{ id: string }[]>(['image', 'list']).map((i) => i.id)).toEqual([ok.stdout.trim()]);
  }, 60_000);
});
