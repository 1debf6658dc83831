// mergeLayers (top-down) must make the tree applyLayers (bottom-up) makes, for every way layers
// can hide each other; the ACI recorded while it extracts must extract to that same tree; images
// it cannot reproduce throw MergeFallback, and packLayers then gives the bottom-up result.
import crypto from 'node:crypto';
import fs from 'node:fs';
import { Readable } from 'node:stream';

import { afterAll, describe, expect, it } from 'vitest';

import { ImageFormatError } from '../../src/errors.js';
import { createdOf, packLayers, writeAci } from '../../src/fetch/oci-pack.js';
import { extractTar } from '../../src/image/extract.js';
import { applyLayers, type LayerSource } from '../../src/oci/layers.js';
import { mergeLayers, MergeFallback } from '../../src/oci/merge.js';
import { libcSyscalls } from '../../src/sys/index.js';
import { scratchDirs } from '../support/scratch.js';
import { tarOf, type TarEntry } from '../support/tar.js';

const { freshDir, cleanup } = scratchDirs('oci-merge');
afterAll(cleanup);

const TAR = 'application/vnd.oci.image.layer.v1.tar';
const MANIFEST = Buffer.from('{"acKind":"ImageManifest","acVersion":"0.8.11","name":"example.com/merge"}\n');
const CREATED = createdOf({ created: '2024-05-06T07:08:09Z' });

async function layersOf(...stacks: TarEntry[][]): Promise<LayerSource[]> {
  const tars = await Promise.all(stacks.map((entries) => tarOf(entries)));
  return tars.map((bytes, i) => ({ mediaType: TAR, name: `layer${i + 1}`, open: () => Readable.from([bytes]) }));
}

/**
 * The tree as lines: type, mode, owner, xattrs, content or target, mtime for non-directories
 * (directory times only with `dirTimes`), and which paths share an inode.
 */
function snapshot(dir: string, dirTimes = false): string[] {
  const out: string[] = [];
  const inodes = new Map<number, string[]>();
  const walk = (rel: string): void => {
    const abs = rel === '' ? dir : `${dir}/${rel}`;
    const st = fs.lstatSync(abs);
    const xattrs = libcSyscalls.llistxattr(abs).sort().map((n) => `${n}=${libcSyscalls.lgetxattr(abs, n)?.toString('hex')}`);
    const owner = `${(st.mode & 0o7777).toString(8)} ${st.uid}:${st.gid}${xattrs.length > 0 ? ` xattrs ${xattrs.join(',')}` : ''}`;
    if (st.isDirectory()) {
      out.push(`${rel}/ ${owner}${dirTimes ? ` @${Math.floor(st.mtimeMs / 1000)}` : ''}`);
      for (const name of fs.readdirSync(abs).sort()) walk(rel === '' ? name : `${rel}/${name}`);
      return;
    }
    const time = `@${Math.floor(st.mtimeMs / 1000)}`;
    if (st.isSymbolicLink()) out.push(`${rel} -> ${fs.readlinkSync(abs)} ${time}`);
    else out.push(`${rel} ${owner} = ${fs.readFileSync(abs, 'utf8')} ${time}`);
    if (st.isFile() && st.nlink > 1) inodes.set(st.ino, [...(inodes.get(st.ino) ?? []), rel]);
  };
  walk('');
  for (const names of inodes.values()) out.push(`linked: ${names.sort().join(' ')}`);
  return out;
}

async function bottomUp(layers: LayerSource[]): Promise<string[]> {
  const dir = freshDir();
  await applyLayers(dir, layers, { sys: libcSyscalls });
  return snapshot(dir);
}

async function topDown(layers: LayerSource[]): Promise<string[]> {
  const dir = freshDir();
  await mergeLayers(dir, layers, { sys: libcSyscalls });
  return snapshot(dir);
}

/** packLayers into a fresh tree; returns the tree, the archive's id and the tree extracted from the archive. */
async function pack(layers: LayerSource[]) {
  const rootfs = `${freshDir()}/rootfs`;
  fs.mkdirSync(rootfs, { mode: 0o755 });
  const tmp = freshDir();
  const packed = await packLayers(rootfs, layers, MANIFEST, CREATED, tmp, { sys: libcSyscalls });
  const bytes = fs.readFileSync(packed.tmpTarPath);
  const fromAci = freshDir();
  await extractTar(Readable.from([bytes]), fromAci, { sys: libcSyscalls, prefix: 'rootfs/' });
  expect(`sha512-${crypto.createHash('sha512').update(bytes).digest('hex')}`).toBe(packed.id);
  expect(packed.size).toBe(bytes.length);
  return { rootfs, packed, tree: snapshot(rootfs, true), aciTree: snapshot(fromAci, true) };
}

const d = (name: string, mode = 0o755): TarEntry => ({ name, type: 'directory', mode });
const f = (name: string, content: string, mode = 0o644): TarEntry => ({ name, content, mode });
const sym = (name: string, linkname: string): TarEntry => ({ name, type: 'symlink', linkname });
const hard = (name: string, linkname: string): TarEntry => ({ name, type: 'link', linkname });

/** Layer stacks (lowest first) whose top-down merge must equal the bottom-up application. */
const SAME: Array<[string, TarEntry[][]]> = [
  [
    'whiteouts and opaque directories hide only lower layers, whatever the entry order',
    [
      [d('etc/'), f('etc/hosts', 'h'), d('gone/'), f('gone/x', 'x'), f('del.txt', 'd'), d('opq/'), f('opq/old', 'o'), d('opq/sub/'), f('opq/sub/old2', 'o2')],
      [f('.wh.del.txt', ''), f('.wh.gone', ''), d('opq/'), d('opq/sub/'), f('opq/sub/mine', 'm'), f('opq/.wh..wh..opq', ''), f('opq/new', 'n'), f('etc/hosts', 'h2')],
    ],
  ],
  [
    'a directory replaced by a file and that file by a directory keeps only the top directory\'s entries',
    [[d('p/'), f('p/a', 'a')], [f('p', 'file')], [d('p/', 0o750), f('p/b', 'b')]],
  ],
  ['a file below an upper layer\'s implicit directory is replaced by it', [[f('q', 'lower file')], [f('q/x', 'x')]]],
  ['a directory replaced by a file, and the file by an implicit directory', [[d('q/'), f('q/a', 'a')], [f('q', 'file')], [f('q/x', 'x')]]],
  ['a lower directory entry gives an upper implicit directory its mode', [[d('m/', 0o700), f('m/old', 'o')], [f('m/new', 'n')]]],
  ['the topmost directory entry gives a directory its mode', [[d('m/', 0o700), f('m/a', 'a')], [d('m/', 0o750)], [f('m/b', 'b')]]],
  ['an upper symlink hides the lower directory at its path', [[d('s/'), f('s/f', 'f')], [sym('s', '/etc')]]],
  ['an upper directory replaces a lower symlink', [[sym('s', '/etc')], [d('s/'), f('s/f', 'f')]]],
  ['the topmost root entry gives the root its mode', [[d('./', 0o700), f('a', 'a')], [d('./', 0o750), f('b', 'b')], [f('c', 'c')]]],
  ['an opaque marker at the root hides every lower entry', [[f('a', 'a'), d('dir/'), f('dir/x', 'x')], [f('.wh..wh..opq', ''), f('b', 'b')]]],
  ['a whiteout of a path the layer also makes keeps only the layer\'s own entries', [[d('w/'), f('w/old', 'o')], [f('.wh.w', ''), d('w/'), f('w/new', 'n')]]],
  [
    'hardlinks within a layer, to a lower layer\'s file and to a lower layer\'s hardlink',
    [[f('bin/busybox', 'bb'), hard('bin/sh', 'bin/busybox')], [hard('bin/ls', 'bin/sh'), f('etc/x', 'x'), hard('etc/y', 'etc/x')], [hard('usr-ls', 'bin/ls')]],
  ],
  ['files, symlinks and modes of three layers, most of them shadowed', [[f('a', '1'), f('b', '1', 0o600), sym('c', 'a')], [f('a', '2', 0o755), sym('b', 'a')], [f('c', '3')]]],
];

describe('mergeLayers', () => {
  for (const [title, stacks] of SAME) {
    it(`makes the bottom-up tree: ${title}`, async () => {
      const expected = await bottomUp(await layersOf(...stacks));
      expect(await topDown(await layersOf(...stacks))).toEqual(expected);
    });
  }

  it('throws MergeFallback when an upper layer replaces the target of a lower layer\'s hardlink', async () => {
    const stacks = [[f('t', 'old')], [hard('q', 't')], [f('t', 'new')]];
    await expect(topDown(await layersOf(...stacks))).rejects.toThrow(MergeFallback);
  });

  it('throws MergeFallback when a hardlink names a lower file that its own layer replaces or whites out', async () => {
    await expect(topDown(await layersOf([f('t', 'old')], [hard('q', 't'), f('t', 'new')]))).rejects.toThrow(MergeFallback);
    await expect(topDown(await layersOf([f('t', 'old')], [hard('q', 't'), f('.wh.t', '')]))).rejects.toThrow(MergeFallback);
  });

  it('refuses an entry below a same-layer symlink even where an upper layer hides both (as bottom-up does)', async () => {
    const stacks = [[sym('s', '/etc'), f('s/passwd', 'x')], [d('s/'), f('s/ok', 'ok')]];
    await expect(bottomUp(await layersOf(...stacks))).rejects.toThrow(/parent s is a symlink/);
    await expect(topDown(await layersOf(...stacks))).rejects.toThrow(ImageFormatError);
    await expect(topDown(await layersOf(...stacks))).rejects.toThrow(/parent s is a symlink/);
  });

  it('refuses a file over a directory the same layer made, also where it is shadowed', async () => {
    const stacks = [[f('p/x', 'x'), f('p', 'file')], [f('p', 'top')]];
    await expect(bottomUp(await layersOf(...stacks))).rejects.toThrow(/conflicts with the directory p/);
    await expect(topDown(await layersOf(...stacks))).rejects.toThrow(/conflicts with the directory p/);
  });
});

describe('packLayers', () => {
  it('writes an ACI that extracts to the tree it leaves, directory times included, and the same bytes every time', async () => {
    const stacks = SAME.map(([, s]) => s).flat();
    const a = await pack(await layersOf(...stacks.slice(0, 6)));
    expect(a.aciTree).toEqual(a.tree);
    expect(a.tree).toContain(`/ 755 0:0 @${Math.floor(CREATED.getTime() / 1000)}`);
    const b = await pack(await layersOf(...stacks.slice(0, 6)));
    expect(b.packed.id).toBe(a.packed.id);
  });

  it('keeps hardlinks, implicit directories and the root entry in the archive', async () => {
    const { tree, aciTree } = await pack(await layersOf(...SAME.find(([t]) => t.startsWith('hardlinks'))![1], [d('./', 0o750), f('deep/er/file', 'x')]));
    expect(aciTree).toEqual(tree);
    expect(tree).toContain('linked: bin/busybox bin/ls bin/sh usr-ls');
    expect(tree[0]).toMatch(/^\/ 750 /);
  });

  it('records a directory that only a shadowed entry names as an implicit one', async () => {
    const { tree, aciTree } = await pack(await layersOf([d('q/', 0o700), f('q/a', 'a')], [f('q', 'file')], [f('q/x', 'x')]));
    expect(aciTree).toEqual(tree);
    expect(tree).toContain(`q/ 755 0:0 @${Math.floor(CREATED.getTime() / 1000)}`);
  });

  it('falls back to the bottom-up tree and a walk of it for an image the merge cannot reproduce', async () => {
    const stacks = [[f('t', 'old')], [hard('q', 't')], [f('t', 'new')]];
    const { rootfs, packed, tree, aciTree } = await pack(await layersOf(...stacks));
    expect(aciTree).toEqual(tree);
    expect(fs.readFileSync(`${rootfs}/q`, 'utf8')).toBe('old');
    expect(fs.readFileSync(`${rootfs}/t`, 'utf8')).toBe('new');
    // The fallback is exactly applyLayers + writeAci.
    const again = `${freshDir()}/rootfs`;
    fs.mkdirSync(again, { mode: 0o755 });
    await applyLayers(again, await layersOf(...stacks), { sys: libcSyscalls });
    const walked = await writeAci(MANIFEST, again, CREATED, freshDir(), libcSyscalls);
    expect(walked.id).toBe(packed.id);
  });

  const privileged = process.geteuid?.() === 0;
  const xf = (name: string, content: string, xattrs: Record<string, string>): TarEntry => ({ ...f(name, content), pax: Object.fromEntries(Object.entries(xattrs).map(([k, v]) => [`SCHILY.xattr.${k}`, v])) });

  it.skipIf(!privileged)('keeps the layers\' xattrs (SCHILY.xattr pax records) in the ACI, so a tree rendered again from it has them (needs root)', async () => {
    const layers = await layersOf(
      [xf('bin/ping', 'lower', { 'user.tspod.cap': 'lower' }), xf('bin/tool', 'tool', { 'user.tspod.b': '2', 'user.tspod.a': '1' }), { name: 'etc/', type: 'directory', mode: 0o755, pax: { 'SCHILY.xattr.user.tspod.dir': 'd' } }],
      [f('bin/ping', 'upper')],
    );
    const { packed, tree, aciTree } = await pack(layers);
    expect(aciTree).toEqual(tree);
    expect(tree).toContainEqual(expect.stringMatching(/^bin\/tool 644 0:0 xattrs user.tspod.a=31,user.tspod.b=32 = tool /));
    expect(tree).toContainEqual(expect.stringMatching(/^etc\/ 755 0:0 xattrs user.tspod.dir=64 @/));
    // The upper layer's file replaced the lower one with its xattr.
    expect(tree).toContainEqual(expect.stringMatching(/^bin\/ping 644 0:0 = upper /));
    const again = await pack(layers);
    expect(again.packed.id).toBe(packed.id);
  });

  it.skipIf(!privileged)('packs a tree\'s xattrs byte for byte when walking it (the fallback), binary values included (needs root)', async () => {
    const rootfs = `${freshDir()}/rootfs`;
    fs.mkdirSync(`${rootfs}/bin`, { recursive: true, mode: 0o755 });
    fs.writeFileSync(`${rootfs}/bin/ping`, 'ping');
    const binary = Buffer.from([0x01, 0x00, 0x00, 0x02, 0xff, 0x0a, 0x20, 0x3d]);
    libcSyscalls.lsetxattr(`${rootfs}/bin/ping`, 'trusted.tspod.cap', binary);
    libcSyscalls.lsetxattr(`${rootfs}/bin`, 'user.tspod.dir', Buffer.from('x'.repeat(300)));
    const walked = await writeAci(MANIFEST, rootfs, CREATED, freshDir(), libcSyscalls);
    const out = freshDir();
    await extractTar(Readable.from([fs.readFileSync(walked.tmpTarPath)]), out, { sys: libcSyscalls, prefix: 'rootfs/' });
    expect(libcSyscalls.lgetxattr(`${out}/bin/ping`, 'trusted.tspod.cap')).toEqual(binary);
    expect(libcSyscalls.lgetxattr(`${out}/bin`, 'user.tspod.dir')?.toString()).toBe('x'.repeat(300));
    expect(snapshot(out)).toEqual(snapshot(rootfs));
  });
});
