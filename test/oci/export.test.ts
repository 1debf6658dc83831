// appc image manifest -> OCI image config (the reverse of convert.ts), the export tag, and the
// layer packing of a tree: sorted, deterministic, modes/mtimes/links/xattrs kept, whiteout names left out.
import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import zlib from 'node:zlib';

import tar from 'tar-stream';
import { afterAll, describe, expect, it } from 'vitest';

import type { ImageManifest } from '../../src/appc/types.js';
import { validateImageManifest } from '../../src/appc/validate.js';
import { UsageError } from '../../src/errors.js';
import { extractTar } from '../../src/image/extract.js';
import { ANNOTATIONS, convertConfig } from '../../src/oci/convert.js';
import { exportTag, ociConfigFromManifest, OCI_TITLE, OCI_VERSION, writeTreeLayer } from '../../src/oci/export.js';
import { ociArchitecture } from '../../src/oci/platform.js';
import { libcSyscalls } from '../../src/sys/index.js';
import { scratchDirs } from '../support/scratch.js';

const DIFF = `sha256:${'d'.repeat(64)}`;
const privileged = process.geteuid?.() === 0;

function aci(extra: Partial<ImageManifest> = {}): ImageManifest {
  return {
    acKind: 'ImageManifest',
    acVersion: '0.8.11',
    name: 'example.com/app',
    labels: [
      { name: 'version', value: '1.0' },
      { name: 'os', value: 'linux' },
      { name: 'arch', value: 'aarch64' },
      { name: 'channel', value: 'beta' },
    ],
    app: {
      exec: ['/bin/app', '--serve'],
      user: '1000',
      group: '100',
      environment: [
        { name: 'PATH', value: '/bin' },
        { name: 'X', value: 'a=b' },
      ],
      workingDirectory: '/srv',
      ports: [
        { name: 'http', protocol: 'tcp', port: 80 },
        { name: 'dns', protocol: 'udp', port: 53, count: 2 },
      ],
      mountPoints: [{ name: 'data', path: '/var/data' }],
      isolators: [{ name: 'resource/memory', value: { limit: '1G' } }],
    },
    annotations: [
      { name: 'created', value: '2024-05-01T10:00:00Z' },
      { name: 'authors', value: 'Jane' },
      { name: 'homepage', value: 'https://example.com' },
    ],
    ...extra,
  };
}

describe('ociConfigFromManifest', () => {
  it('maps an appc app to the OCI config fields', () => {
    const { config, warnings } = ociConfigFromManifest(aci(), [DIFF]);
    expect(config).toEqual({
      created: '2024-05-01T10:00:00Z',
      author: 'Jane',
      architecture: 'arm64',
      os: 'linux',
      config: {
        User: '1000:100',
        Entrypoint: ['/bin/app', '--serve'],
        Env: ['PATH=/bin', 'X=a=b'],
        WorkingDir: '/srv',
        ExposedPorts: { '80/tcp': {}, '53/udp': {}, '54/udp': {} },
        Volumes: { '/var/data': {} },
        Labels: { [OCI_VERSION]: '1.0', channel: 'beta', homepage: 'https://example.com', [OCI_TITLE]: 'example.com/app' },
      },
      rootfs: { type: 'layers', diff_ids: [DIFF] },
      history: [{ created: '2024-05-01T10:00:00Z', created_by: 'tspod image export example.com/app', comment: 'the rendered appc image, dependencies applied' }],
    });
    expect(warnings).toEqual(['isolators (resource/memory) have no OCI config field; left out']);
  });

  it('maps arm labels to arm variants, root to no User, and a missing arch to this machine with a warning', () => {
    const arm = ociConfigFromManifest(aci({ labels: [{ name: 'arch', value: 'armv6l' }] }), []).config;
    expect([arm.architecture, arm.variant]).toEqual(['arm', 'v6']);
    const none = ociConfigFromManifest(aci({ labels: [], app: { user: '0', group: '0' } }), []);
    expect(none.config.architecture).toBe(ociArchitecture());
    expect(none.config.variant).toBeUndefined();
    expect(none.config.config?.User).toBeUndefined();
    expect(none.config.config?.Entrypoint).toBeUndefined();
    expect(none.warnings).toEqual([`image has no arch label; exported as ${ociArchitecture()} (this machine's)`]);
  });

  it('round-trips an imported OCI config: Entrypoint and Cmd split again, origin annotations dropped', () => {
    const original = {
      architecture: 'amd64',
      os: 'linux',
      created: '2024-05-01T10:00:00Z',
      config: {
        User: '101:101',
        Entrypoint: ['/docker-entrypoint.sh'],
        Cmd: ['nginx', '-g', 'daemon off;'],
        Env: ['PATH=/usr/bin', 'A=1'],
        ExposedPorts: { '80/tcp': {} },
        Volumes: { '/cache': {} },
        WorkingDir: '/srv',
        Labels: { maintainer: 'someone' },
        StopSignal: 'SIGQUIT',
      },
    };
    const imported = convertConfig({ name: 'docker.io/library/nginx', tag: '1.27', config: original, manifestDigest: `sha256:${'a'.repeat(64)}` }).manifest;
    validateImageManifest(imported);
    const { config, warnings } = ociConfigFromManifest(imported, [DIFF]);
    expect(warnings).toEqual([]);
    expect(config.architecture).toBe('amd64');
    expect(config.created).toBe(original.created);
    const { Labels, ...rest } = config.config!;
    const { Labels: originalLabels, ...originalRest } = original.config;
    expect(rest).toEqual(originalRest);
    expect(Labels).toEqual({ ...originalLabels, [OCI_VERSION]: '1.27', [OCI_TITLE]: 'docker.io/library/nginx' });
    for (const name of Object.values(ANNOTATIONS)) expect(Object.keys(Labels!)).not.toContain(name);
  });

  it('keeps a Cmd-only image as Cmd, and a relative exec made absolute on import', () => {
    const cmdOnly = convertConfig({ name: 'x/y', config: { config: { Cmd: ['sh'] } }, manifestDigest: `sha256:${'a'.repeat(64)}` }).manifest;
    expect(ociConfigFromManifest(cmdOnly, []).config.config).toMatchObject({ Cmd: ['sh'] });
    expect(ociConfigFromManifest(cmdOnly, []).config.config?.Entrypoint).toBeUndefined();
    const relative = convertConfig({
      name: 'x/y',
      config: { config: { Entrypoint: ['./run'], Cmd: ['-v'], WorkingDir: '/app' } },
      manifestDigest: `sha256:${'a'.repeat(64)}`,
    }).manifest;
    expect(ociConfigFromManifest(relative, []).config.config).toMatchObject({ Entrypoint: ['/app/run'], Cmd: ['-v'] });
  });
});

describe('exportTag', () => {
  it('takes --tag, else the version label, else latest, and refuses what a layout cannot tag', () => {
    expect(exportTag(aci(), 'stable')).toBe('stable');
    expect(exportTag(aci(), undefined)).toBe('1.0');
    expect(exportTag(aci({ labels: [] }), undefined)).toBe('latest');
    expect(() => exportTag(aci(), 'no spaces')).toThrow(UsageError);
    expect(() => exportTag(aci({ labels: [{ name: 'version', value: '-x' }] }), undefined)).toThrow(/not a valid OCI layout tag/);
  });
});

describe('writeTreeLayer', () => {
  const scratch = scratchDirs('export');
  afterAll(() => scratch.cleanup());

  function makeTree(): string {
    const root = scratch.freshDir();
    fs.mkdirSync(path.join(root, 'b/dir'), { recursive: true });
    fs.writeFileSync(path.join(root, 'b/dir/file'), 'content\n');
    fs.writeFileSync(path.join(root, 'a'), 'first\n');
    fs.chmodSync(path.join(root, 'a'), 0o4755);
    fs.linkSync(path.join(root, 'a'), path.join(root, 'c-hard'));
    fs.symlinkSync('b/dir/file', path.join(root, 'link'));
    fs.writeFileSync(path.join(root, 'b/.wh.gone'), '');
    fs.utimesSync(path.join(root, 'b/dir/file'), 1_000_000, 1_234_567);
    return root;
  }

  async function entries(file: string): Promise<{ name: string; type: string; mode: number; linkname: string | null; mtime: number; body: string }[]> {
    const out: { name: string; type: string; mode: number; linkname: string | null; mtime: number; body: string }[] = [];
    const extract = tar.extract();
    extract.on('entry', (header, stream, next) => {
      const chunks: Buffer[] = [];
      stream.on('data', (c: unknown) => chunks.push(c as Buffer));
      stream.on('end', () => {
        out.push({ name: header.name, type: header.type!, mode: header.mode!, linkname: header.linkname ?? null, mtime: header.mtime!.getTime() / 1000, body: Buffer.concat(chunks).toString() });
        next();
      });
    });
    extract.end(zlib.gunzipSync(fs.readFileSync(file)));
    await new Promise<void>((resolve) => extract.on('finish', () => resolve()));
    return out;
  }

  it('writes sorted entries with modes, hardlinks, symlinks and mtimes, and skips whiteout names', async () => {
    const warnings: string[] = [];
    const out = path.join(scratch.freshDir(), 'layer.tar.gz');
    const layer = await writeTreeLayer(makeTree(), out, { keepOwners: false, onWarning: (m) => warnings.push(m) });
    const list = await entries(out);
    expect(list.map((e) => [e.name, e.type])).toEqual([
      ['a', 'file'],
      ['b/', 'directory'],
      ['b/dir/', 'directory'],
      ['b/dir/file', 'file'],
      ['c-hard', 'link'],
      ['link', 'symlink'],
    ]);
    expect(list[0]!.mode).toBe(0o4755);
    expect(list[3]).toMatchObject({ body: 'content\n', mtime: 1_234_567 });
    expect(list[4]!.linkname).toBe('a');
    expect(list[5]!.linkname).toBe('b/dir/file');
    expect(warnings).toEqual(['b/.wh.gone: an OCI whiteout name (.wh.) in the tree; left out of the layer']);
    expect(layer.descriptor.size).toBe(fs.statSync(out).size);
    expect(layer.descriptor.digest).toMatch(/^sha256:[a-f0-9]{64}$/);
    expect(layer.diffId).not.toBe(layer.descriptor.digest);
  });

  it.skipIf(!privileged)('keeps xattrs byte for byte, binary values and long names included (needs root: trusted.*)', async () => {
    const tree = makeTree();
    const long = `b/${'n'.repeat(120)}`;
    fs.writeFileSync(path.join(tree, long), 'long\n');
    const binary = Buffer.from([0x01, 0x00, 0x00, 0x02, 0x00, 0x20, 0x00, 0x00, 0xff, 0xfe, 0x0a, 0x3d]);
    libcSyscalls.lsetxattr(path.join(tree, 'a'), 'trusted.tspod.cap', binary);
    libcSyscalls.lsetxattr(path.join(tree, long), 'user.tspod.long', Buffer.from('v'.repeat(300)));
    libcSyscalls.lsetxattr(path.join(tree, 'b/dir'), 'user.tspod.dir', Buffer.from('d'));
    const out = path.join(scratch.freshDir(), 'layer.tar.gz');
    await writeTreeLayer(tree, out, { keepOwners: true, sys: libcSyscalls, onWarning: () => {} });
    const back = scratch.freshDir();
    await extractTar(Readable.from([zlib.gunzipSync(fs.readFileSync(out))]), back, { sys: libcSyscalls });
    expect(libcSyscalls.lgetxattr(path.join(back, 'a'), 'trusted.tspod.cap')).toEqual(binary);
    expect(libcSyscalls.lgetxattr(path.join(back, 'c-hard'), 'trusted.tspod.cap')).toEqual(binary);
    expect(libcSyscalls.lgetxattr(path.join(back, long), 'user.tspod.long')?.toString()).toBe('v'.repeat(300));
    expect(fs.readFileSync(path.join(back, long), 'utf8')).toBe('long\n');
    expect(libcSyscalls.lgetxattr(path.join(back, 'b/dir'), 'user.tspod.dir')?.toString()).toBe('d');
    expect(libcSyscalls.llistxattr(path.join(back, 'b/dir/file'))).toEqual([]);
    // Without the syscalls (the oci-archive of a layout), nothing is read: no xattrs.
    const plain = path.join(scratch.freshDir(), 'plain.tar.gz');
    await writeTreeLayer(tree, plain, { keepOwners: true, onWarning: () => {} });
    expect(zlib.gunzipSync(fs.readFileSync(plain)).includes('SCHILY.xattr')).toBe(false);
  });

  it('gives the same digest for the same tree, another for a changed one', async () => {
    const tree = makeTree();
    const write = async () => writeTreeLayer(tree, path.join(scratch.freshDir(), 'l.tgz'), { keepOwners: false, onWarning: () => {} });
    const first = await write();
    const second = await write();
    expect(second).toEqual(first);
    fs.writeFileSync(path.join(tree, 'a'), 'changed\n');
    expect((await write()).descriptor.digest).not.toBe(first.descriptor.digest);
  });
});
