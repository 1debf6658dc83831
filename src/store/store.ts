// The content-addressed image store: commits verified ACI tars under their sha512 id, keeps the
// catalog, serves blobs and manifests, removes images. Crash safety comes from the order of
// writes: blob and manifest first (tmp + fsync + rename), the catalog record last; removal
// deletes the record first. Concurrency: `store.lock` is held shared by everything that adds or
// reads images and exclusively by gc; `image-<hex>.lock` serialises commit and removal of one id.
import fs from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';

import type { Dependency, ImageManifest, Label } from '../appc/types.js';
import { labelsMatch } from '../appc/labels.js';
import { parseImageManifest } from '../appc/validate.js';
import { NotFoundError } from '../errors.js';
import type { Syscalls } from '../sys/types.js';
import { ensureDir, publish, writeFileAtomic } from './atomic.js';
import { listRecords, readRecord, resolveRecord, writeRecord, type ImageRecord, type ImageSourceKind } from './catalog.js';
import { blobPath, imageLockPath, manifestPath, recordPath, storeLayout, storeLockPath, type StoreLayout } from './layout.js';
import { lock, tryLock, withLock, type FileLock, type LockMode } from './lock.js';

export interface StoreOptions {
  dir: string;
  sys: Syscalls;
  now?: () => Date;
  onWarning?: (message: string) => void;
}

export interface CommitRequest {
  id: string;
  /** The uncompressed tar, fsynced, in the store's tmp dir; moved into place or removed. */
  tmpTarPath: string;
  size: number;
  manifest: ImageManifest;
  manifestBytes: Uint8Array;
  source: { kind: ImageSourceKind; location: string; signer: string | null; digest?: string };
}

export interface CommitResult {
  record: ImageRecord;
  /** false when the image was already in the store (another fetch stored it first). */
  stored: boolean;
}

export class Store {
  readonly layout: StoreLayout;
  readonly sys: Syscalls;
  readonly now: () => Date;
  readonly onWarning: (message: string) => void;

  constructor(options: StoreOptions) {
    this.layout = storeLayout(options.dir);
    this.sys = options.sys;
    this.now = options.now ?? (() => new Date());
    this.onWarning = options.onWarning ?? (() => {});
  }

  /** Creates the directory skeleton (idempotent). */
  init(): this {
    for (const dir of [this.layout.tmp, this.layout.images, this.layout.blobs, this.layout.manifests, this.layout.trees, this.layout.locks]) {
      ensureDir(dir, 0o755);
    }
    return this;
  }

  /** The store-wide lock: shared for work that adds or reads images, exclusive for gc. */
  lockStore(mode: LockMode): Promise<FileLock> {
    return lock(this.sys, storeLockPath(this.layout), mode);
  }

  tryLockStore(mode: LockMode): FileLock | undefined {
    return tryLock(this.sys, storeLockPath(this.layout), mode);
  }

  lockImage(id: string, mode: LockMode): Promise<FileLock> {
    return lock(this.sys, imageLockPath(this.layout, id), mode);
  }

  /**
   * Publishes an imported image. Stored once: when the id is already listed, the tmp tar is
   * discarded and the existing record returned. Order: blob, manifest, then the record.
   */
  async commitImage(request: CommitRequest): Promise<CommitResult> {
    return withLock(this.sys, imageLockPath(this.layout, request.id), 'exclusive', () => {
      const existing = readRecord(this.layout, request.id);
      if (existing !== undefined) {
        fs.rmSync(request.tmpTarPath, { force: true });
        return { record: existing, stored: false };
      }
      const blob = blobPath(this.layout, request.id);
      ensureDir(path.dirname(blob));
      fs.chmodSync(request.tmpTarPath, 0o444);
      // A blob left by an import killed before its record is identical content: replace it.
      publish(this.sys, request.tmpTarPath, blob);
      const manifestFile = manifestPath(this.layout, request.id);
      ensureDir(path.dirname(manifestFile));
      writeFileAtomic(this.sys, manifestFile, request.manifestBytes, 0o444);
      const time = this.now().toISOString();
      const record: ImageRecord = {
        id: request.id,
        name: request.manifest.name,
        labels: request.manifest.labels ?? [],
        importTime: time,
        lastUsed: time,
        size: request.size,
        source: request.source,
      };
      writeRecord(this.sys, this.layout, record);
      return { record, stored: true };
    });
  }

  listImages(): ImageRecord[] {
    return listRecords(this.layout, this.onWarning);
  }

  getImage(id: string): ImageRecord | undefined {
    return readRecord(this.layout, id);
  }

  /** `sha512-` id prefix or `name[:version]` (+ labels) to a stored image. */
  resolveImage(ref: string, labels: Label[] = []): ImageRecord {
    return resolveRecord(this.listImages(), ref, labels);
  }

  /** The stored image that satisfies a manifest dependency (name + labels, imageID when given). */
  resolveDependency(dep: Dependency, dependent: string): ImageRecord {
    const candidates = this.listImages().filter((r) => r.name === dep.imageName && labelsMatch(dep.labels ?? [], r.labels));
    const match = dep.imageID === undefined ? candidates[candidates.length - 1] : candidates.find((r) => r.id === dep.imageID);
    if (match === undefined) {
      const labels = (dep.labels ?? []).map((l) => `${l.name}=${l.value}`).join(',');
      const what = `${dep.imageName}${labels === '' ? '' : ` (${labels})`}${dep.imageID === undefined ? '' : ` with id ${dep.imageID}`}`;
      throw new NotFoundError(`image ${dependent}: dependency ${what} is not in the store`, {
        suggestions: [`tspod fetch ${dep.imageName}${labels === '' ? '' : `,${labels}`}`],
      });
    }
    return match;
  }

  manifestBytes(id: string): Buffer {
    try {
      return fs.readFileSync(manifestPath(this.layout, id));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new NotFoundError(`image ${id}: manifest missing from the store`);
      throw err;
    }
  }

  manifest(id: string): ImageManifest {
    return parseImageManifest(this.manifestBytes(id), `image manifest of ${id}`);
  }

  blobPath(id: string): string {
    return blobPath(this.layout, id);
  }

  openTar(id: string): Readable {
    const file = blobPath(this.layout, id);
    if (!fs.existsSync(file)) throw new NotFoundError(`image ${id}: blob missing from the store`);
    return fs.createReadStream(file, { highWaterMark: 1 << 20 });
  }

  /** Records a use of the image (render, extract, export, run) for `image gc`. */
  async touch(id: string): Promise<void> {
    await withLock(this.sys, imageLockPath(this.layout, id), 'exclusive', () => {
      const record = readRecord(this.layout, id);
      if (record !== undefined) writeRecord(this.sys, this.layout, { ...record, lastUsed: this.now().toISOString() });
    });
  }

  /**
   * Removes an image: record first (it stops being listed), then manifest and blob. Rendered
   * trees are separate copies, so a pod that uses one is never broken by this; trees of the
   * image are removed by the caller or left for `image gc` while in use.
   */
  async removeImage(id: string): Promise<ImageRecord> {
    return withLock(this.sys, imageLockPath(this.layout, id), 'exclusive', () => {
      const record = readRecord(this.layout, id);
      if (record === undefined) throw new NotFoundError(`image ${id}: not in the store`);
      fs.rmSync(recordPath(this.layout, id));
      this.sys.fsyncPath(this.layout.images);
      fs.rmSync(manifestPath(this.layout, id), { force: true });
      fs.rmSync(blobPath(this.layout, id), { force: true });
      return record;
    });
  }
}
