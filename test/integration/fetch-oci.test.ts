// `tspod fetch`/`run` of OCI images end to end (issue 6), through the real CLI (bin/run.js): images
// built here as OCI layouts (two gzip layers, the upper one with a file whiteout and an opaque
// directory), pushed with skopeo to Debian's docker-registry on 127.0.0.1 (plain http, so
// --insecure-options=http), read from an `oci:` layout made by umoci and an `oci-archive:` made by
// skopeo. The refusals leave the store empty; a corrupted blob in the registry's storage is caught
// by its digest. As root with actool: a pod runs busybox-static from a docker image.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { TspodEnv, TspodEnvs } from '../support/cli.js';
import { buildLayout, type TarEntry } from '../support/oci-layout.js';
import { hasRegistryTools, REGISTRY_SKIP_REASON, skopeoPush, startRegistry, type TestRegistry } from '../support/registry.js';
import { hasCommand } from '../support/tools.js';

const hasUmoci = hasCommand('umoci', ['--version']);
const isRoot = process.geteuid?.() === 0;
const canRunPods = isRoot && hasCommand('actool', ['version']) && fs.existsSync('/bin/busybox');

const WHITEOUT_LAYERS: TarEntry[][] = [
  [
    { name: 'etc/', type: 'directory' },
    { name: 'etc/keep', content: 'kept\n' },
    { name: 'etc/gone', content: 'removed by a whiteout\n' },
    { name: 'opaque/', type: 'directory' },
    { name: 'opaque/old', content: 'hidden by an opaque whiteout\n' },
    { name: 'bin/', type: 'directory' },
    { name: 'bin/tool', content: '#!/bin/sh\n', mode: 0o755 },
    { name: 'bin/hard', type: 'link', linkname: 'bin/tool' },
  ],
  [
    { name: 'etc/.wh.gone' },
    { name: 'opaque/.wh..wh..opq' },
    { name: 'opaque/new', content: 'from the upper layer\n' },
    { name: 'bin/link', type: 'symlink', linkname: 'tool' },
  ],
];
const WHITEOUT_CONFIG = { config: { Entrypoint: ['/bin/tool'], Cmd: ['--flag'], Env: ['PATH=/bin', 'GREETING=hi'], WorkingDir: '/etc' } };
/** Every path of the rendered tree once the whiteouts are applied. */
const EXPECTED_TREE = ['bin', 'bin/hard', 'bin/link', 'bin/tool', 'etc', 'etc/keep', 'opaque', 'opaque/new'];

function listTree(root: string, rel = ''): string[] {
  const out: string[] = [];
  for (const name of fs.readdirSync(path.join(root, rel)).sort()) {
    const child = rel === '' ? name : `${rel}/${name}`;
    out.push(child);
    if (fs.lstatSync(path.join(root, child)).isDirectory()) out.push(...listTree(root, child));
  }
  return out;
}

function skopeo(...args: string[]): void {
  execFileSync('skopeo', ['copy', '--quiet', ...args], { stdio: 'pipe' });
}

describe.skipIf(!hasRegistryTools)(`tspod fetch of OCI images (${REGISTRY_SKIP_REASON})`, () => {
  let registry: TestRegistry;
  let work: string;
  let whiteoutLayout: string;
  const envs = new TspodEnvs();
  const newEnv = (): TspodEnv => envs.make();

  beforeAll(async () => {
    registry = await startRegistry();
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'tspod-oci-it-'));
    whiteoutLayout = path.join(work, 'whiteouts');
    await buildLayout(whiteoutLayout, 't', { layers: WHITEOUT_LAYERS, config: WHITEOUT_CONFIG });
    skopeoPush(whiteoutLayout, `${registry.host}/tspod/whiteouts:1.0`);
  }, 60_000);

  afterAll(async () => {
    envs.cleanup();
    await registry?.stop();
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  it('fetches docker://127.0.0.1:PORT/repo:tag over http with --insecure-options=image,http: listed, whiteouts applied, config converted', () => {
    const env = newEnv();
    const ref = `docker://${registry.host}/tspod/whiteouts:1.0`;
    const result = env.run(['fetch', '--insecure-options=image,http', ref]);
    expect(result.status, result.stderr).toBe(0);
    const id = result.stdout.trim();
    expect(id).toMatch(/^sha512-[0-9a-f]{128}$/);
    expect(result.stderr).toMatch(/signature not checked \(--insecure-options=image\)/);

    const listed = env.json<{ id: string; name: string }[]>(['image', 'list']);
    expect(listed.map((i) => i.id)).toEqual([id]);
    expect(listed[0]!.name).toBe(`127.0.0.1-${registry.port}/tspod/whiteouts`);

    const dest = path.join(env.base, 'render');
    env.ok(['image', 'render', id, dest]);
    const rootfs = path.join(dest, 'rootfs');
    expect(listTree(rootfs)).toEqual(EXPECTED_TREE);
    expect(fs.readFileSync(path.join(rootfs, 'opaque/new'), 'utf8')).toBe('from the upper layer\n');
    expect(fs.readlinkSync(path.join(rootfs, 'bin/link'))).toBe('tool');
    expect(fs.statSync(path.join(rootfs, 'bin/tool')).mode & 0o777).toBe(0o755);
    // A hardlink in a layer stays one: the ACI carries it as a link to rootfs/bin/tool.
    expect(fs.statSync(path.join(rootfs, 'bin/hard')).ino).toBe(fs.statSync(path.join(rootfs, 'bin/tool')).ino);

    const manifest = JSON.parse(env.ok(['image', 'cat-manifest', id])) as {
      labels: { name: string; value: string }[];
      app: { exec: string[]; environment: { name: string; value: string }[]; workingDirectory: string };
      annotations: { name: string; value: string }[];
    };
    expect(manifest.app.exec).toEqual(['/bin/tool', '--flag']);
    expect(manifest.app.environment).toEqual([
      { name: 'PATH', value: '/bin' },
      { name: 'GREETING', value: 'hi' },
    ]);
    expect(manifest.app.workingDirectory).toBe('/etc');
    expect(manifest.labels).toContainEqual({ name: 'version', value: '1.0' });
    expect(manifest.annotations.find((a) => a.name === 'appc.io/oci/manifest-digest')?.value).toMatch(/^sha256:[0-9a-f]{64}$/);

    // The same image again: the same id, nothing new stored.
    const again = env.run(['fetch', '--json', '--insecure-options=image,http', ref]);
    expect(again.status, again.stderr).toBe(0);
    const last = JSON.parse(again.stdout.trim().split('\n').at(-1)!) as { record: { id: string; source: object }; stored: boolean };
    expect(last.record.id).toBe(id);
    expect(last.stored).toBe(false);
    expect(last.record.source).toMatchObject({ kind: 'docker', location: ref, signer: null });
    expect(env.json<unknown[]>(['image', 'list'])).toHaveLength(1);
  });

  it('applies a blob listed twice in the manifest at both places, in order (layers A, B, A)', async () => {
    const env = newEnv();
    const layout = path.join(work, 'aba');
    const a = [{ name: 'which', content: 'A\n' }];
    const b = [{ name: 'which', content: 'B\n' }, { name: 'only-b', content: 'b\n' }];
    await buildLayout(layout, 't', { layers: [a, b, a], config: { config: { Cmd: ['/which'] } } });
    skopeoPush(layout, `${registry.host}/tspod/aba:1`);
    const result = env.run(['fetch', '--insecure-options=image,http', `docker://${registry.host}/tspod/aba:1`]);
    expect(result.status, result.stderr).toBe(0);
    const dest = path.join(env.base, 'render');
    env.ok(['image', 'render', result.stdout.trim(), dest]);
    expect(fs.readFileSync(path.join(dest, 'rootfs/which'), 'utf8')).toBe('A\n');
    expect(fs.readFileSync(path.join(dest, 'rootfs/only-b'), 'utf8')).toBe('b\n');
  });

  it('refuses an unsigned docker:// image without --insecure-options=image (default policy), nothing stored, no layer left behind', () => {
    const env = newEnv();
    const result = env.run(['fetch', '--insecure-options=http', `docker://${registry.host}/tspod/whiteouts:1.0`]);
    expect(result.status).toBe(254);
    expect(result.stderr).toMatch(/refused by the built-in default policy \(no policy\.json\), scope default: requirement 1 \(signedBy\): a signature is required, but the image has none/);
    expect(result.stderr).toMatch(/tspod fetch --insecure-options=image docker:/);
    expect(result.stderr).toMatch(/lookaside in .*registries\.d/);
    expect(env.json<unknown[]>(['image', 'list'])).toEqual([]);
    const tmp = path.join(env.dir, 'cas', 'tmp');
    expect(fs.existsSync(tmp) ? fs.readdirSync(tmp) : []).toEqual([]);
  });

  it('refuses a plain-http registry without --insecure-options=http, nothing stored', () => {
    const env = newEnv();
    const result = env.run(['fetch', '--insecure-options=image', `docker://${registry.host}/tspod/whiteouts:1.0`]);
    expect(result.status).toBe(254);
    expect(result.stderr).toMatch(/get https:\/\/127\.0\.0\.1:\d+\/v2\/tspod\/whiteouts\/manifests\/1\.0/);
    expect(result.stderr).toMatch(/try: if 127\.0\.0\.1:\d+ serves plain http: tspod fetch --insecure-options=image,http/);
    expect(env.json<unknown[]>(['image', 'list'])).toEqual([]);
  });

  it('fetches oci-archive:FILE:tag written by skopeo, giving the same tree', () => {
    const env = newEnv();
    const archive = path.join(work, 'whiteouts.tar');
    skopeo(`oci:${whiteoutLayout}:t`, `oci-archive:${archive}:v2`);
    const result = env.run(['fetch', '--insecure-options=image', `oci-archive:${archive}:v2`]);
    expect(result.status, result.stderr).toBe(0);
    const id = result.stdout.trim();
    const dest = path.join(env.base, 'render');
    env.ok(['image', 'render', id, dest]);
    expect(listTree(path.join(dest, 'rootfs'))).toEqual(EXPECTED_TREE);
    const listed = env.json<{ name: string }[]>(['image', 'list']);
    expect(listed.map((i) => i.name)).toEqual(['whiteouts']);
    // Nothing of the unpacked archive is left in the store's tmp area.
    expect(fs.readdirSync(path.join(env.dir, 'cas', 'tmp')).filter((n) => n.startsWith('oci-'))).toEqual([]);
  });

  it('fetches docker-archive:FILE[:NAME:TAG] written by skopeo (docker save format): same tree, named after its RepoTag', () => {
    const env = newEnv();
    const archive = path.join(work, 'saved.tar');
    fs.rmSync(archive, { force: true });
    skopeo(`oci:${whiteoutLayout}:t`, `docker-archive:${archive}:example.test/tools/whiteouts:2.0`);
    // No signature can exist for it: the default policy refuses it, naming the way to accept it.
    const refused = env.run(['fetch', `docker-archive:${archive}`]);
    expect(refused.status).not.toBe(0);
    expect(refused.stderr).toMatch(/docker save archive carries no signature/);
    expect(refused.stderr).toContain('transports.docker-archive');
    expect(env.json<unknown[]>(['image', 'list'])).toEqual([]);

    for (const ref of [`docker-archive:${archive}`, `docker-archive:${archive}:example.test/tools/whiteouts:2.0`]) {
      const result = env.run(['fetch', '--insecure-options=image', ref]);
      expect(result.status, result.stderr).toBe(0);
    }
    const listed = env.json<{ id: string; name: string; version?: string }[]>(['image', 'list']);
    expect(listed).toHaveLength(1);
    expect(listed[0]!.name).toBe('example.test/tools/whiteouts');
    const dest = path.join(env.base, 'render');
    env.ok(['image', 'render', listed[0]!.id, dest]);
    expect(listTree(path.join(dest, 'rootfs'))).toEqual(EXPECTED_TREE);
    const manifest = JSON.parse(env.ok(['image', 'cat-manifest', listed[0]!.id])) as { labels: { name: string; value: string }[]; app: { exec: string[] } };
    expect(manifest.labels).toContainEqual({ name: 'version', value: '2.0' });
    expect(manifest.app.exec).toEqual(['/bin/tool', '--flag']);

    const wrongTag = env.run(['fetch', '--insecure-options=image', `docker-archive:${archive}:example.test/tools/whiteouts:9`]);
    expect(wrongTag.status).not.toBe(0);
    expect(wrongTag.stderr).toMatch(/no image tagged example.test\/tools\/whiteouts:9 \(tags: example.test\/tools\/whiteouts:2.0\)/);
  });

  it('refuses a docker-archive whose layer does not match the config\'s diff_id, nothing stored', () => {
    const env = newEnv();
    const archive = path.join(work, 'tampered.tar');
    fs.rmSync(archive, { force: true });
    skopeo(`oci:${whiteoutLayout}:t`, `docker-archive:${archive}`);
    // Unpack, change one byte of the first layer's file, pack again with GNU tar.
    const dir = fs.mkdtempSync(path.join(work, 'tamper-'));
    execFileSync('tar', ['-xf', archive, '-C', dir]);
    const [entry] = JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8')) as { Layers: string[] }[];
    const layerFile = path.join(dir, entry!.Layers[0]!);
    const bytes = fs.readFileSync(layerFile);
    const at = bytes.indexOf('kept\n');
    bytes[at] = 'K'.charCodeAt(0);
    fs.writeFileSync(layerFile, bytes);
    execFileSync('tar', ['-cf', archive, '-C', dir, '.']);
    const result = env.run(['fetch', '--insecure-options=image', `docker-archive:${archive}`]);
    expect(result.status).not.toBe(0);
    expect(result.stderr).toMatch(/layer 1 \(.*\) is sha256:[0-9a-f]{64}, the config's rootfs.diff_ids says sha256:/);
    expect(env.json<unknown[]>(['image', 'list'])).toEqual([]);
  });

  it('refuses a registry blob whose bytes do not match its digest, nothing stored', async () => {
    const env = newEnv();
    const layout = path.join(work, 'corrupt');
    await buildLayout(layout, 't', { layers: [[{ name: 'data', content: 'x'.repeat(4096) }]], config: { config: { Cmd: ['/data'] } } });
    skopeoPush(layout, `${registry.host}/tspod/corrupt:1`);
    const index = JSON.parse(fs.readFileSync(path.join(layout, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
    const manifest = JSON.parse(fs.readFileSync(path.join(layout, 'blobs/sha256', index.manifests[0]!.digest.slice(7)), 'utf8')) as { layers: { digest: string }[] };
    const blob = registry.blobPath(manifest.layers[0]!.digest);
    const bytes = fs.readFileSync(blob);
    bytes[bytes.length - 10]! ^= 0xff; // same size, other bytes
    fs.writeFileSync(blob, bytes);
    const result = env.run(['fetch', '--insecure-options=image,http', `docker://${registry.host}/tspod/corrupt:1`]);
    expect(result.status).toBe(254);
    expect(result.stderr).toMatch(/the bytes hash to sha256:/);
    expect(env.json<unknown[]>(['image', 'list'])).toEqual([]);
    expect(fs.readdirSync(path.join(env.dir, 'cas', 'tmp')).filter((n) => n.startsWith('oci-'))).toEqual([]);
  });

  it.skipIf(!hasUmoci || !isRoot)('fetches an oci:DIR:tag layout made by umoci (needs umoci, root for umoci unpack)', () => {
    const env = newEnv();
    const layout = path.join(work, 'umoci');
    const bundle = path.join(work, 'umoci-bundle');
    const umoci = (...args: string[]): void => {
      execFileSync('umoci', args, { stdio: 'pipe' });
    };
    umoci('init', '--layout', layout);
    umoci('new', '--image', `${layout}:base`);
    // unpack + repack (umoci 0.4.7's `insert` writes a layer tar without its end padding, which
    // GNU tar and tspod's extractor both refuse as truncated).
    umoci('unpack', '--image', `${layout}:base`, bundle);
    fs.mkdirSync(path.join(bundle, 'rootfs', 'srv'));
    fs.writeFileSync(path.join(bundle, 'rootfs', 'srv', 'index.html'), 'served by umoci\n');
    umoci('repack', '--image', `${layout}:base`, bundle);
    umoci('config', '--image', `${layout}:base`, '--config.entrypoint', '/bin/httpd', '--config.env', 'PORT=8080');
    const result = env.run(['fetch', '--insecure-options=image', `oci:${layout}:base`]);
    expect(result.status, result.stderr).toBe(0);
    const id = result.stdout.trim();
    const dest = path.join(env.base, 'render');
    env.ok(['image', 'render', id, dest]);
    expect(fs.readFileSync(path.join(dest, 'rootfs/srv/index.html'), 'utf8')).toBe('served by umoci\n');
    const manifest = JSON.parse(env.ok(['image', 'cat-manifest', id])) as { name: string; app: { exec: string[]; environment: { name: string; value: string }[] } };
    expect(manifest.name).toBe('umoci');
    expect(manifest.app.exec).toEqual(['/bin/httpd']);
    expect(manifest.app.environment).toContainEqual({ name: 'PORT', value: '8080' });
    // A tag that is not there: refused, nothing stored.
    const missing = env.run(['fetch', '--insecure-options=image', `oci:${layout}:nope`]);
    expect(missing.status).toBe(254);
    expect(missing.stderr).toMatch(/no image tagged "nope"/);
    expect(env.json<unknown[]>(['image', 'list'])).toHaveLength(1);
  });

  it.skipIf(!canRunPods)('tspod run docker://127.0.0.1:PORT/busybox:1 runs busybox-static from a docker image (needs root, actool, /bin/busybox)', async () => {
    const env = newEnv();
    const layout = path.join(work, 'busybox');
    await buildLayout(layout, 't', {
      layers: [
        [
          { name: 'bin/', type: 'directory' },
          { name: 'bin/busybox', content: fs.readFileSync('/bin/busybox'), mode: 0o755 },
          { name: 'bin/sh', type: 'symlink', linkname: 'busybox' },
          { name: 'bin/echo', type: 'symlink', linkname: 'busybox' },
        ],
      ],
      config: { config: { Entrypoint: ['/bin/echo'], Cmd: ['hello from a docker image'], Env: ['PATH=/bin'] } },
    });
    skopeoPush(layout, `${registry.host}/tspod/busybox:1`);
    const result = env.run(['run', '--insecure-options=image,http', `docker://${registry.host}/tspod/busybox:1`]);
    expect(result.status, result.stderr).toBe(0);
    expect(result.stdout).toContain('hello from a docker image');
    // run's default pull policy (new): the stored image is used, the registry is not asked again.
    await registry.stop();
    const again = env.run(['run', '--insecure-options=image,http', `docker://${registry.host}/tspod/busybox:1`]);
    registry = await startRegistry();
    expect(again.status, again.stderr).toBe(0);
    expect(again.stdout).toContain('hello from a docker image');
  }, 120_000);
});
