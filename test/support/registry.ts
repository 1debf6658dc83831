// Test helper: Debian's `docker-registry` (distribution 2.8) on 127.0.0.1 and a free port, with a
// config written here (storage in a temp dir, no auth: the packaged config demands htpasswd, see
// shared/docs/peers.md §1), and tiny OCI images (test/support/oci-layout.ts: one gzip layer each, or
// several for the re-authentication tests, optionally an index of several platforms) pushed with
// `skopeo copy`.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

import { buildLayout, fileEntries, sha256, writeImage, writeLayoutIndex, type Descriptor } from './oci-layout.js';
import { hasCommand } from './tools.js';

export const hasRegistryTools = hasCommand('docker-registry', ['--version']) && hasCommand('skopeo', ['--version']);
export const REGISTRY_SKIP_REASON = 'needs docker-registry and skopeo (apt-get install -y docker-registry skopeo)';

export interface TestRegistry {
  /** `127.0.0.1:PORT` */
  host: string;
  port: number;
  /** The registry's storage root (to tamper with blobs). */
  storageDir: string;
  /** The file a blob is stored in. */
  blobPath(digest: string): string;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

export interface StartRegistryOptions {
  /** Serve https with this certificate (PEM). */
  tls?: { cert: string; key: string };
  /** An htpasswd file's content (bcrypt, `htpasswd -nbB`): basic auth for every request. */
  htpasswd?: string;
}

function connects(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

export async function startRegistry(opts: StartRegistryOptions = {}): Promise<TestRegistry> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tspod-registry-'));
  const storageDir = path.join(dir, 'storage');
  fs.mkdirSync(storageDir);
  const port = await freePort();
  const config = path.join(dir, 'config.yml');
  const write = (name: string, content: string): string => {
    fs.writeFileSync(path.join(dir, name), content);
    return path.join(dir, name);
  };
  fs.writeFileSync(
    config,
    [
      'version: 0.1',
      'log:',
      '  level: error',
      'storage:',
      '  filesystem:',
      `    rootdirectory: ${storageDir}`,
      'http:',
      `  addr: 127.0.0.1:${port}`,
      ...(opts.tls ? ['  tls:', `    certificate: ${write('cert.pem', opts.tls.cert)}`, `    key: ${write('key.pem', opts.tls.key)}`] : []),
      ...(opts.htpasswd ? ['auth:', '  htpasswd:', '    realm: tspod-test', `    path: ${write('htpasswd', opts.htpasswd)}`] : []),
      '',
    ].join('\n'),
  );
  const child: ChildProcess = spawn('docker-registry', ['serve', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (await connects(port)) break;
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`docker-registry did not start: ${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    host: `127.0.0.1:${port}`,
    port,
    storageDir,
    blobPath: (digest) => {
      const hex = digest.replace(/^sha256:/, '');
      return path.join(storageDir, 'docker/registry/v2/blobs/sha256', hex.slice(0, 2), hex, 'data');
    },
    stop: async () => {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await exited;
      }
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface BuiltImage {
  manifestDigest: string;
  configDigest: string;
  configSize: number;
  layerDigest: string;
  layerSize: number;
  architecture: string;
}

/** One image (config + one gzip layer of `files` + manifest) written into an OCI layout dir. */
async function addImage(layout: string, architecture: string, files: Record<string, string>): Promise<BuiltImage & { manifestSize: number; manifest: Descriptor }> {
  const { manifest, config, layers } = await writeImage(layout, { layers: [fileEntries(files)], config: { architecture, config: { Cmd: ['/hello'] } } });
  const layer = layers[0]!;
  return {
    manifest,
    manifestDigest: manifest.digest,
    manifestSize: manifest.size,
    configDigest: config.digest,
    configSize: config.size,
    layerDigest: layer.digest,
    layerSize: layer.size,
    architecture,
  };
}

export interface PushOptions {
  /** `--format v2s2`: skopeo converts to Docker schema 2 media types. */
  format?: 'oci' | 'v2s2';
  /** `user:password` for a registry with htpasswd. */
  creds?: string;
  /** `--all`: every image of an index, not only this machine's. */
  all?: boolean;
  /** The layout's tag to push (`t` unless given). */
  tag?: string;
}

/** `skopeo copy` of the image tagged `t` (or `opts.tag`) in `layout` to `docker://dest` (plain http). */
export function skopeoPush(layout: string, dest: string, opts: PushOptions = {}): void {
  execFileSync(
    'skopeo',
    [
      'copy',
      '--quiet',
      ...(opts.all ? ['--all'] : []),
      ...(opts.format ? ['--format', opts.format] : []),
      ...(opts.creds ? ['--dest-creds', opts.creds] : []),
      '--dest-tls-verify=false',
      `oci:${layout}:${opts.tag ?? 't'}`,
      `docker://${dest}`,
    ],
    { stdio: 'pipe' },
  );
}

async function withLayout<T>(build: (layout: string) => Promise<T>): Promise<T> {
  const layout = fs.mkdtempSync(path.join(os.tmpdir(), 'tspod-layout-'));
  try {
    return await build(layout);
  } finally {
    fs.rmSync(layout, { recursive: true, force: true });
  }
}

/** The digest of the manifest as stored by the registry (after any conversion by skopeo). */
export function remoteManifestDigest(registry: TestRegistry, repoTag: string, creds?: string): string {
  const raw = execFileSync('skopeo', ['inspect', '--raw', '--tls-verify=false', ...(creds ? ['--creds', creds] : []), `docker://${registry.host}/${repoTag}`]);
  return sha256(new Uint8Array(raw));
}

/** Builds a single-platform image and pushes it to `registry/repo:tag`. */
export async function pushImage(
  registry: TestRegistry,
  repoTag: string,
  files: Record<string, string> = { hello: 'hello world\n' },
  push: PushOptions = {},
): Promise<BuiltImage> {
  return withLayout(async (layout) => {
    const { manifest, ...img } = await addImage(layout, 'amd64', files);
    writeLayoutIndex(layout, 't', manifest);
    skopeoPush(layout, `${registry.host}/${repoTag}`, push);
    return img;
  });
}

/** Builds an index of linux/amd64 and linux/arm64/v8 images and pushes it with `skopeo copy --all`. */
export async function pushMultiArch(registry: TestRegistry, repoTag: string): Promise<{ indexDigest: string; images: BuiltImage[] }> {
  return withLayout(async (layout) => {
    const { manifest: amdManifest, ...amd } = await addImage(layout, 'amd64', { arch: 'amd64\n' });
    const { manifest: armManifest, ...arm } = await addImage(layout, 'arm64', { arch: 'arm64\n' });
    const index = writeLayoutIndex(layout, 't', [
      { manifest: amdManifest, platform: { os: 'linux', architecture: 'amd64' } },
      { manifest: armManifest, platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
    ]);
    skopeoPush(layout, `${registry.host}/${repoTag}`, { all: true });
    return { indexDigest: index.digest, images: [amd, arm] };
  });
}

export interface LayeredImage {
  manifestDigest: string;
  configDigest: string;
  layers: { digest: string; size: number }[];
}

/** Pushes `registry/repoTag`: linux/amd64, one gzip layer (mode 0644 files) per entry of `layers`, lowest first. */
export async function pushLayeredImage(registry: TestRegistry, repoTag: string, layers: Record<string, string>[]): Promise<LayeredImage> {
  return withLayout(async (layout) => {
    const image = await buildLayout(layout, 't', { layers: layers.map(fileEntries), config: { config: { Cmd: ['/bin/true'] } } });
    skopeoPush(layout, `${registry.host}/${repoTag}`);
    return { manifestDigest: image.manifest.digest, configDigest: image.config.digest, layers: image.layers.map(({ digest, size }) => ({ digest, size })) };
  });
}
