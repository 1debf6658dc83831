// Test helper: an image of several gzip layers (one file set each, lowest first), built as an OCI
// layout by hand and pushed with `skopeo copy` to a test docker-registry (test/support/registry.ts
// builds single-layer images; the re-authentication tests need several blobs in flight at once).
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';

import tar from 'tar-stream';

import type { TestRegistry } from './registry.js';

export interface LayeredImage {
  manifestDigest: string;
  configDigest: string;
  layers: { digest: string; size: number }[];
}

const sha256 = (bytes: Uint8Array): string => `sha256:${crypto.createHash('sha256').update(bytes).digest('hex')}`;

async function tarOf(files: Record<string, string>): Promise<Buffer> {
  const pack = tar.pack();
  for (const [name, content] of Object.entries(files)) pack.entry({ name, mode: 0o644, mtime: new Date(0) }, content);
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const c of pack) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** Pushes `registry/repoTag`: linux/amd64, one gzip layer per entry of `layers`. */
export async function pushLayeredImage(registry: TestRegistry, repoTag: string, layers: Record<string, string>[]): Promise<LayeredImage> {
  const layout = fs.mkdtempSync(path.join(os.tmpdir(), 'tspod-layers-'));
  try {
    const blobs = path.join(layout, 'blobs', 'sha256');
    fs.mkdirSync(blobs, { recursive: true });
    const write = (bytes: Buffer): { digest: string; size: number } => {
      const digest = sha256(bytes);
      fs.writeFileSync(path.join(blobs, digest.slice(7)), bytes);
      return { digest, size: bytes.length };
    };
    const diffIds: string[] = [];
    const layerDescs: { digest: string; size: number }[] = [];
    for (const files of layers) {
      const raw = await tarOf(files);
      diffIds.push(sha256(raw));
      // gzip here: skopeo would compress an uncompressed layer on push and change its digest.
      layerDescs.push(write(zlib.gzipSync(raw)));
    }
    const config = write(Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: { Cmd: ['/bin/true'] }, rootfs: { type: 'layers', diff_ids: diffIds } })));
    const manifest = write(
      Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
          layers: layerDescs.map((d) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', ...d })),
        }),
      ),
    );
    fs.writeFileSync(path.join(layout, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
    fs.writeFileSync(
      path.join(layout, 'index.json'),
      JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', ...manifest, annotations: { 'org.opencontainers.image.ref.name': 't' } }] }),
    );
    execFileSync('skopeo', ['copy', '--quiet', '--dest-tls-verify=false', `oci:${layout}:t`, `docker://${registry.host}/${repoTag}`], { stdio: 'pipe' });
    return { manifestDigest: manifest.digest, configDigest: config.digest, layers: layerDescs };
  } finally {
    fs.rmSync(layout, { recursive: true, force: true });
  }
}
