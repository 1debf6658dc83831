// Rendering with dependencies: layer order (depth-first, diamonds repeat), override semantics,
// pathWhitelist, errors (loops, missing dependencies, imageID mismatch), and ACIs built by
// Debian's actool.
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import zlib from 'node:zlib';

import tarStream from 'tar-stream';
import { afterAll, describe, expect, it } from 'vitest';

import type { Dependency, ImageManifest, Label } from '../../src/appc/types.js';
import { ImageFormatError, NotFoundError } from '../../src/errors.js';
import { planRender, renderImage, type RenderSource } from '../../src/image/render.js';
import { libcSyscalls } from '../../src/sys/index.js';
import { scratchDirs } from '../support/scratch.js';

const { freshDir, cleanup } = scratchDirs('render');
afterAll(cleanup);

type RootfsEntry = (Partial<tarStream.Header> & { name: string }) & { content?: string };

async function aci(manifest: ImageManifest, rootfs: RootfsEntry[]): Promise<Buffer> {
  const pack = tarStream.pack();
  const chunks: Buffer[] = [];
  pack.on('data', (c: unknown) => chunks.push(c as Buffer));
  const done = new Promise<void>((resolve) => pack.on('end', () => resolve()));
  const add = (h: (Partial<tarStream.Header> & { name: string }), content: string) =>
    new Promise<void>((resolve, reject) => pack.entry({ ...h, mtime: h.mtime ?? new Date(1_500_000_000_000) }, content, (e) => (e ? reject(e) : resolve())));
  await add({ name: 'rootfs', type: 'directory', mode: 0o755 }, '');
  for (const { content, ...h } of rootfs) await add({ ...h, name: `rootfs/${h.name}` }, content ?? '');
  await add({ name: 'manifest' }, JSON.stringify(manifest));
  pack.finalize();
  await done;
  return Buffer.concat(chunks);
}

function manifest(name: string, extra: Partial<ImageManifest> = {}): ImageManifest {
  return { acKind: 'ImageManifest', acVersion: '0.8.11', name, ...extra };
}

function labelsMatch(wanted: Label[] | undefined, have: Label[] | undefined): boolean {
  return (wanted ?? []).every((w) => (have ?? []).some((h) => h.name === w.name && h.value === w.value));
}

/** An in-memory store: image id = sha512 of the tar, dependencies resolved by name + labels. */
class MemorySource implements RenderSource {
  readonly images = new Map<string, { manifest: ImageManifest; tar: Buffer }>();

  add(tar: Buffer, m: ImageManifest): string {
    const id = `sha512-${crypto.createHash('sha512').update(tar).digest('hex')}`;
    this.images.set(id, { manifest: m, tar });
    return id;
  }
  async addImage(m: ImageManifest, rootfs: RootfsEntry[]): Promise<string> {
    return this.add(await aci(m, rootfs), m);
  }
  async manifest(id: string): Promise<ImageManifest> {
    const image = this.images.get(id);
    if (image === undefined) throw new NotFoundError(`image ${id} not found`);
    return image.manifest;
  }
  async openTar(id: string): Promise<Readable> {
    return Readable.from([this.images.get(id)!.tar]);
  }
  async resolveDependency(dep: Dependency): Promise<string> {
    for (const [id, image] of this.images) {
      if (image.manifest.name === dep.imageName && labelsMatch(dep.labels, image.manifest.labels)) return id;
    }
    throw new NotFoundError(`no image ${dep.imageName} in the store`);
  }
}

const dep = (imageName: string, extra: Partial<Dependency> = {}): Dependency => ({ imageName, ...extra });
const file = (name: string, content: string, extra: Partial<RootfsEntry> = {}): RootfsEntry => ({ name, content, mode: 0o644, ...extra });

async function render(source: MemorySource, id: string) {
  const target = freshDir();
  const warnings: string[] = [];
  const result = await renderImage(id, target, { source, sys: libcSyscalls, privileged: false, onWarning: (m) => warnings.push(m) });
  return { target, result, warnings, read: (p: string) => fs.readFileSync(path.join(target, p), 'utf8') };
}

describe('planRender', () => {
  it('orders A->[B,C], C->[D] as B, D, C, A', async () => {
    const s = new MemorySource();
    await s.addImage(manifest('b'), []);
    await s.addImage(manifest('d'), []);
    await s.addImage(manifest('c', { dependencies: [dep('d')] }), []);
    const a = await s.addImage(manifest('a', { dependencies: [dep('b'), dep('c')] }), []);
    const plan = await planRender(a, s);
    expect(plan.map((l) => `${l.name}@${l.depth}`)).toEqual(['b@1', 'd@2', 'c@1', 'a@0']);
  });

  it('repeats a shared dependency of a diamond: D, B, D, C, A', async () => {
    const s = new MemorySource();
    await s.addImage(manifest('d'), []);
    await s.addImage(manifest('b', { dependencies: [dep('d')] }), []);
    await s.addImage(manifest('c', { dependencies: [dep('d')] }), []);
    const a = await s.addImage(manifest('a', { dependencies: [dep('b'), dep('c')] }), []);
    expect((await planRender(a, s)).map((l) => l.name)).toEqual(['d', 'b', 'd', 'c', 'a']);
  });

  it('refuses a dependency loop and names the cycle', async () => {
    const s = new MemorySource();
    // ids are content hashes, so a loop needs manifests the store resolves by name
    const bId = s.add(Buffer.from('b'), manifest('example.com/b', { dependencies: [dep('example.com/c')] }));
    s.add(Buffer.from('c'), manifest('example.com/c', { dependencies: [dep('example.com/b')] }));
    const a = s.add(Buffer.from('a'), manifest('example.com/a', { dependencies: [dep('example.com/b')] }));
    expect(bId).toMatch(/^sha512-/);
    const err = await planRender(a, s).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ImageFormatError);
    expect((err as Error).message).toContain('dependency loop example.com/b -> example.com/c -> example.com/b');
  });

  it('names a missing dependency with its labels in a NotFoundError', async () => {
    const s = new MemorySource();
    const a = await s.addImage(
      manifest('example.com/app', { dependencies: [dep('example.com/base', { labels: [{ name: 'version', value: '1.2' }, { name: 'arch', value: 'amd64' }] })] }),
      [],
    );
    const err = await planRender(a, s).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NotFoundError);
    expect((err as Error).message).toContain('dependency example.com/base,version=1.2,arch=amd64 not found');
    expect((err as Error).message).toContain('example.com/app');
  });

  it('refuses a dependency whose imageID differs from the resolved image', async () => {
    const s = new MemorySource();
    const b = await s.addImage(manifest('b'), [file('x', 'x')]);
    const wrong = `sha512-${'0'.repeat(128)}`;
    const a = await s.addImage(manifest('a', { dependencies: [dep('b', { imageID: wrong })] }), []);
    await expect(planRender(a, s)).rejects.toThrow(`dependency b resolved to ${b}, but the manifest requires imageID ${wrong}`);
    const ok = await s.addImage(manifest('ok', { dependencies: [dep('b', { imageID: b })] }), []);
    expect((await planRender(ok, s)).map((l) => l.id)).toEqual([b, ok]);
  });

  it('carries the whitelists of the images above each layer, nearest first', async () => {
    const s = new MemorySource();
    await s.addImage(manifest('c'), []);
    await s.addImage(manifest('b', { pathWhitelist: ['/b/', '/c'], dependencies: [dep('c')] }), []);
    const a = await s.addImage(manifest('a', { pathWhitelist: ['/a', '/c'], dependencies: [dep('b')] }), []);
    const plan = await planRender(a, s);
    expect(plan.map((l) => [l.name, l.ownWhitelist, l.upperWhitelists])).toEqual([
      ['c', undefined, [['b', 'c'], ['a', 'c']]],
      ['b', ['b', 'c'], [['a', 'c']]],
      ['a', ['a', 'c'], []],
    ]);
  });
});

describe('renderImage', () => {
  it('renders a single image: rootfs contents directly in the target', async () => {
    const s = new MemorySource();
    const a = await s.addImage(manifest('a'), [{ name: 'etc', type: 'directory', mode: 0o755 }, file('etc/hostname', 'a\n')]);
    const { target, result, read } = await render(s, a);
    expect(fs.readdirSync(target)).toEqual(['etc']);
    expect(read('etc/hostname')).toBe('a\n');
    expect(result.layers.map((l) => l.name)).toEqual(['a']);
    expect(result.entries).toBe(4); // rootfs, etc, etc/hostname, manifest
  });

  it('lets later layers override: A->[B,C], C->[D] applies B, D, C, A', async () => {
    const s = new MemorySource();
    await s.addImage(manifest('b'), [file('who', 'b'), file('b-and-d', 'b'), file('b-and-c', 'b'), file('only-b', 'b')]);
    await s.addImage(manifest('d'), [file('who', 'd'), file('b-and-d', 'd'), file('c-and-d', 'd')]);
    await s.addImage(manifest('c', { dependencies: [dep('d')] }), [file('who', 'c'), file('b-and-c', 'c'), file('c-and-d', 'c')]);
    const a = await s.addImage(manifest('a', { dependencies: [dep('b'), dep('c')] }), [file('who', 'a')]);
    const { read } = await render(s, a);
    expect(read('who')).toBe('a');
    expect(read('b-and-d')).toBe('d');
    expect(read('b-and-c')).toBe('c');
    expect(read('c-and-d')).toBe('c');
    expect(read('only-b')).toBe('b');
  });

  it('renders a diamond; the second pass of D overrides B', async () => {
    const s = new MemorySource();
    await s.addImage(manifest('d'), [file('f', 'd')]);
    await s.addImage(manifest('b', { dependencies: [dep('d')] }), [file('f', 'b')]);
    await s.addImage(manifest('c', { dependencies: [dep('d')] }), []);
    const a = await s.addImage(manifest('a', { dependencies: [dep('b'), dep('c')] }), []);
    const { read, result } = await render(s, a);
    expect(result.layers.map((l) => l.name)).toEqual(['d', 'b', 'd', 'c', 'a']);
    expect(read('f')).toBe('d');
  });

  it("drops a dependency's files missing from the app's pathWhitelist; the app's own directories stay", async () => {
    const s = new MemorySource();
    await s.addImage(manifest('example.com/base'), [
      { name: 'bin', type: 'directory', mode: 0o755 },
      file('bin/sh', 'sh', { mode: 0o755 }),
      file('bin/ls', 'ls', { mode: 0o755 }),
      { name: 'etc', type: 'directory', mode: 0o700 },
      file('etc/os-release', 'base'),
      file('etc/shadow', 'secret'),
      { name: 'var', type: 'directory' },
    ]);
    const a = await s.addImage(manifest('example.com/app', { pathWhitelist: ['/bin/sh', '/etc/os-release', '/app/run', '/app/'], dependencies: [dep('example.com/base')] }), [
      { name: 'app', type: 'directory', mode: 0o755 },
      file('app/run', 'run'),
      file('app/extra', 'not listed'),
      { name: 'data', type: 'directory', mode: 0o750 },
    ]);
    const { target } = await render(s, a);
    const listing = execFileSync('find', ['.', '-printf', '%p %y %m\\n'], { cwd: target }).toString().trim().split('\n').sort();
    expect(listing).toEqual([
      '. d 755',
      './app d 755',
      './app/run f 644',
      './bin d 755', // base's bin entry is not listed: created implicitly for bin/sh
      './bin/sh f 755',
      './data d 750', // the app's own directory, kept though not listed
      './etc d 755', // base's etc (0700) is filtered; implicit 0755
      './etc/os-release f 644',
    ]);
  });

  it('replaces a symlink to a directory from a dependency instead of following it', async () => {
    const s = new MemorySource();
    const outside = freshDir();
    await s.addImage(manifest('base'), [
      { name: 'lib', type: 'symlink', linkname: outside },
      { name: 'usr/lib', type: 'symlink', linkname: '../../../..' },
    ]);
    const a = await s.addImage(manifest('app', { dependencies: [dep('base')] }), [
      { name: 'lib', type: 'directory', mode: 0o755 },
      file('lib/libc.so', 'libc'),
      file('usr/lib/x', 'x'), // no directory entry: the earlier layer's symlink gives way to a directory
    ]);
    const { target, read, warnings } = await render(s, a);
    expect(fs.lstatSync(path.join(target, 'lib')).isDirectory()).toBe(true);
    expect(read('lib/libc.so')).toBe('libc');
    expect(fs.lstatSync(path.join(target, 'usr/lib')).isDirectory()).toBe(true);
    expect(read('usr/lib/x')).toBe('x');
    expect(fs.readdirSync(outside)).toEqual([]);
    expect(warnings.join('\n')).toContain('usr/lib');
  });

  it('replaces a directory of a dependency with an upper non-directory, dropping its contents', async () => {
    const s = new MemorySource();
    await s.addImage(manifest('base'), [{ name: 'lib', type: 'directory' }, file('lib/old', 'old')]);
    const a = await s.addImage(manifest('app', { dependencies: [dep('base')] }), [{ name: 'lib', type: 'symlink', linkname: 'usr/lib' }]);
    const { target } = await render(s, a);
    expect(fs.readlinkSync(path.join(target, 'lib'))).toBe('usr/lib');
  });
});

// Debian's appc-spec package ships actool 0.8.11: real ACIs (gzip, manifest last, re-marshalled).
const actool = ['/usr/bin/actool', '/usr/local/bin/actool'].find((p) => fs.existsSync(p));

describe.skipIf(actool === undefined)('ACIs built by actool (skipped: actool from Debian package appc-spec is not installed)', () => {
  it('renders an app image depending on a base image through its pathWhitelist', async () => {
    const work = freshDir();
    const layout = (name: string, m: ImageManifest, files: Record<string, string>): string => {
      const dir = path.join(work, name);
      for (const [rel, content] of Object.entries(files)) {
        const p = path.join(dir, 'rootfs', rel);
        fs.mkdirSync(path.dirname(p), { recursive: true });
        if (content.startsWith('->')) fs.symlinkSync(content.slice(2), p);
        else fs.writeFileSync(p, content);
      }
      fs.mkdirSync(path.join(dir, 'rootfs'), { recursive: true });
      fs.writeFileSync(path.join(dir, 'manifest'), JSON.stringify(m));
      const out = path.join(work, `${name}.aci`);
      execFileSync(actool!, ['build', '--owner-root', dir, out]);
      return out;
    };
    const baseLabels = [
      { name: 'version', value: '1.0.0' },
      { name: 'os', value: 'linux' },
      { name: 'arch', value: 'amd64' },
    ];
    const baseAci = layout('base', manifest('example.com/base', { labels: baseLabels }), {
      'bin/sh': '#!base-sh',
      'bin/cat': '#!base-cat',
      'etc/passwd': 'root:x:0:0::/root:/bin/sh\n',
      'etc/motd': 'base motd',
      'lib64': '->lib',
    });
    const appAci = layout(
      'app',
      manifest('example.com/app', {
        labels: [{ name: 'version', value: '0.1.0' }, { name: 'os', value: 'linux' }, { name: 'arch', value: 'amd64' }],
        app: { exec: ['/bin/app'], user: '0', group: '0' },
        dependencies: [dep('example.com/base', { labels: [{ name: 'version', value: '1.0.0' }] })],
        pathWhitelist: ['/bin/sh', '/bin/app', '/etc/passwd', '/etc/motd', '/lib64'],
      }),
      { 'bin/app': '#!app', 'etc/motd': 'app motd', 'tmp/scratch': 'not listed' },
    );
    const s = new MemorySource();
    for (const file of [baseAci, appAci]) {
      const tar = zlib.gunzipSync(fs.readFileSync(file)); // actool gzips by default
      const entries: string[] = [];
      let m: ImageManifest | undefined;
      const extract = tarStream.extract();
      extract.on('entry', (h, stream, next) => {
        entries.push(h.name);
        const chunks: Buffer[] = [];
        stream.on('data', (c: unknown) => chunks.push(c as Buffer));
        stream.on('end', () => {
          if (h.name === 'manifest') m = JSON.parse(Buffer.concat(chunks).toString()) as ImageManifest;
          next();
        });
      });
      await new Promise<void>((resolve, reject) => extract.on('finish', () => resolve()).on('error', reject).end(tar));
      expect(entries.at(-1)).toBe('manifest'); // actool writes the manifest last
      s.add(tar, m!);
    }
    const appId = [...s.images].find(([, i]) => i.manifest.name === 'example.com/app')![0];
    const { target, read, result } = await render(s, appId);
    expect(result.layers.map((l) => l.name)).toEqual(['example.com/base', 'example.com/app']);
    const files = execFileSync('find', ['.', '!', '-type', 'd'], { cwd: target }).toString().trim().split('\n').sort();
    expect(files).toEqual(['./bin/app', './bin/sh', './etc/motd', './etc/passwd', './lib64']);
    expect(read('etc/motd')).toBe('app motd');
    expect(read('bin/sh')).toBe('#!base-sh');
    expect(fs.readlinkSync(path.join(target, 'lib64'))).toBe('lib');
    // the app's own tmp/ directory is kept although its file is not whitelisted
    expect(fs.readdirSync(path.join(target, 'tmp'))).toEqual([]);
  });
});
