// OCI layouts with real parts: images built by umoci (whiteouts from repack, an opaque directory
// added with `umoci raw add-layer`), copied by skopeo (zstd layers, oci-archive), read with every
// digest verified, applied with applyLayers and compared with what `umoci unpack` produces;
// corrupted blobs refused; a layout written by writeLayout read back by umoci.
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { validateImageManifest } from '../../src/appc/validate.js';
import { ImageFormatError, NotFoundError, UsageError } from '../../src/errors.js';
import { convertConfig } from '../../src/oci/convert.js';
import { applyLayers, layerSources } from '../../src/oci/layers.js';
import { blobPath, parseLayoutReference, readLayout, readLayoutArchive, writeLayout, type LayoutImage } from '../../src/oci/layout.js';
import { libcSyscalls } from '../../src/sys/index.js';
import { writeImageIndex } from '../support/oci-layout.js';
import { scratchDirs } from '../support/scratch.js';
import { tarOf as tarOfEntries, type TarEntry } from '../support/tar.js';
import { hasCommand } from '../support/tools.js';

const { freshDir, cleanup } = scratchDirs('oci-layout');
afterAll(cleanup);

const haveUmoci = hasCommand('umoci', ['--version']);
const haveSkopeo = hasCommand('skopeo', ['--version']);
const isRoot = process.geteuid?.() === 0;
// umoci unpack keeps owners only as root; --rootless would change what we compare against.
const canBuild = haveUmoci && isRoot;
const why = !haveUmoci ? 'umoci is not installed (apt-get install umoci)' : 'umoci unpack needs root to keep owners';

const sh = (cmd: string, args: string[], cwd?: string) => execFileSync(cmd, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] }).toString();

/** The tree as lines with type, mode, owner and content hash, walked without following symlinks. */
function tree(dir: string, rel = ''): string[] {
  const out: string[] = [];
  for (const name of fs.readdirSync(rel === '' ? dir : `${dir}/${rel}`).sort()) {
    const r = rel === '' ? name : `${rel}/${name}`;
    const st = fs.lstatSync(`${dir}/${r}`);
    const meta = `${(st.mode & 0o7777).toString(8)} ${st.uid}:${st.gid}`;
    if (st.isSymbolicLink()) out.push(`${r} -> ${fs.readlinkSync(`${dir}/${r}`)}`);
    else if (st.isDirectory()) out.push(`${r}/ ${meta}`, ...tree(dir, r));
    else out.push(`${r} ${meta} ${crypto.createHash('sha256').update(fs.readFileSync(`${dir}/${r}`)).digest('hex').slice(0, 12)}`);
  }
  return out;
}

/** Layer tars here default to mode 0644. */
const tarOf = (entries: TarEntry[]): Promise<Buffer> => tarOfEntries(entries, { mode: 0o644 });

async function applyImage(image: LayoutImage): Promise<string> {
  const dir = freshDir();
  await applyLayers(dir, layerSources(image.manifest.layers, image.openLayer), { sys: libcSyscalls });
  return dir;
}

function umociUnpack(layout: string, tag: string): string {
  const bundle = path.join(freshDir(), 'bundle');
  sh('umoci', ['unpack', '--image', `${layout}:${tag}`, bundle]);
  return path.join(bundle, 'rootfs');
}

function copyLayout(src: string): string {
  const dst = path.join(freshDir(), 'copy');
  fs.cpSync(src, dst, { recursive: true });
  return dst;
}

let layout = '';

describe.skipIf(!canBuild)(`OCI layouts built by umoci${canBuild ? '' : ` (skipped: ${why})`}`, () => {
  beforeAll(async () => {
    const work = freshDir();
    layout = path.join(work, 'layout');
    sh('umoci', ['init', '--layout', layout]);
    sh('umoci', ['new', '--image', `${layout}:t`]);
    const b1 = path.join(work, 'b1');
    sh('umoci', ['unpack', '--image', `${layout}:t`, b1]);
    const r1 = path.join(b1, 'rootfs');
    fs.mkdirSync(`${r1}/etc/keep`, { recursive: true });
    fs.mkdirSync(`${r1}/gone/deep`, { recursive: true });
    fs.mkdirSync(`${r1}/opq/sub`, { recursive: true });
    fs.mkdirSync(`${r1}/bin`, { recursive: true });
    fs.writeFileSync(`${r1}/etc/keep/f`, 'kept\n');
    fs.writeFileSync(`${r1}/gone/deep/x`, 'x\n');
    fs.writeFileSync(`${r1}/opq/old`, 'old\n');
    fs.writeFileSync(`${r1}/opq/sub/old2`, 'old2\n');
    fs.writeFileSync(`${r1}/del.txt`, 'del\n');
    fs.writeFileSync(`${r1}/bin/tool`, '#!/bin/sh\n', { mode: 0o755 });
    fs.chmodSync(`${r1}/bin/tool`, 0o4755);
    fs.symlinkSync('keep/f', `${r1}/etc/link`);
    fs.linkSync(`${r1}/etc/keep/f`, `${r1}/etc/hard`);
    fs.chownSync(`${r1}/etc/keep/f`, 1000, 1000);
    sh('umoci', ['repack', '--image', `${layout}:t`, b1]);
    // Second layer: deletions, so umoci emits .wh. entries.
    const b2 = path.join(work, 'b2');
    sh('umoci', ['unpack', '--image', `${layout}:t`, b2]);
    const r2 = path.join(b2, 'rootfs');
    fs.rmSync(`${r2}/gone`, { recursive: true });
    fs.rmSync(`${r2}/del.txt`);
    fs.rmSync(`${r2}/etc/link`);
    fs.writeFileSync(`${r2}/etc/keep/f`, 'changed\n');
    fs.writeFileSync(`${r2}/opq/added`, 'added\n');
    sh('umoci', ['repack', '--image', `${layout}:t`, b2]);
    // Third layer: umoci never writes opaque markers, so add one verbatim (own entries first).
    const opaque = await tarOf([
      { name: 'opq/', type: 'directory', mode: 0o755 },
      { name: 'opq/sub/', type: 'directory', mode: 0o750 },
      { name: 'opq/sub/mine', content: 'mine\n' },
      { name: 'opq/.wh..wh..opq' },
      { name: 'opq/fresh', content: 'fresh\n' },
    ]);
    fs.writeFileSync(path.join(work, 'opaque.tar'), opaque);
    sh('umoci', ['raw', 'add-layer', '--image', `${layout}:t`, path.join(work, 'opaque.tar')]);
    sh('umoci', ['config', '--image', `${layout}:t`, '--config.entrypoint', '/bin/tool', '--config.cmd', 'serve', '--config.user', '1000:1000',
      '--config.env', 'A=1', '--config.exposedports', '8080/tcp', '--config.volume', '/data', '--config.label', 'org.example.team=core', '--config.workingdir', '/srv']);
  });

  it('reads the layout by tag and finds three layers with whiteouts and an opaque dir', async () => {
    const image = await readLayout(layout, { tag: 't' });
    expect(image.manifest.layers).toHaveLength(3);
    expect(image.tag).toBe('t');
    const mine = await applyImage(image);
    expect(fs.readdirSync(`${mine}/opq`).sort()).toEqual(['fresh', 'sub']);
    expect(fs.existsSync(`${mine}/gone`)).toBe(false);
    expect(tree(mine).some((l) => l.includes('.wh.'))).toBe(false);
  });

  it('applies to the same tree as umoci unpack (names, types, modes, owners, contents)', async () => {
    const image = await readLayout(layout, { tag: 't' });
    const mine = await applyImage(image);
    const theirs = umociUnpack(layout, 't');
    const expected = tree(theirs);
    // the comparison is only worth something if the interesting cases are in it
    expect(expected.join('\n')).toMatch(/bin\/tool 4755 0:0/);
    expect(expected.join('\n')).toMatch(/etc\/keep\/f 644 1000:1000/);
    expect(expected.join('\n')).toMatch(/opq\/sub\/mine/);
    expect(tree(mine)).toEqual(expected);
  });

  it('converts the umoci config into a valid appc manifest carrying the manifest digest', async () => {
    const image = await readLayout(layout, { tag: 't' });
    const { manifest } = convertConfig({ name: 'example.com/umoci/test', tag: image.tag, config: image.config, manifestDigest: image.manifestDigest, configDigest: image.manifest.config.digest });
    validateImageManifest(manifest);
    expect(manifest.app).toMatchObject({ exec: ['/bin/tool', 'serve'], user: '1000', group: '1000', workingDirectory: '/srv', ports: [{ name: '8080-tcp', port: 8080, protocol: 'tcp' }], mountPoints: [{ name: 'volume-data', path: '/data' }] });
    expect(manifest.annotations).toContainEqual({ name: 'appc.io/oci/manifest-digest', value: image.manifestDigest });
    expect(manifest.annotations).toContainEqual({ name: 'org.example.team', value: 'core' });
  });

  it('refuses a layer blob whose content does not match its digest', async () => {
    const copy = copyLayout(layout);
    const image = await readLayout(copy, { tag: 't' });
    const file = blobPath(copy, image.manifest.layers[1]!.digest);
    const bytes = fs.readFileSync(file);
    bytes[bytes.length - 3]! ^= 0xff; // inside the gzip trailer: gunzip alone might not notice in time
    fs.writeFileSync(file, bytes);
    await expect(applyImage(image)).rejects.toThrow(/digest mismatch|corrupt gzip/);
  });

  it('refuses a layer blob replaced by another valid gzip tar (only the digest can tell)', async () => {
    const copy = copyLayout(layout);
    const image = await readLayout(copy, { tag: 't' });
    const [first, second] = image.manifest.layers;
    // same size is not needed: the size check or the digest check catches it
    fs.copyFileSync(blobPath(copy, first!.digest), blobPath(copy, second!.digest));
    await expect(applyImage(image)).rejects.toThrow(ImageFormatError);
    await expect(applyImage(image)).rejects.toThrow(/digest mismatch|bytes/);
  });

  it('refuses a corrupted config blob while reading the layout', async () => {
    const copy = copyLayout(layout);
    const image = await readLayout(copy, { tag: 't' });
    const file = blobPath(copy, image.manifest.config.digest);
    const text = fs.readFileSync(file, 'utf8');
    fs.writeFileSync(file, text.replace('/bin/tool', '/bin/evil'));
    await expect(readLayout(copy, { tag: 't' })).rejects.toThrow(/digest mismatch/);
  });

  it('reports a missing tag with the tags there are, and a missing layout', async () => {
    await expect(readLayout(layout, { tag: 'nope' })).rejects.toThrow(NotFoundError);
    await expect(readLayout(layout, { tag: 'nope' })).rejects.toThrow(/tags: t/);
    await expect(readLayout(freshDir())).rejects.toThrow(/not an OCI image layout/);
  });

  it('refuses an index entry whose digest would leave blobs/ (../../etc/passwd)', async () => {
    const copy = copyLayout(layout);
    const index = JSON.parse(fs.readFileSync(`${copy}/index.json`, 'utf8'));
    index.manifests[0].digest = 'sha256:../../../../etc/passwd';
    fs.writeFileSync(`${copy}/index.json`, JSON.stringify(index));
    await expect(readLayout(copy, { tag: 't' })).rejects.toThrow(/is not sha256/);
  });

  it('writes a layout that umoci unpacks to the same tree and readLayout reads back', async () => {
    const image = await readLayout(layout, { tag: 't' });
    const out = path.join(freshDir(), 'export');
    const entry = await writeLayout(
      out,
      { manifestBytes: image.manifestBytes, configBytes: image.configBytes, tag: 'v1', layers: image.manifest.layers.map((d) => ({ descriptor: d, open: () => image.openLayer(d) })) },
      { sys: libcSyscalls },
    );
    expect(entry.digest).toBe(image.manifestDigest);
    const back = await readLayout(out, { tag: 'v1' });
    expect(back.manifestDigest).toBe(image.manifestDigest);
    expect(tree(umociUnpack(out, 'v1'))).toEqual(tree(umociUnpack(layout, 't')));
    // a second export under another tag adds an index entry, reusing the blobs
    await writeLayout(out, { manifestBytes: image.manifestBytes, configBytes: image.configBytes, tag: 'v2', layers: image.manifest.layers.map((d) => ({ descriptor: d, open: () => image.openLayer(d) })) }, { sys: libcSyscalls });
    expect(JSON.parse(fs.readFileSync(`${out}/index.json`, 'utf8')).manifests).toHaveLength(2);
    await expect(readLayout(out)).rejects.toThrow(UsageError);
  });

  it('refuses to export a layer whose bytes do not match its descriptor', async () => {
    const image = await readLayout(layout, { tag: 't' });
    const out = path.join(freshDir(), 'export');
    const layers = image.manifest.layers.map((d, i) => ({ descriptor: d, open: () => image.openLayer(image.manifest.layers[(i + 1) % 3]!) }));
    await expect(writeLayout(out, { manifestBytes: image.manifestBytes, configBytes: image.configBytes, tag: 'x', layers }, { sys: libcSyscalls })).rejects.toThrow(ImageFormatError);
    expect(fs.existsSync(`${out}/index.json`)).toBe(false);
  });

  it('follows a nested image index to the manifest for this machine, listing platforms when none fits', async () => {
    const copy = copyLayout(layout);
    const index = JSON.parse(fs.readFileSync(`${copy}/index.json`, 'utf8'));
    const real = index.manifests[0];
    const arch = ({ x64: 'amd64', arm64: 'arm64' } as Record<string, string>)[process.arch] ?? process.arch;
    const nested = (archs: string[]) => {
      const manifest = { mediaType: real.mediaType, digest: real.digest, size: real.size };
      const nestedIndex = writeImageIndex(copy, archs.map((a) => ({ manifest, platform: { os: 'linux', architecture: a } })));
      index.manifests = [{ ...nestedIndex, annotations: real.annotations }];
      fs.writeFileSync(`${copy}/index.json`, JSON.stringify(index));
    };
    nested(['s390x-none', arch]);
    expect((await readLayout(copy, { tag: 't' })).manifestDigest).toBe(real.digest);
    nested(['mips', 'riscv64']);
    await expect(readLayout(copy, { tag: 't' })).rejects.toThrow(/available: linux\/mips, linux\/riscv64/);
  });

  describe.skipIf(!haveSkopeo)('copied by skopeo (skipped when skopeo is missing: apt-get install skopeo)', () => {
    it('reads zstd layers written by skopeo copy --dest-compress-format zstd to the same tree as umoci unpack', async () => {
      const zl = path.join(freshDir(), 'zstd');
      sh('skopeo', ['copy', '--dest-compress-format', 'zstd', `oci:${layout}:t`, `oci:${zl}:z`]);
      const image = await readLayout(zl, { tag: 'z' });
      expect(image.manifest.layers.map((l) => l.mediaType)).toContain('application/vnd.oci.image.layer.v1.tar+zstd');
      expect(tree(await applyImage(image))).toEqual(tree(umociUnpack(layout, 't')));
    });

    it('reads an oci-archive made by skopeo', async () => {
      const archive = path.join(freshDir(), 'image.tar');
      sh('skopeo', ['copy', `oci:${layout}:t`, `oci-archive:${archive}:arch`]);
      const ref = parseLayoutReference(`oci-archive:${archive}:arch`);
      expect(ref).toEqual({ transport: 'oci-archive', path: archive, tag: 'arch' });
      const image = await readLayoutArchive(ref.path, freshDir(), { sys: libcSyscalls, ...(ref.tag ? { tag: ref.tag } : {}) });
      expect(tree(await applyImage(image))).toEqual(tree(umociUnpack(layout, 't')));
    });
  });
});

describe('readLayoutArchive with a hostile archive', () => {
  it('ignores a blob that is a symlink out of the archive (blobs/sha256/<hex> -> /etc/hostname)', async () => {
    const hex = 'c'.repeat(64);
    const index = { schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: `sha256:${hex}`, size: 10 }] };
    const archive = path.join(freshDir(), 'evil.tar');
    fs.writeFileSync(
      archive,
      await tarOf([
        { name: 'oci-layout', content: '{"imageLayoutVersion":"1.0.0"}' },
        { name: 'index.json', content: JSON.stringify(index) },
        { name: 'blobs/sha256/', type: 'directory', mode: 0o755 },
        { name: `blobs/sha256/${hex}`, type: 'symlink', linkname: '/etc/hostname' },
      ]),
    );
    const work = freshDir();
    await expect(readLayoutArchive(archive, work, { sys: libcSyscalls })).rejects.toThrow(NotFoundError);
    expect(fs.existsSync(`${work}/blobs/sha256/${hex}`)).toBe(false);
  });

  it('refuses an archive entry escaping the work directory', async () => {
    const archive = path.join(freshDir(), 'evil.tar');
    fs.writeFileSync(archive, await tarOf([{ name: '../oci-layout', content: '{}' }]));
    await expect(readLayoutArchive(archive, freshDir(), { sys: libcSyscalls })).rejects.toThrow(ImageFormatError);
  });
});

describe('parseLayoutReference', () => {
  it.each([
    ['oci:/tmp/l', { transport: 'oci', path: '/tmp/l' }],
    ['oci:/tmp/l:v1', { transport: 'oci', path: '/tmp/l', tag: 'v1' }],
    ['oci:./dir:with/colon', { transport: 'oci', path: './dir:with/colon' }],
    ['oci-archive:img.tar:latest', { transport: 'oci-archive', path: 'img.tar', tag: 'latest' }],
    // docker-archive: the docker reference (with a ':' of its own) follows the first ':'.
    ['docker-archive:saved.tar', { transport: 'docker-archive', path: 'saved.tar' }],
    ['docker-archive:/srv/saved.tar:example.com/app:1.0', { transport: 'docker-archive', path: '/srv/saved.tar', tag: 'example.com/app:1.0' }],
    ['docker-archive:saved.tar:@1', { transport: 'docker-archive', path: 'saved.tar', tag: '@1' }],
  ])('%s', (input, expected) => expect(parseLayoutReference(input)).toEqual(expected));

  it('refuses other transports', () => {
    expect(() => parseLayoutReference('docker://x')).toThrow(UsageError);
  });
});
