// applyLayers on layers made in memory with tar-stream: tar, gzip and zstd, whiteouts and opaque
// directories whatever the entry order, and hostile layers refused as the ACI extractor does.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { Readable } from 'node:stream';
import zlib from 'node:zlib';

import { afterAll, describe, expect, it } from 'vitest';

import { ImageFormatError } from '../../src/errors.js';
import { detectLayerCompression } from '../../src/oci/decompress.js';
import { applyLayers, type LayerSource } from '../../src/oci/layers.js';
import { verifyingStream } from '../../src/oci/layout.js';
import { libcSyscalls } from '../../src/sys/index.js';
import { scratchDirs } from '../support/scratch.js';
import { tarOf } from '../support/tar.js';
import { hasCommand } from '../support/tools.js';

const { freshDir, cleanup } = scratchDirs('oci-layers');
afterAll(cleanup);
const haveZstd = hasCommand('zstd');


const TAR = 'application/vnd.oci.image.layer.v1.tar';
const GZIP = 'application/vnd.oci.image.layer.v1.tar+gzip';
const ZSTD = 'application/vnd.oci.image.layer.v1.tar+zstd';

function layer(bytes: Buffer, mediaType = TAR, name = 'test'): LayerSource {
  return { mediaType, name, open: () => Readable.from([bytes]) };
}

/** The tree as lines (`dir/`, `file = content`, `link -> target`), walked without following symlinks. */
function tree(dir: string, rel = ''): string[] {
  const out: string[] = [];
  for (const name of fs.readdirSync(rel === '' ? dir : `${dir}/${rel}`).sort()) {
    const r = rel === '' ? name : `${rel}/${name}`;
    const st = fs.lstatSync(`${dir}/${r}`);
    if (st.isSymbolicLink()) out.push(`${r} -> ${fs.readlinkSync(`${dir}/${r}`)}`);
    else if (st.isDirectory()) out.push(`${r}/`, ...tree(dir, r));
    else out.push(`${r} = ${fs.readFileSync(`${dir}/${r}`, 'utf8')}`);
  }
  return out;
}

async function apply(layers: LayerSource[]) {
  const dir = freshDir();
  const reports = await applyLayers(dir, layers, { sys: libcSyscalls });
  return { dir, reports, tree: tree(dir) };
}

const base = () =>
  tarOf([
    { name: 'etc/', type: 'directory' },
    { name: 'etc/hosts', content: 'h' },
    { name: 'gone/', type: 'directory' },
    { name: 'gone/x', content: 'x' },
    { name: 'del.txt', content: 'd' },
    { name: 'opq/', type: 'directory' },
    { name: 'opq/old', content: 'o' },
    { name: 'opq/sub/', type: 'directory' },
    { name: 'opq/sub/old2', content: 'o2' },
  ]);

describe('applyLayers', () => {
  it('applies .wh.<name> and .wh..wh..opq, keeps the layer\'s own entries, never shows whiteout files', async () => {
    const upper = await tarOf([
      { name: '.wh.del.txt' },
      { name: '.wh.gone' },
      // the layer's own entries before the opaque marker must survive it (layer.md)
      { name: 'opq/', type: 'directory' },
      { name: 'opq/sub/', type: 'directory' },
      { name: 'opq/sub/mine', content: 'm' },
      { name: 'opq/.wh..wh..opq' },
      { name: 'opq/new', content: 'n' },
      { name: 'etc/hosts', content: 'h2' },
    ]);
    const { tree: t, reports } = await apply([layer(await base()), layer(upper)]);
    expect(t).toEqual(['etc/', 'etc/hosts = h2', 'opq/', 'opq/new = n', 'opq/sub/', 'opq/sub/mine = m']);
    expect(reports[1]).toMatchObject({ whiteouts: 3, removed: 4 });
  });

  it('lets a later layer recreate a whited-out path, and a whiteout hide only lower layers', async () => {
    const l2 = await tarOf([{ name: '.wh.del.txt' }, { name: 'gone/', type: 'directory' }, { name: '.wh.gone' }, { name: 'gone/fresh', content: 'f' }]);
    const l3 = await tarOf([{ name: 'del.txt', content: 'back' }]);
    const { tree: t } = await apply([layer(await base()), layer(l2), layer(l3)]);
    expect(t).toContain('del.txt = back');
    // `gone` whited out and recreated in the same layer: only the layer's own child is left
    expect(t.filter((p) => p.startsWith('gone'))).toEqual(['gone/', 'gone/fresh = f']);
  });

  it('replaces a lower file by a directory and a lower directory by a symlink', async () => {
    const l1 = await tarOf([{ name: 'a', content: 'file' }, { name: 'b/', type: 'directory' }, { name: 'b/c', content: 'c' }]);
    const l2 = await tarOf([{ name: 'a/', type: 'directory' }, { name: 'a/in', content: 'i' }, { name: '.wh.b' }, { name: 'b', type: 'symlink', linkname: 'a' }]);
    const { tree: t } = await apply([layer(l1), layer(l2)]);
    expect(t).toEqual(['a/', 'a/in = i', 'b -> a']);
  });

  it('reads gzip layers (OCI and Docker media types)', async () => {
    const gz = zlib.gzipSync(await base());
    const { tree: t, reports } = await apply([layer(gz, GZIP), layer(zlib.gzipSync(await tarOf([{ name: '.wh.etc' }])), 'application/vnd.docker.image.rootfs.diff.tar.gzip')]);
    expect(reports.map((r) => r.compression)).toEqual(['gzip', 'gzip']);
    expect(t).not.toContain('etc/');
    expect(t).toContain('opq/sub/old2 = o2');
  });

  it.skipIf(!haveZstd)('reads a zstd layer made by the zstd binary', async () => {
    const zst = execFileSync('zstd', ['-q', '-c'], { input: await base() });
    expect(detectLayerCompression(zst)).toBe('zstd');
    const { tree: t, reports } = await apply([layer(zst, ZSTD)]);
    expect(reports[0]?.compression).toBe('zstd');
    expect(t).toContain('opq/sub/old2 = o2');
  });

  it.skipIf(!haveZstd)('refuses a truncated zstd layer', async () => {
    const zst = execFileSync('zstd', ['-q', '-c'], { input: await base() });
    await expect(apply([layer(zst.subarray(0, zst.length - 8), ZSTD)])).rejects.toThrow(/corrupt zstd data/);
  });

  it('decides by magic when the media type lies (gzip data under +zstd), with a warning', async () => {
    const warnings: string[] = [];
    const dir = freshDir();
    await applyLayers(dir, [layer(zlib.gzipSync(await base()), ZSTD)], { sys: libcSyscalls, onWarning: (w) => warnings.push(w) });
    expect(warnings[0]).toMatch(/says zstd but the data is gzip/);
  });

  it('refuses an uncompressed layer whose digest does not match, though the tar itself is valid', async () => {
    const tar = await base();
    const wrong = { digest: `sha256:${'0'.repeat(64)}`, size: tar.length };
    const source: LayerSource = { mediaType: TAR, name: wrong.digest, open: () => Readable.from([tar]).pipe(verifyingStream(wrong, 'blob')) };
    await expect(apply([source])).rejects.toThrow(/digest mismatch/);
    const short = { ...wrong, size: tar.length - 1 };
    await expect(apply([{ ...source, open: () => Readable.from([tar]).pipe(verifyingStream(short, 'blob')) }])).rejects.toThrow(/larger than its descriptor/);
  });

  it('refuses an unknown media type and an empty blob', async () => {
    await expect(apply([layer(await base(), 'application/vnd.oci.image.config.v1+json')])).rejects.toThrow(/unsupported layer media type/);
    await expect(apply([layer(Buffer.alloc(0))])).rejects.toThrow(/empty blob/);
  });
});

describe('applyLayers with hostile layers', () => {
  it('refuses a ".." entry', async () => {
    const bad = await tarOf([{ name: '../escape', content: 'x' }]);
    await expect(apply([layer(bad)])).rejects.toThrow(ImageFormatError);
    await expect(apply([layer(bad)])).rejects.toThrow(/escapes the target/);
  });

  it('refuses writing through a symlink of the same layer (link -> /etc, link/passwd)', async () => {
    const bad = await tarOf([{ name: 'link', type: 'symlink', linkname: '/etc' }, { name: 'link/passwd', content: 'pwned' }]);
    await expect(apply([layer(bad)])).rejects.toThrow(ImageFormatError);
  });

  it('never writes through a lower layer\'s symlink (replaced by a directory)', async () => {
    const outside = freshDir();
    const l1 = await tarOf([{ name: 'link', type: 'symlink', linkname: outside }]);
    const l2 = await tarOf([{ name: 'link/file', content: 'x' }]);
    const { dir } = await apply([layer(l1), layer(l2)]);
    expect(fs.readdirSync(outside)).toEqual([]);
    expect(fs.lstatSync(`${dir}/link`).isDirectory()).toBe(true);
  });

  it('removes nothing outside through a whiteout below a lower symlink', async () => {
    const outside = freshDir();
    fs.writeFileSync(`${outside}/victim`, 'safe');
    const l1 = await tarOf([{ name: 'evil', type: 'symlink', linkname: outside }]);
    const l2 = await tarOf([{ name: 'evil/.wh.victim' }, { name: 'evil/.wh..wh..opq' }]);
    await apply([layer(l1), layer(l2)]);
    expect(fs.readFileSync(`${outside}/victim`, 'utf8')).toBe('safe');
  });

  it('refuses a whiteout naming the parent (.wh..)', async () => {
    await expect(apply([layer(await tarOf([{ name: 'a/.wh..' }]))])).rejects.toThrow(/whiteout names no entry/);
  });

  it('names the layer in the error', async () => {
    await expect(apply([layer(await base()), layer(await tarOf([{ name: '/../x', content: '' }]), TAR, 'sha256:feed')])).rejects.toThrow(/layer 2\/2 \(sha256:feed\)/);
  });
});
