// Where everything lives under the data dir (`--dir`, default /var/lib/tspod). One function per
// path so no other module spells a store path. Image ids are `sha512-<128 hex>`; files are keyed
// by the hex, sharded by its first two characters as rkt's diskv store was.
//
//   cas/blob/sha512/ab/<hex>       uncompressed ACI tar, read-only
//   cas/manifest/sha512/ab/<hex>   the image manifest bytes as found in the image
//   cas/images/<hex>.json          catalog record: its presence is what makes an image listed
//   cas/tmp/                       in-flight imports and resumable download partials (removed by gc)
//   cas/oci/blobs/sha256/<hex>     verified OCI layer blobs as downloaded, read-only, kept for reuse
//   cas/oci/images/<hex>.json      the layer digests an image was converted from (what keeps a blob)
//   trees/<tree-id>/{rootfs/,manifest,tree.json}   rendered trees (image + dependencies)
//   locks/store.lock               shared by fetch/render, exclusive by gc
//   locks/image-<hex>.lock  locks/tree-<tree-id>.lock
import path from 'node:path';

import { hexOfImageId } from '../appc/identifiers.js';

export interface StoreLayout {
  root: string;
  cas: string;
  tmp: string;
  images: string;
  blobs: string;
  manifests: string;
  trees: string;
  locks: string;
  /** cas/oci/blobs/sha256 */
  ociBlobs: string;
  /** cas/oci/images */
  ociImages: string;
}

export function storeLayout(dir: string): StoreLayout {
  const cas = path.join(dir, 'cas');
  return {
    root: dir,
    cas,
    tmp: path.join(cas, 'tmp'),
    images: path.join(cas, 'images'),
    blobs: path.join(cas, 'blob', 'sha512'),
    manifests: path.join(cas, 'manifest', 'sha512'),
    trees: path.join(dir, 'trees'),
    locks: path.join(dir, 'locks'),
    ociBlobs: path.join(cas, 'oci', 'blobs', 'sha256'),
    ociImages: path.join(cas, 'oci', 'images'),
  };
}

export function blobPath(layout: StoreLayout, id: string): string {
  const hex = hexOfImageId(id);
  return path.join(layout.blobs, hex.slice(0, 2), hex);
}

export function manifestPath(layout: StoreLayout, id: string): string {
  const hex = hexOfImageId(id);
  return path.join(layout.manifests, hex.slice(0, 2), hex);
}

export function recordPath(layout: StoreLayout, id: string): string {
  return path.join(layout.images, `${hexOfImageId(id)}.json`);
}

export function treePath(layout: StoreLayout, treeId: string): string {
  return path.join(layout.trees, treeId);
}

export function storeLockPath(layout: StoreLayout): string {
  return path.join(layout.locks, 'store.lock');
}

export function imageLockPath(layout: StoreLayout, id: string): string {
  return path.join(layout.locks, `image-${hexOfImageId(id)}.lock`);
}

export function treeLockPath(layout: StoreLayout, treeId: string): string {
  return path.join(layout.locks, `tree-${treeId}.lock`);
}
