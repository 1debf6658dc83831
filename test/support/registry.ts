// Test helper: Debian's `docker-registry` (distribution 2.8) on 127.0.0.1 and a free port, with a
// config written here (storage in a temp dir, no auth: the packaged config demands htpasswd, see
// shared/docs/peers.md §1), and tiny OCI layouts built by hand (a tar layer from tar-stream, a
// config, a manifest, optionally an index of several platforms) pushed with `skopeo copy`.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';

import tar from 'tar-stream';

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

function sha256(bytes: Uint8Array): string {
  return `sha256:${crypto.createHash('sha256').update(bytes).digest('hex')}`;
}

function writeBlob(layout: string, bytes: Uint8Array): { digest: string; size: number } {
  const digest = sha256(bytes);
  const dir = path.join(layout, 'blobs', 'sha256');
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, digest.slice(7)), bytes);
  return { digest, size: bytes.length };
}

async function tarOf(files: Record<string, string>): Promise<Uint8Array> {
  const pack = tar.pack();
  for (const [name, content] of Object.entries(files)) pack.entry({ name, mtime: new Date(0) }, content);
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const c of pack) chunks.push(c as Buffer);
  return new Uint8Array(Buffer.concat(chunks));
}

/** One image (config + one uncompressed tar layer + manifest) written into an OCI layout dir. */
async function addImage(layout: string, architecture: string, files: Record<string, string>): Promise<BuiltImage & { manifestSize: number }> {
  // gzip: skopeo compresses an uncompressed layer on push, which would change every digest.
  const layerBytes = new Uint8Array(zlib.gzipSync(await tarOf(files)));
  const diffId = sha256(zlib.gunzipSync(layerBytes));
  const layer = writeBlob(layout, layerBytes);
  const config = writeBlob(
    layout,
    Buffer.from(JSON.stringify({ architecture, os: 'linux', config: { Cmd: ['/hello'] }, rootfs: { type: 'layers', diff_ids: [diffId] } })),
  );
  const manifestBytes = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', ...layer }],
    }),
  );
  const manifest = writeBlob(layout, manifestBytes);
  return {
    manifestDigest: manifest.digest,
    manifestSize: manifest.size,
    configDigest: config.digest,
    configSize: config.size,
    layerDigest: layer.digest,
    layerSize: layer.size,
    architecture,
  };
}

function writeLayout(layout: string, entry: object): void {
  fs.writeFileSync(path.join(layout, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  fs.writeFileSync(path.join(layout, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [entry] }));
}

export interface PushOptions {
  /** `--format v2s2`: skopeo converts to Docker schema 2 media types. */
  format?: 'oci' | 'v2s2';
  /** `user:password` for a registry with htpasswd. */
  creds?: string;
}

function skopeoPush(layout: string, dest: string, all: boolean, opts: PushOptions = {}): void {
  execFileSync(
    'skopeo',
    [
      'copy',
      '--quiet',
      ...(all ? ['--all'] : []),
      ...(opts.format ? ['--format', opts.format] : []),
      ...(opts.creds ? ['--dest-creds', opts.creds] : []),
      '--dest-tls-verify=false',
      `oci:${layout}:t`,
      `docker://${dest}`,
    ],
    { stdio: 'pipe' },
  );
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
  const layout = fs.mkdtempSync(path.join(os.tmpdir(), 'tspod-layout-'));
  try {
    const img = await addImage(layout, 'amd64', files);
    writeLayout(layout, {
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      digest: img.manifestDigest,
      size: img.manifestSize,
      annotations: { 'org.opencontainers.image.ref.name': 't' },
    });
    skopeoPush(layout, `${registry.host}/${repoTag}`, false, push);
    return img;
  } finally {
    fs.rmSync(layout, { recursive: true, force: true });
  }
}

/** Builds an index of linux/amd64 and linux/arm64/v8 images and pushes it with `skopeo copy --all`. */
export async function pushMultiArch(registry: TestRegistry, repoTag: string): Promise<{ indexDigest: string; images: BuiltImage[] }> {
  const layout = fs.mkdtempSync(path.join(os.tmpdir(), 'tspod-layout-'));
  try {
    const amd = await addImage(layout, 'amd64', { arch: 'amd64\n' });
    const arm = await addImage(layout, 'arm64', { arch: 'arm64\n' });
    const index = writeBlob(
      layout,
      Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: 'application/vnd.oci.image.index.v1+json',
          manifests: [
            { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: amd.manifestDigest, size: amd.manifestSize, platform: { os: 'linux', architecture: 'amd64' } },
            { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: arm.manifestDigest, size: arm.manifestSize, platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
          ],
        }),
      ),
    );
    writeLayout(layout, { mediaType: 'application/vnd.oci.image.index.v1+json', ...index, annotations: { 'org.opencontainers.image.ref.name': 't' } });
    skopeoPush(layout, `${registry.host}/${repoTag}`, true);
    return { indexDigest: index.digest, images: [amd, arm] };
  } finally {
    fs.rmSync(layout, { recursive: true, force: true });
  }
}
