// Rendered trees: an image with its dependencies applied (appc rendering), made once, cached
// under `trees/<tree-id>/` and shared read-only by pods (through overlayfs, or a copy).
// The tree id is derived from the ordered list of image ids that were rendered, so a changed
// dependency gives a new tree, as in rkt's tree store. A tree is rendered into a hidden temp
// dir and published by rename with RENAME_NOREPLACE: a half-rendered tree is never visible.
// A fetched OCI image hands its applied tree over instead (`adoptTree`): nothing is extracted twice.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

import { planRender, renderImage, type RenderSource } from '../image/render.js';
import { RENAME_NOREPLACE, SyscallError } from '../sys/types.js';
import { tmpPathFor, writeJsonAtomic } from './atomic.js';
import { imageLockPath, treeLockPath, treePath } from './layout.js';
import { lock, withLock, type FileLock } from './lock.js';
import type { Store } from './store.js';

export interface TreeInfo {
  treeId: string;
  /** The image the tree was rendered for. */
  imageId: string;
  /** Every image whose files are in the tree, in render order (dependencies first). */
  layers: string[];
  renderedAt: string;
}

export interface RenderedTree {
  info: TreeInfo;
  /** trees/<tree-id> */
  dir: string;
  /** trees/<tree-id>/rootfs */
  rootfs: string;
  /** true when the tree existed already. */
  cached: boolean;
}

/** A RenderSource backed by the store: manifests and tars by id, dependencies by name + labels. */
export function storeRenderSource(store: Store): RenderSource {
  return {
    manifest: async (id) => store.manifest(id),
    openTar: async (id) => store.openTar(id),
    resolveDependency: async (dep) => store.resolveDependency(dep, dep.imageName).id,
  };
}

export function treeIdFor(layers: string[]): string {
  return `deps-sha512-${crypto.createHash('sha512').update(layers.join(',')).digest('hex').slice(0, 64)}`;
}

export function readTreeInfo(store: Store, treeId: string): TreeInfo | undefined {
  try {
    return JSON.parse(fs.readFileSync(path.join(treePath(store.layout, treeId), 'tree.json'), 'utf8')) as TreeInfo;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** Every published tree (hidden temp dirs of renders in flight are left out). */
export function listTrees(store: Store): TreeInfo[] {
  let names: string[];
  try {
    names = fs.readdirSync(store.layout.trees);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const trees: TreeInfo[] = [];
  for (const name of names) {
    if (name.startsWith('.')) continue;
    const info = readTreeInfo(store, name);
    if (info !== undefined) trees.push(info);
  }
  return trees;
}

/**
 * The rendered tree of an image, rendering it if needed. The caller may pass `hold` to keep a
 * shared lock on the tree (a pod using it), which makes `image rm`/`image gc` leave it alone.
 */
export async function renderTree(
  store: Store,
  imageId: string,
  options: { privileged?: boolean; hold?: boolean } = {},
): Promise<RenderedTree & { lock?: FileLock }> {
  // Shared store lock: gc (exclusive) does not remove images while they are being rendered.
  const storeLock = await store.lockStore('shared');
  try {
    return await renderTreeLocked(store, imageId, options);
  } finally {
    storeLock.release();
  }
}

async function renderTreeLocked(
  store: Store,
  imageId: string,
  options: { privileged?: boolean; hold?: boolean },
): Promise<RenderedTree & { lock?: FileLock }> {
  const source = storeRenderSource(store);
  const layers = (await planRender(imageId, source)).map((layer) => layer.id);
  const treeId = treeIdFor(layers);
  const dir = treePath(store.layout, treeId);
  const result = await withLock(store.sys, treeLockPath(store.layout, treeId), 'exclusive', async () => {
    const existing = readTreeInfo(store, treeId);
    if (existing !== undefined) return { info: existing, dir, rootfs: path.join(dir, 'rootfs'), cached: true };
    // Shared image locks keep `image rm` from deleting a blob while it is being read.
    const imageLocks: FileLock[] = [];
    try {
      for (const id of new Set(layers)) imageLocks.push(await lock(store.sys, imageLockPath(store.layout, id), 'shared'));
      const tmp = tmpPathFor(dir);
      fs.rmSync(dir, { recursive: true, force: true }); // a tree without tree.json is a leftover
      fs.mkdirSync(path.join(tmp, 'rootfs'), { recursive: true, mode: 0o755 });
      try {
        await renderImage(imageId, path.join(tmp, 'rootfs'), {
          source,
          sys: store.sys,
          privileged: options.privileged,
          onWarning: store.onWarning,
        });
        fs.writeFileSync(path.join(tmp, 'manifest'), store.manifestBytes(imageId));
        const info: TreeInfo = { treeId, imageId, layers, renderedAt: store.now().toISOString() };
        writeJsonAtomic(store.sys, path.join(tmp, 'tree.json'), info);
        store.sys.renameat2(tmp, dir, RENAME_NOREPLACE);
        store.sys.fsyncPath(store.layout.trees);
        return { info, dir, rootfs: path.join(dir, 'rootfs'), cached: false };
      } catch (err) {
        removeTreeDir(tmp);
        if (err instanceof SyscallError && err.code === 'EEXIST') {
          const info = readTreeInfo(store, treeId);
          if (info !== undefined) return { info, dir, rootfs: path.join(dir, 'rootfs'), cached: true };
        }
        throw err;
      }
    } finally {
      for (const held of imageLocks) held.release();
    }
  });
  for (const id of new Set(layers)) await store.touch(id);
  if (options.hold !== true) return result;
  return { ...result, lock: await lock(store.sys, treeLockPath(store.layout, treeId), 'shared') };
}

/**
 * Publishes a tree that was already applied (a fetched OCI image's layers) as the rendered tree of
 * `imageId`, an image without dependencies, so its first use does not extract the image again.
 * `rootfs` is moved (rename: it must be on the store's filesystem) and must be what rendering the
 * image's ACI gives (src/fetch/oci-pack.ts packs the ACI from it). Returns false, leaving `rootfs`
 * where it was, when the tree exists already or cannot be moved (another filesystem).
 */
export async function adoptTree(store: Store, imageId: string, rootfs: string, manifestBytes: Uint8Array): Promise<boolean> {
  const treeId = treeIdFor([imageId]);
  const dir = treePath(store.layout, treeId);
  fs.mkdirSync(store.layout.trees, { recursive: true });
  return withLock(store.sys, treeLockPath(store.layout, treeId), 'exclusive', () => {
    if (readTreeInfo(store, treeId) !== undefined) return false;
    const tmp = tmpPathFor(dir);
    removeTreeDir(dir); // a tree without tree.json is a leftover
    fs.mkdirSync(tmp, { mode: 0o755 });
    try {
      fs.renameSync(rootfs, path.join(tmp, 'rootfs'));
    } catch (err) {
      fs.rmdirSync(tmp);
      if ((err as NodeJS.ErrnoException).code === 'EXDEV') return false;
      throw err;
    }
    try {
      fs.writeFileSync(path.join(tmp, 'manifest'), manifestBytes);
      const info: TreeInfo = { treeId, imageId, layers: [imageId], renderedAt: store.now().toISOString() };
      writeJsonAtomic(store.sys, path.join(tmp, 'tree.json'), info);
      store.sys.renameat2(tmp, dir, RENAME_NOREPLACE);
      store.sys.fsyncPath(store.layout.trees);
      return true;
    } catch (err) {
      removeTreeDir(tmp);
      throw err;
    }
  });
}

/** Removes a tree directory whatever its modes (an image may ship read-only directories). */
export function removeTreeDir(dir: string): void {
  try {
    fs.rmSync(dir, { recursive: true, force: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EACCES') throw err;
    makeWritable(dir);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function makeWritable(dir: string): void {
  const stat = fs.lstatSync(dir, { throwIfNoEntry: false });
  if (stat === undefined || !stat.isDirectory()) return;
  fs.chmodSync(dir, 0o700);
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    if (entry.isDirectory()) makeWritable(path.join(dir, entry.name));
  }
}
