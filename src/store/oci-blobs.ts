// OCI layer blobs kept in the store, so a second image that shares a layer (a common base) does
// not download it again. A blob is stored under its sha256 (`cas/oci/blobs/sha256/<hex>`,
// read-only) only after its digest was verified, by rename from the store's tmp area, so a
// listed blob is always whole and right, even after kill -9. Which images use which blobs is
// written per image (`cas/oci/images/<image hex>.json`: the layer digests), before the image's
// catalog record; a blob no record of a listed image names is garbage.
//
// Removal: `image rm` deletes the image's layer record and the blobs no other record names;
// `image gc` also removes records of images that are no longer listed and blobs of nobody.
// A fetch opens every blob it uses (fd) before it relies on it, so a removal racing with it
// (both hold the store lock shared) costs the next fetch a download, never a broken import.
import fs from 'node:fs';
import path from 'node:path';

import { hexOfImageId, imageIdFromHex } from '../appc/identifiers.js';
import { ensureDir, publish, readdirOrEmpty, writeJsonAtomic } from './atomic.js';
import type { StoreLayout } from './layout.js';
import type { Store } from './store.js';

const DIGEST = /^sha256:([0-9a-f]{64})$/;

/** Where a verified layer blob lives (undefined for a digest that is not sha256). */
export function ociBlobPath(layout: StoreLayout, digest: string): string | undefined {
  const m = DIGEST.exec(digest);
  return m === null ? undefined : path.join(layout.ociBlobs, m[1]!);
}

export function ociLayersPath(layout: StoreLayout, imageId: string): string {
  return path.join(layout.ociImages, `${hexOfImageId(imageId)}.json`);
}

/** Opens a stored blob for reading; undefined when it is not there. */
export function openOciBlob(layout: StoreLayout, digest: string): number | undefined {
  const file = ociBlobPath(layout, digest);
  if (file === undefined) return undefined;
  try {
    return fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** Moves a verified download (a file in the store's tmp area) into the blob area. */
export function publishOciBlob(store: Store, verifiedFile: string, digest: string): string {
  const target = ociBlobPath(store.layout, digest);
  if (target === undefined) throw new Error(`store blob ${digest}: not a sha256 digest`);
  ensureDir(store.layout.ociBlobs);
  fs.chmodSync(verifiedFile, 0o444);
  // An identical blob published meanwhile by another fetch is simply replaced.
  publish(store.sys, verifiedFile, target);
  return target;
}

/** Records the layer digests of an image (before its catalog record is written). */
export function recordOciLayers(store: Store, imageId: string, digests: readonly string[]): void {
  ensureDir(store.layout.ociImages);
  writeJsonAtomic(store.sys, ociLayersPath(store.layout, imageId), { layers: [...new Set(digests)] });
}

function readLayers(file: string): string[] {
  try {
    const doc = JSON.parse(fs.readFileSync(file, 'utf8')) as { layers?: unknown };
    return Array.isArray(doc.layers) ? doc.layers.filter((d): d is string => typeof d === 'string') : [];
  } catch {
    return []; // missing or damaged: it keeps nothing
  }
}

/**
 * Removes layer records of images not in `listed` (all of them when `onlyImage` is undefined,
 * else only that image's) and then every blob no remaining record names. Returns what was removed.
 */
export function collectOciBlobs(store: Store, listed: ReadonlySet<string>, onlyImage?: string): string[] {
  const removed: string[] = [];
  const keep = new Set<string>();
  for (const name of readdirOrEmpty(store.layout.ociImages)) {
    const file = path.join(store.layout.ociImages, name);
    const hex = /^([0-9a-f]{128})\.json$/.exec(name)?.[1];
    const id = hex === undefined ? undefined : imageIdFromHex(hex);
    const garbage = id === undefined ? onlyImage === undefined : !listed.has(id) && (onlyImage === undefined || onlyImage === id);
    if (garbage) {
      fs.rmSync(file, { force: true });
      removed.push(file);
      continue;
    }
    for (const digest of readLayers(file)) keep.add(digest);
  }
  for (const name of readdirOrEmpty(store.layout.ociBlobs)) {
    if (/^[0-9a-f]{64}$/.test(name) && keep.has(`sha256:${name}`)) continue;
    const file = path.join(store.layout.ociBlobs, name);
    fs.rmSync(file, { force: true });
    removed.push(file);
  }
  return removed;
}
