// What `tspod image export|extract|render` do with a stored image: write the stored tar as an
// ACI, or the rendered image as an OCI image layout or `oci-archive` tar (src/oci/export.ts),
// unpack the image alone, or unpack it with its dependencies applied. Outputs appear
// atomically: they are built beside the destination and renamed into place.
import fs from 'node:fs';
import path from 'node:path';

import { UsageError } from '../errors.js';
import { exportTag, packLayoutArchive, writeOciImage } from '../oci/export.js';
import { tmpPathFor } from '../store/atomic.js';
import type { Store } from '../store/store.js';
import { removeTreeDir, renderTree, storeRenderSource } from '../store/trees.js';
import { extractTar } from './extract.js';
import { renderImage } from './render.js';

export interface UnpackOptions {
  rootfsOnly?: boolean;
  overwrite?: boolean;
  privileged?: boolean;
}

function checkDestination(dest: string, overwrite: boolean | undefined): void {
  if (fs.existsSync(dest) && overwrite !== true) {
    throw new UsageError(`${dest}: already exists (pass --overwrite to replace it)`);
  }
}

/** Moves a finished output into place, replacing the old one only when asked to. */
function replace(tmp: string, dest: string): void {
  if (fs.existsSync(dest)) {
    const old = tmpPathFor(dest);
    fs.renameSync(dest, old);
    fs.renameSync(tmp, dest);
    removeTreeDir(old);
  } else {
    fs.renameSync(tmp, dest);
  }
}

/** `image export`: the stored tar, byte for byte (its sha512 is the image id). */
export async function exportImage(store: Store, id: string, dest: string, options: UnpackOptions = {}): Promise<string> {
  checkDestination(dest, options.overwrite);
  const tmp = tmpPathFor(path.resolve(dest));
  try {
    fs.copyFileSync(store.blobPath(id), tmp);
    fs.chmodSync(tmp, 0o644);
    replace(tmp, dest);
  } finally {
    fs.rmSync(tmp, { force: true });
  }
  await store.touch(id);
  return dest;
}

export const EXPORT_FORMATS = ['aci', 'oci', 'oci-archive'] as const;
export type ExportFormat = (typeof EXPORT_FORMATS)[number];

export interface OciExportOptions {
  format: Exclude<ExportFormat, 'aci'>;
  /** The layout tag (`org.opencontainers.image.ref.name`); default the version label, else `latest`. */
  tag?: string;
  overwrite?: boolean;
}

/**
 * `image export --format oci|oci-archive`: the image as a pod sees it (its rendered tree, the
 * store's cached one) as a one-layer OCI image, into a new layout directory or a tar of one.
 * A directory that exists must be empty unless `overwrite`. Returns the tag written.
 */
export async function exportOciImage(store: Store, id: string, dest: string, options: OciExportOptions): Promise<{ path: string; tag: string; digest: string }> {
  const manifest = store.manifest(id);
  const tag = exportTag(manifest, options.tag);
  const exists = fs.existsSync(dest);
  if (exists && options.overwrite !== true) {
    const emptyDir = options.format === 'oci' && fs.statSync(dest).isDirectory() && fs.readdirSync(dest).length === 0;
    if (!emptyDir) throw new UsageError(`${dest}: already exists${options.format === 'oci' ? ' and is not an empty directory' : ''} (pass --overwrite to replace it)`);
  }
  const tmp = tmpPathFor(path.resolve(dest));
  const layout = options.format === 'oci' ? tmp : tmpPathFor(path.resolve(dest));
  // The tree is held (shared lock) so `image gc` leaves it while it is read.
  const tree = await renderTree(store, id, { hold: true });
  try {
    fs.mkdirSync(layout, { mode: 0o755 });
    const entry = await writeOciImage(layout, manifest, tree.rootfs, {
      tag,
      keepOwners: process.geteuid?.() === 0,
      sys: store.sys,
      onWarning: store.onWarning,
    });
    if (options.format === 'oci-archive') await packLayoutArchive(layout, tmp);
    replace(tmp, dest);
    return { path: dest, tag, digest: entry.digest };
  } finally {
    tree.lock?.release();
    removeTreeDir(layout);
    if (fs.existsSync(tmp)) removeTreeDir(tmp);
    await store.touch(id);
  }
}

async function unpackInto(dest: string, options: UnpackOptions, fill: (dir: string) => Promise<void>): Promise<string> {
  checkDestination(dest, options.overwrite);
  const tmp = tmpPathFor(path.resolve(dest));
  fs.mkdirSync(tmp, { mode: 0o755 });
  try {
    await fill(tmp);
    replace(tmp, dest);
  } catch (err) {
    removeTreeDir(tmp);
    throw err;
  }
  return dest;
}

/** `image extract`: this image alone (`manifest` + `rootfs/`, or the rootfs contents). */
export async function extractImage(store: Store, id: string, dest: string, options: UnpackOptions = {}): Promise<string> {
  await unpackInto(dest, options, async (dir) => {
    await extractTar(store.openTar(id), dir, {
      sys: store.sys,
      prefix: options.rootfsOnly === true ? 'rootfs/' : undefined,
      privileged: options.privileged,
      onWarning: store.onWarning,
    });
  });
  await store.touch(id);
  return dest;
}

/** `image render`: the image with its dependencies applied, as a pod would see it. */
export async function renderImageTo(store: Store, id: string, dest: string, options: UnpackOptions = {}): Promise<string> {
  const lock = await store.lockStore('shared');
  try {
    await unpackInto(dest, options, async (dir) => {
      const rootfs = options.rootfsOnly === true ? dir : path.join(dir, 'rootfs');
      if (rootfs !== dir) {
        fs.mkdirSync(rootfs, { mode: 0o755 });
        fs.writeFileSync(path.join(dir, 'manifest'), store.manifestBytes(id));
      }
      const result = await renderImage(id, rootfs, {
        source: storeRenderSource(store),
        sys: store.sys,
        privileged: options.privileged,
        onWarning: store.onWarning,
      });
      for (const layer of new Set(result.layers.map((l) => l.id))) await store.touch(layer);
    });
  } finally {
    lock.release();
  }
  return dest;
}
