// `tspod image export --format oci|oci-archive` end to end, through the real CLI: an image imported
// from ACI files (with a dependency, owners, a setuid file, a hardlink and a symlink) and an image
// fetched from an OCI layout are exported; skopeo reads the layout and its config, umoci unpacks it
// into the same tree as `tspod image render` gives (names, types, modes, owners, contents, link
// targets, file mtimes), and `tspod fetch oci:DIR:TAG` of the export gives that tree back under
// the image's own name.
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { ImageManifest } from '../../src/appc/types.js';
import { TspodEnv } from '../support/cli.js';
import { buildLayout, sha256 } from '../support/oci-layout.js';
import { tarOf, type TarEntry } from '../support/tar.js';
import { hasCommand } from '../support/tools.js';

const hasTools = hasCommand('skopeo', ['--version']) && hasCommand('umoci', ['--version']);
const SKIP_REASON = 'needs skopeo and umoci (apt-get install -y skopeo umoci)';
const isRoot = process.geteuid?.() === 0;

interface Node {
  path: string;
  type: string;
  mode: number;
  uid?: number;
  gid?: number;
  /** sha256 of a file, target of a symlink. */
  content?: string;
  mtime?: number;
}

/** Every entry under `root`, sorted, with what an export must keep (owners only as root). */
function snapshot(root: string, rel = ''): Node[] {
  const out: Node[] = [];
  const inodes = new Map<string, string>();
  const walk = (dir: string): void => {
    for (const name of fs.readdirSync(path.join(root, dir)).sort()) {
      const p = dir === '' ? name : `${dir}/${name}`;
      const st = fs.lstatSync(path.join(root, p));
      const type = st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'symlink' : st.isFile() ? 'file' : 'other';
      const node: Node = { path: p, type, mode: st.mode & 0o7777 };
      if (isRoot) Object.assign(node, { uid: st.uid, gid: st.gid });
      if (type === 'file') {
        node.content = sha256(fs.readFileSync(path.join(root, p)));
        node.mtime = Math.floor(st.mtimeMs / 1000);
        // Hardlinks: the same inode as an earlier path.
        const key = `${st.ino}`;
        if (st.nlink > 1 && inodes.has(key)) node.content = `link:${inodes.get(key)}`;
        else if (st.nlink > 1) inodes.set(key, p);
      }
      if (type === 'symlink') node.content = fs.readlinkSync(path.join(root, p));
      if (type === 'symlink') node.mode = 0; // symlink modes carry nothing
      out.push(node);
      if (type === 'dir') walk(p);
    }
  };
  walk(rel);
  return out;
}

function aciOf(manifest: ImageManifest, entries: TarEntry[]): Promise<Buffer> {
  return tarOf([
    { name: 'manifest', content: JSON.stringify(manifest) },
    { name: 'rootfs/', type: 'directory', mode: 0o755 },
    ...entries.map((e) => ({ ...e, name: `rootfs/${e.name}`, ...(e.type === 'link' ? { linkname: `rootfs/${e.linkname}` } : {}) })),
  ]);
}

function skopeoJson<T>(...args: string[]): T {
  return JSON.parse(execFileSync('skopeo', ['inspect', ...args], { encoding: 'utf8' })) as T;
}

interface SkopeoConfig {
  architecture: string;
  os: string;
  config: { Entrypoint?: string[]; Cmd?: string[]; Env?: string[]; User?: string; WorkingDir?: string; ExposedPorts?: object; Volumes?: object; Labels?: Record<string, string> };
  rootfs: { diff_ids: string[] };
}

describe.skipIf(!hasTools)(`tspod image export --format oci (${SKIP_REASON})`, () => {
  let work: string;
  let env: TspodEnv;
  let appId: string;

  beforeAll(async () => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'tspod-export-it-'));
    env = new TspodEnv();
    const base = await aciOf(
      { acKind: 'ImageManifest', acVersion: '0.8.11', name: 'example.com/base', labels: [{ name: 'version', value: '1' }, { name: 'os', value: 'linux' }, { name: 'arch', value: 'amd64' }] },
      [
        { name: 'etc/', type: 'directory', mode: 0o755 },
        { name: 'etc/base.conf', content: 'from the base\n' },
        { name: 'etc/replaced', content: 'base version\n' },
      ],
    );
    const app = await aciOf(
      {
        acKind: 'ImageManifest',
        acVersion: '0.8.11',
        name: 'example.com/exp',
        labels: [{ name: 'version', value: '1.0' }, { name: 'os', value: 'linux' }, { name: 'arch', value: 'amd64' }],
        app: {
          exec: ['/bin/app', '--serve'],
          user: '1000',
          group: '1000',
          environment: [{ name: 'MODE', value: 'test' }],
          workingDirectory: '/home/user',
          ports: [{ name: 'http', protocol: 'tcp', port: 8080 }],
          mountPoints: [{ name: 'data', path: '/data' }],
        },
        dependencies: [{ imageName: 'example.com/base', labels: [{ name: 'version', value: '1' }] }],
        annotations: [{ name: 'homepage', value: 'https://example.com/exp' }],
      },
      [
        { name: 'bin/', type: 'directory', mode: 0o755 },
        { name: 'bin/app', content: '#!/bin/sh\necho app\n', mode: 0o4755, mtime: new Date(1_600_000_000_000) },
        { name: 'bin/hard', type: 'link', linkname: 'bin/app' },
        { name: 'bin/sh', type: 'symlink', linkname: '/bin/app' },
        { name: 'etc/', type: 'directory', mode: 0o755 },
        { name: 'etc/replaced', content: 'app version\n' },
        { name: 'home/', type: 'directory', mode: 0o755 },
        { name: 'home/user/', type: 'directory', mode: 0o750, uid: 1000, gid: 1000 },
        { name: 'home/user/notes', content: 'mine\n', mode: 0o600, uid: 1000, gid: 1000 },
      ],
    );
    fs.writeFileSync(path.join(work, 'base.aci'), base);
    fs.writeFileSync(path.join(work, 'app.aci'), app);
    env.ok(['fetch', '--insecure-options=image', path.join(work, 'base.aci')]);
    appId = env.ok(['fetch', '--insecure-options=image', path.join(work, 'app.aci')]).trim();
  });

  afterAll(() => {
    env?.cleanup();
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  const rendered = (id: string): string => {
    const dest = path.join(work, `render-${crypto.randomBytes(4).toString('hex')}`);
    env.ok(['image', 'render', '--rootfs-only', id, dest]);
    return dest;
  };

  const umociUnpack = (layout: string, tag: string): string => {
    const bundle = path.join(work, `bundle-${crypto.randomBytes(4).toString('hex')}`);
    execFileSync('umoci', ['unpack', ...(isRoot ? [] : ['--rootless']), '--image', `${layout}:${tag}`, bundle], { stdio: 'pipe' });
    return path.join(bundle, 'rootfs');
  };

  it('exports an ACI-imported image with its dependency: skopeo reads it, umoci unpacks the rendered tree', () => {
    const layout = path.join(work, 'exp-layout');
    const out = env.ok(['image', 'export', '--format', 'oci', 'example.com/exp:1.0', layout]);
    expect(out.trim()).toBe(`oci:${layout}:1.0`);

    const inspected = skopeoJson<{ Digest: string; Architecture: string; Os: string; Labels: Record<string, string>; Layers: string[] }>(`oci:${layout}:1.0`);
    expect(inspected.Architecture).toBe('amd64');
    expect(inspected.Os).toBe('linux');
    expect(inspected.Layers).toHaveLength(1);
    expect(inspected.Labels).toEqual({
      'org.opencontainers.image.version': '1.0',
      'org.opencontainers.image.title': 'example.com/exp',
      homepage: 'https://example.com/exp',
    });
    const config = skopeoJson<SkopeoConfig>('--config', `oci:${layout}:1.0`);
    expect(config.config).toMatchObject({
      Entrypoint: ['/bin/app', '--serve'],
      Env: ['MODE=test'],
      User: '1000:1000',
      WorkingDir: '/home/user',
      ExposedPorts: { '8080/tcp': {} },
      Volumes: { '/data': {} },
    });
    const index = JSON.parse(fs.readFileSync(path.join(layout, 'index.json'), 'utf8')) as { manifests: { digest: string; annotations: Record<string, string> }[] };
    expect(index.manifests).toHaveLength(1);
    expect(index.manifests[0]!.digest).toBe(inspected.Digest);
    expect(index.manifests[0]!.annotations).toEqual({ 'org.opencontainers.image.ref.name': '1.0' });

    const expected = snapshot(rendered(appId));
    // The dependency's files are there, the app's own file won over the base's.
    expect(expected.map((n) => n.path)).toEqual(expect.arrayContaining(['etc/base.conf', 'etc/replaced', 'bin/hard', 'home/user/notes']));
    expect(snapshot(umociUnpack(layout, '1.0'))).toEqual(expected);
  });

  it('gives the same layer for the same image, and refuses a non-empty directory unless --overwrite', () => {
    const a = path.join(work, 'same-a');
    const b = path.join(work, 'same-b');
    env.ok(['image', 'export', '--format', 'oci', '--tag', 'x', appId, a]);
    fs.mkdirSync(b); // an empty directory may be used
    env.ok(['image', 'export', '--format', 'oci', '--tag', 'x', appId, b]);
    expect(skopeoJson<{ Digest: string }>(`oci:${a}:x`).Digest).toBe(skopeoJson<{ Digest: string }>(`oci:${b}:x`).Digest);

    const refused = env.run(['image', 'export', '--format', 'oci', '--tag', 'y', appId, a]);
    expect(refused.status).toBe(254);
    expect(refused.stderr).toMatch(/already exists and is not an empty directory \(pass --overwrite to replace it\)/);
    expect(fs.existsSync(path.join(a, 'index.json'))).toBe(true);
    env.ok(['image', 'export', '--format', 'oci', '--tag', 'y', '--overwrite', appId, a]);
    const tags = (JSON.parse(fs.readFileSync(path.join(a, 'index.json'), 'utf8')) as { manifests: { annotations: Record<string, string> }[] }).manifests.map(
      (m) => m.annotations['org.opencontainers.image.ref.name'],
    );
    expect(tags).toEqual(['y']);
    // Nothing of the build is left beside the output.
    expect(fs.readdirSync(work).filter((n) => n.startsWith('.'))).toEqual([]);
  });

  it('fetches its own export back: oci:DIR:TAG gives the same tree under the same name', () => {
    const layout = path.join(work, 'roundtrip');
    env.ok(['image', 'export', '--format', 'oci', appId, layout]);
    const other = new TspodEnv();
    try {
      const result = other.run(['fetch', '--insecure-options=image', `oci:${layout}:1.0`]);
      expect(result.status, result.stderr).toBe(0);
      const id = result.stdout.trim();
      const listed = other.json<{ name: string; labels: { name: string; value: string }[]; ociDigest: string | null }[]>(['image', 'list']);
      expect(listed).toHaveLength(1);
      expect(listed[0]!.name).toBe('example.com/exp');
      expect(listed[0]!.labels).toEqual(expect.arrayContaining([{ name: 'version', value: '1.0' }, { name: 'arch', value: 'amd64' }]));
      expect(listed[0]!.ociDigest).toBe(skopeoJson<{ Digest: string }>(`oci:${layout}:1.0`).Digest);
      const manifest = JSON.parse(other.ok(['image', 'cat-manifest', id])) as ImageManifest;
      expect(manifest.app?.exec).toEqual(['/bin/app', '--serve']);
      expect(manifest.app?.user).toBe('1000');
      const dest = path.join(other.base, 'render');
      other.ok(['image', 'render', '--rootfs-only', id, dest]);
      expect(snapshot(dest)).toEqual(snapshot(rendered(appId)));
    } finally {
      other.cleanup();
    }
  });

  it('writes --format oci-archive as a tar that skopeo and tspod read', () => {
    const archive = path.join(work, 'exp.tar');
    env.ok(['image', 'export', '--format', 'oci-archive', '--tag', 'stable', appId, archive]);
    const inspected = skopeoJson<{ Labels: Record<string, string> }>(`oci-archive:${archive}:stable`);
    expect(inspected.Labels['org.opencontainers.image.title']).toBe('example.com/exp');
    const again = env.run(['image', 'export', '--format', 'oci-archive', appId, archive]);
    expect(again.status).toBe(254);
    expect(again.stderr).toMatch(/already exists \(pass --overwrite/);
    const other = new TspodEnv();
    try {
      const id = other.ok(['fetch', '--insecure-options=image', `oci-archive:${archive}:stable`]).trim();
      const dest = path.join(other.base, 'render');
      other.ok(['image', 'render', '--rootfs-only', id, dest]);
      expect(snapshot(dest)).toEqual(snapshot(rendered(appId)));
    } finally {
      other.cleanup();
    }
  });

  it('refuses --tag with --format aci and a version that is no layout tag', () => {
    const result = env.run(['image', 'export', '--tag', 'x', appId, path.join(work, 'x.aci')]);
    expect(result.status).toBe(254);
    expect(result.stderr).toMatch(/--tag is for --format oci and oci-archive/);
    const bad = env.run(['image', 'export', '--format', 'oci', '--tag', '-bad', appId, path.join(work, 'bad')]);
    expect(bad.status).toBe(254);
    expect(bad.stderr).toMatch(/"-bad" is not a valid OCI layout tag/);
    expect(fs.existsSync(path.join(work, 'bad'))).toBe(false);
  });

  it('exports an image fetched from an OCI layout: config fields and tree as fetched, digest listed', async () => {
    const source = path.join(work, 'src-layout');
    const original = {
      config: { Entrypoint: ['/usr/bin/tool'], Cmd: ['--flag'], Env: ['PATH=/usr/bin'], WorkingDir: '/srv', User: '33:33', Labels: { maintainer: 'me' } },
    };
    const { manifest } = await buildLayout(source, '2.0', {
      layers: [
        [
          { name: 'usr/', type: 'directory', mode: 0o755 },
          { name: 'usr/bin/', type: 'directory', mode: 0o755 },
          { name: 'usr/bin/tool', content: '#!/bin/sh\n', mode: 0o755 },
          { name: 'srv/', type: 'directory', mode: 0o755 },
          { name: 'srv/data', content: 'data\n', mode: 0o640, uid: 33, gid: 33 },
        ],
      ],
      config: original,
      tarDefaults: {}, // tar.ts's fixed mtime, as this layer always had
    });
    const id = env.ok(['fetch', '--insecure-options=image', `oci:${source}:2.0`]).trim();
    const entry = env.json<{ id: string; ociDigest: string | null }[]>(['image', 'list']).find((e) => e.id === id);
    expect(entry?.ociDigest).toBe(manifest.digest);
    expect(env.json<{ id: string; ociDigest: string | null }[]>(['image', 'list']).find((e) => e.id === appId)?.ociDigest).toBeNull();
    const table = env.ok(['image', 'list', '--full']);
    expect(table.split('\n')[0]).toMatch(/LAST USED\s+DIGEST$/);
    expect(table).toContain(manifest.digest);

    const layout = path.join(work, 'from-oci');
    env.ok(['image', 'export', '--format', 'oci', id, layout]);
    const exported = skopeoJson<SkopeoConfig>('--config', `oci:${layout}:2.0`);
    expect(exported.config).toMatchObject({ Entrypoint: original.config.Entrypoint, Cmd: original.config.Cmd, Env: original.config.Env, WorkingDir: '/srv', User: '33:33' });
    expect(exported.config.Labels).toMatchObject({ maintainer: 'me', 'org.opencontainers.image.version': '2.0' });
    expect(snapshot(umociUnpack(layout, '2.0'))).toEqual(snapshot(rendered(id)));
  });
});
