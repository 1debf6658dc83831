// Removing images and collecting garbage: `tspod image rm` and `tspod image gc`. A rendered tree
// that someone holds (a shared lock on tree-<id>.lock: a pod using it, a render in flight) is
// never removed; it is left for a later gc ("deferred"). Everything else that no listed image
// needs (temp files of dead imports, blobs without a record, trees of removed images, OCI layer
// blobs no listed image was made from: src/store/oci-blobs.ts) goes.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

import { imageIdFromHex } from '../appc/identifiers.js';
import { readdirOrEmpty } from './atomic.js';
import type { ImageRecord } from './catalog.js';
import { treeLockPath, treePath } from './layout.js';
import { tryLock } from './lock.js';
import { collectOciBlobs } from './oci-blobs.js';
import type { Store } from './store.js';
import { listTrees, removeTreeDir } from './trees.js';

export interface TreeRemoval {
  removed: string[];
  /** Trees in use (locked by a pod or a render): left for a later `image gc`. */
  deferred: string[];
}

/** Removes a tree unless it is held; renamed aside first so no reader sees it half-deleted. */
export function removeTreeIfUnused(store: Store, treeId: string): boolean {
  const held = tryLock(store.sys, treeLockPath(store.layout, treeId), 'exclusive');
  if (held === undefined) return false;
  try {
    const dir = treePath(store.layout, treeId);
    if (!fs.existsSync(dir)) return true;
    const aside = path.join(store.layout.trees, `.gc-${crypto.randomBytes(6).toString('hex')}`);
    fs.renameSync(dir, aside);
    store.sys.fsyncPath(store.layout.trees);
    removeTreeDir(aside);
    return true;
  } finally {
    held.release();
  }
}

/** Removes every tree that contains the image's files, or defers those in use. */
export function removeTreesOf(store: Store, imageId: string): TreeRemoval {
  const result: TreeRemoval = { removed: [], deferred: [] };
  for (const tree of listTrees(store)) {
    if (!tree.layers.includes(imageId)) continue;
    (removeTreeIfUnused(store, tree.treeId) ? result.removed : result.deferred).push(tree.treeId);
  }
  return result;
}

export interface ImageRemoval extends TreeRemoval {
  image: ImageRecord;
}

/** `tspod image rm`: the image leaves the catalog, its blob and its unused trees go. */
export async function removeImage(store: Store, id: string): Promise<ImageRemoval> {
  const held = await store.lockStore('shared');
  try {
    const image = await store.removeImage(id);
    // Its layer blobs go when no other image was made from them.
    collectOciBlobs(store, new Set(store.listImages().map((r) => r.id)), id);
    return { image, ...removeTreesOf(store, id) };
  } finally {
    held.release();
  }
}

export interface GcReport {
  removedImages: ImageRecord[];
  removedTrees: string[];
  deferredTrees: string[];
  /** Temp files of interrupted imports and blobs or manifests that no record lists. */
  removedLeftovers: string[];
}

export interface GcOptions {
  /** Images not used for this long are removed. */
  gracePeriodMs: number;
  /** Image ids that must stay whatever their age (images of pods). */
  keep?: ReadonlySet<string>;
}

/**
 * `tspod image gc`. Holds the store lock exclusively, so no import is in flight: every temp
 * file is a leftover of a killed process.
 */
export async function collectGarbage(store: Store, options: GcOptions): Promise<GcReport> {
  const report: GcReport = { removedImages: [], removedTrees: [], deferredTrees: [], removedLeftovers: [] };
  const held = await store.lockStore('exclusive');
  try {
    for (const name of readdirOrEmpty(store.layout.tmp)) {
      const file = path.join(store.layout.tmp, name);
      fs.rmSync(file, { recursive: true, force: true });
      report.removedLeftovers.push(file);
    }
    const cutoff = store.now().getTime() - options.gracePeriodMs;
    for (const record of store.listImages()) {
      if (options.keep?.has(record.id) === true || Date.parse(record.lastUsed) > cutoff) continue;
      report.removedImages.push(await store.removeImage(record.id));
    }
    const listed = new Set(store.listImages().map((r) => r.id));
    for (const tree of listTrees(store)) {
      if (tree.layers.every((id) => listed.has(id))) continue;
      (removeTreeIfUnused(store, tree.treeId) ? report.removedTrees : report.deferredTrees).push(tree.treeId);
    }
    for (const name of readdirOrEmpty(store.layout.trees)) {
      // Hidden entries are renders or removals that a killed process left half done.
      if (!name.startsWith('.')) continue;
      const dir = path.join(store.layout.trees, name);
      removeTreeDir(dir);
      report.removedLeftovers.push(dir);
    }
    report.removedLeftovers.push(...collectOciBlobs(store, listed));
    for (const root of [store.layout.blobs, store.layout.manifests]) {
      for (const shard of readdirOrEmpty(root)) {
        for (const name of readdirOrEmpty(path.join(root, shard))) {
          const file = path.join(root, shard, name);
          const orphan = name.startsWith('.') || !/^[0-9a-f]{128}$/.test(name) || !listed.has(imageIdFromHex(name));
          if (!orphan) continue;
          fs.rmSync(file, { force: true });
          report.removedLeftovers.push(file);
        }
      }
    }
    return report;
  } finally {
    held.release();
  }
}

