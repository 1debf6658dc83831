// Test helper: OCI image layouts built by hand. Layers are tar archives made in memory from entry
// lists (test/support/tar.ts), compressed with gzip (default), zstd (the `zstd` binary) or not at
// all; a config merged over linux/amd64 with the layers' diff_ids; a manifest; optionally an image
// index of several platforms; and `oci-layout` + `index.json` naming it by a tag. The registry
// tests push these layouts with skopeo (test/support/registry.ts).
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';

import type tarStream from 'tar-stream';

import { tarOf, type TarEntry } from './tar.js';

export type { TarEntry } from './tar.js';

export const MEDIA_TYPES = {
  manifest: 'application/vnd.oci.image.manifest.v1+json',
  index: 'application/vnd.oci.image.index.v1+json',
  config: 'application/vnd.oci.image.config.v1+json',
  layer: {
    none: 'application/vnd.oci.image.layer.v1.tar',
    gzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
    zstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  },
} as const;

export type Compression = keyof typeof MEDIA_TYPES.layer;

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
}

export interface LayerSpec {
  entries: TarEntry[];
  /** gzip unless given (skopeo compresses an uncompressed layer on push, changing its digest). */
  compression?: Compression;
}

export interface ImageSpec {
  /** Lowest first: each an entry list (a gzip layer) or a LayerSpec. */
  layers: (TarEntry[] | LayerSpec)[];
  /** Merged over `{ architecture: 'amd64', os: 'linux' }`; `rootfs` comes from the layers. */
  config?: object;
  /** Header defaults of every layer's tar; mtime 0 unless given ({} for tar.ts's own fixed mtime). */
  tarDefaults?: Partial<tarStream.Header>;
}

export interface OciImage {
  manifest: Descriptor;
  config: Descriptor;
  /** Lowest first. */
  layers: Descriptor[];
  /** sha256 of each uncompressed layer tar. */
  diffIds: string[];
}

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

export const EPOCH_MTIME: Partial<tarStream.Header> = { mtime: new Date(0) };

export function sha256(bytes: Uint8Array): string {
  return `sha256:${crypto.createHash('sha256').update(bytes).digest('hex')}`;
}

/** Writes `bytes` as `blobs/sha256/<hex>` of `layout` (made when missing). */
export function writeBlob(layout: string, bytes: Uint8Array): { digest: string; size: number } {
  const digest = sha256(bytes);
  const dir = path.join(layout, 'blobs', 'sha256');
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, digest.slice(7)), bytes);
  return { digest, size: bytes.length };
}

function writeJson(layout: string, mediaType: string, doc: object): Descriptor {
  return { mediaType, ...writeBlob(layout, Buffer.from(JSON.stringify(doc))) };
}

/** Regular files `name: content` as tar entries. */
export function fileEntries(files: Record<string, string>): TarEntry[] {
  return Object.entries(files).map(([name, content]) => ({ name, content }));
}

function compress(raw: Buffer, compression: Compression): Buffer {
  if (compression === 'gzip') return zlib.gzipSync(raw);
  if (compression === 'zstd') return execFileSync('zstd', ['-q', '-c', '-3'], { input: raw });
  return raw;
}

/** Writes the layer, config and manifest blobs of one image into `layout`. */
export async function writeImage(layout: string, spec: ImageSpec): Promise<OciImage> {
  const diffIds: string[] = [];
  const layers: Descriptor[] = [];
  for (const layer of spec.layers) {
    const { entries, compression = 'gzip' } = Array.isArray(layer) ? { entries: layer } : layer;
    const raw = await tarOf(entries, spec.tarDefaults ?? EPOCH_MTIME);
    diffIds.push(sha256(raw));
    layers.push({ mediaType: MEDIA_TYPES.layer[compression], ...writeBlob(layout, compress(raw, compression)) });
  }
  const config = writeJson(layout, MEDIA_TYPES.config, { architecture: 'amd64', os: 'linux', ...spec.config, rootfs: { type: 'layers', diff_ids: diffIds } });
  const manifest = writeJson(layout, MEDIA_TYPES.manifest, { schemaVersion: 2, mediaType: MEDIA_TYPES.manifest, config, layers });
  return { manifest, config, layers, diffIds };
}

/** Writes an image index blob listing `images` with their platforms. */
export function writeImageIndex(layout: string, images: { manifest: Descriptor; platform: Platform }[]): Descriptor {
  return writeJson(layout, MEDIA_TYPES.index, {
    schemaVersion: 2,
    mediaType: MEDIA_TYPES.index,
    manifests: images.map(({ manifest, platform }) => ({ ...manifest, platform })),
  });
}

/**
 * Writes `oci-layout` and `index.json` naming `target` by `tag`: a manifest or image index
 * descriptor, or images of several platforms (an image index is written for them). Returns the
 * descriptor `index.json` lists.
 */
export function writeLayoutIndex(layout: string, tag: string, target: Descriptor | { manifest: Descriptor; platform: Platform }[]): Descriptor {
  const entry = Array.isArray(target) ? writeImageIndex(layout, target) : target;
  fs.mkdirSync(layout, { recursive: true });
  fs.writeFileSync(path.join(layout, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  fs.writeFileSync(
    path.join(layout, 'index.json'),
    JSON.stringify({ schemaVersion: 2, manifests: [{ ...entry, annotations: { 'org.opencontainers.image.ref.name': tag } }] }),
  );
  return entry;
}

/** An OCI layout in `layout` holding one image tagged `tag`. */
export async function buildLayout(layout: string, tag: string, spec: ImageSpec): Promise<OciImage> {
  const image = await writeImage(layout, spec);
  writeLayoutIndex(layout, tag, image.manifest);
  return image;
}
