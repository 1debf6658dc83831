// Packing an OCI image as an ACI (`manifest` + `rootfs/`, appc spec/aci.md "Image Archives")
// straight into a file of the store's tmp area, hashed (sha512: the image id) while it is written,
// so the store can commit it without reading it again.
//
// packLayers applies the layers top-down (src/oci/merge.ts) and writes each entry into the archive
// from the bytes being extracted, in the merge's order: the top layer's entries, then what each
// lower layer adds, then `rootfs/`, the implicit directories and the hardlinks. An image the merge
// cannot reproduce is applied bottom-up instead and its tree walked in sorted order (writeAci).
// Both orders are fixed by the layers, and directories carry the image's creation time, so the
// same image always gives the same bytes and the same image id. The tree's directories get that
// time too, so the tree equals what extracting the archive gives and the store can keep it as the
// rendered tree (adoptTree).
//
// The archive is POSIX pax (src/image/tar-writer.ts). Modes, owners, xattrs, symlinks, hardlinks,
// devices and FIFOs are kept as the extractor made them.
// Writing the archive and its sha512 run on a worker thread (each filled 4 MiB buffer is
// transferred to it and comes back for reuse), so they take a second core instead of the main
// thread's time.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Worker } from 'node:worker_threads';

import type { EntryType, ExtractRecorder, RecordedEntry } from '../image/extract.js';
import { TarWriter, treeXattrs, TYPE, type TarSink, type XattrSyscalls } from '../image/tar-writer.js';
import type { OciImageConfig } from '../oci/convert.js';
import { applyLayers, type ApplyLayersOptions, type LayerSource } from '../oci/layers.js';
import { mergeLayers, MergeFallback, type MergeResult } from '../oci/merge.js';
import type { Syscalls } from '../sys/types.js';

/** The config's `created` (RFC 3339), or the epoch: a fixed time for what the layers do not date. */
export function createdOf(config: OciImageConfig): Date {
  const created = config.created === undefined ? Number.NaN : Date.parse(config.created);
  return new Date(Number.isNaN(created) ? 0 : created);
}

export interface PackedAci {
  /** `sha512-<hex>` of the whole archive. */
  id: string;
  /** The archive, fsynced, in `tmpDir`; the caller commits or removes it. */
  tmpTarPath: string;
  size: number;
}

const BUFFER_SIZE = 4 << 20;

// CommonJS (an eval'd worker): writes every buffer it is sent to the archive's fd (shared by the
// threads of the process), hashes it, and sends it back for reuse; on `null`, the hex digest. A
// write error ends the thread with that error.
const SINK_WORKER = `
const fs = require('node:fs');
const { parentPort, workerData } = require('node:worker_threads');
const hash = require('node:crypto').createHash('sha512');
parentPort.on('message', (m) => {
  if (m === null) { parentPort.postMessage(hash.digest('hex')); parentPort.close(); return; }
  const bytes = new Uint8Array(m.buffer, 0, m.length);
  for (let done = 0; done < m.length; ) done += fs.writeSync(workerData.fd, bytes, done, m.length - done);
  hash.update(bytes);
  parentPort.postMessage(m.buffer, [m.buffer]);
});`;

/** Buffers in rotation between the packer and the sink thread. */
const POOL_SIZE = 4;

/**
 * The archive's writer and hasher, on a worker thread: writing (page allocation and copying into
 * the file) and sha512 cost about as much as reading the tree, so the main thread only reads and
 * the two halves run on two cores. Full buffers are transferred to it (not copied) and come back
 * once written and hashed: a few buffers rotate, so no memory is copied or faulted in per flush.
 */
class ArchiveSink implements TarSink {
  private readonly worker: Worker;
  private readonly result: Promise<string>;
  private readonly free: ArrayBuffer[] = [];
  private allocated = 0;
  private inFlight = 0;
  private failure: unknown;
  private wake: (() => void) | undefined;

  constructor(fd: number) {
    this.worker = new Worker(SINK_WORKER, { eval: true, workerData: { fd } });
    this.result = new Promise<string>((resolve, reject) => {
      this.worker.on('message', (m: string | ArrayBuffer) => {
        if (typeof m === 'string') {
          resolve(m);
          return;
        }
        this.inFlight -= 1;
        this.free.push(m);
        this.wake?.();
      });
      const fail = (err: unknown): void => {
        this.failure ??= err;
        reject(err as Error);
        this.wake?.();
      };
      this.worker.once('error', fail);
      this.worker.once('exit', (code) => fail(new Error(`the archive writing thread exited (${code}) before its digest`)));
    });
    this.result.catch(() => {});
  }

  /** A buffer to fill: a returned one, else a new one. */
  take(): Buffer {
    const buffer = this.free.pop();
    if (buffer !== undefined) return Buffer.from(buffer);
    this.allocated += 1;
    return Buffer.allocUnsafeSlow(BUFFER_SIZE);
  }

  /** Hands over the first `length` bytes of `buf` (written, then hashed), which the caller must not touch again. */
  update(buf: Buffer, length: number): void {
    const buffer = buf.buffer as ArrayBuffer;
    this.inFlight += 1;
    this.worker.postMessage({ buffer, length }, [buffer]);
  }

  /** Waits while every buffer of the pool is in the thread (lets it catch up); throws its failure. */
  async ready(): Promise<void> {
    while (this.failure === undefined && this.free.length === 0 && this.allocated >= POOL_SIZE && this.inFlight > 0) {
      await new Promise<void>((resolve) => (this.wake = resolve));
      this.wake = undefined;
    }
    if (this.failure !== undefined) throw this.failure;
  }

  /** The digest, once everything handed over is written. */
  async digest(): Promise<string> {
    this.worker.postMessage(null);
    return this.result;
  }

  /** Ends the thread; resolves once it can no longer write to the fd (which may then be closed). */
  async stop(): Promise<void> {
    await this.worker.terminate().catch(() => {});
  }
}

/**
 * An ACI being written into a new file of the store's tmp area: the manifest first, then the
 * entries under `rootfs/` as an extraction records them (extract.ts ExtractRecorder) or as a walk
 * of a tree finds them. Directories carry the image's creation time; files, symlinks and devices
 * their own. `close()` ends, hashes and fsyncs the archive; `discard()` removes it.
 */
export class AciWriter implements ExtractRecorder {
  private readonly tar: TarWriter;
  private readonly createdSec: number;

  private constructor(
    private readonly fd: number,
    readonly tmpTarPath: string,
    private readonly sink: ArchiveSink,
    private readonly tmpDir: string,
    private readonly sys: Pick<Syscalls, 'fsyncPath'>,
    manifestBytes: Buffer,
    created: Date,
  ) {
    this.tar = new TarWriter(sink);
    this.createdSec = Math.floor(created.getTime() / 1000);
    this.tar.header({ name: 'manifest', type: TYPE.file, mode: 0o644, uid: 0, gid: 0, size: manifestBytes.length, mtime: this.createdSec });
    this.tar.write(manifestBytes);
    this.tar.padTo512();
  }

  static open(manifestBytes: Buffer, created: Date, tmpDir: string, sys: Pick<Syscalls, 'fsyncPath'>): AciWriter {
    const tmpTarPath = path.join(tmpDir, `aci-${crypto.randomBytes(8).toString('hex')}.tar`);
    const fd = fs.openSync(tmpTarPath, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o600);
    return new AciWriter(fd, tmpTarPath, new ArchiveSink(fd), tmpDir, sys, manifestBytes, created);
  }

  /** The entry of `rel` (relative to rootfs; '' is rootfs itself). */
  entry(rel: string, type: EntryType, meta: RecordedEntry): void {
    const name = rel === '' ? 'rootfs' : `rootfs/${rel}`;
    const common = { name, mode: meta.mode & 0o7777, uid: meta.uid, gid: meta.gid, size: 0, mtime: meta.mtime, ...(meta.xattrs === undefined ? {} : { xattrs: meta.xattrs }) };
    switch (type) {
      case 'directory':
        // A directory's mtime is the time of the extraction once an entry was written in it: the
        // image's creation time keeps the image id the same for every fetch of the same image.
        this.tar.header({ ...common, name: `${name}/`, type: TYPE.directory, mtime: this.createdSec });
        return;
      case 'file':
        this.tar.header({ ...common, type: TYPE.file, size: meta.size });
        return;
      case 'symlink':
        this.tar.header({ ...common, type: TYPE.symlink, linkname: meta.symlink ?? '' });
        return;
      case 'character-device':
      case 'block-device':
        this.tar.header({ ...common, type: type === 'character-device' ? TYPE.char : TYPE.block, devmajor: meta.devmajor ?? 0, devminor: meta.devminor ?? 0 });
        return;
      case 'fifo':
        this.tar.header({ ...common, type: TYPE.fifo });
        return;
      case 'link':
        throw new Error('pack: hardlinks are written with link()');
    }
  }

  data(chunk: Buffer): void {
    this.tar.write(chunk);
  }

  entryEnd(): void {
    this.tar.padTo512();
  }

  /** `rel` as a hardlink of `linkRel`, which the archive already holds. */
  link(rel: string, linkRel: string, st: fs.Stats): void {
    this.tar.header({ name: `rootfs/${rel}`, type: TYPE.link, linkname: `rootfs/${linkRel}`, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, size: 0, mtime: Math.floor(st.mtimeMs / 1000) });
  }

  /** Copies `size` bytes of the open file `src` as the body of the entry just written. */
  body(src: number, size: number, what: string): void {
    this.tar.body(src, size, what);
  }

  /** Resolves once the writing thread has a buffer free: awaited between chunks, it bounds the memory in flight. */
  readonly pace = (): Promise<void> => this.sink.ready();

  /** The image's creation time, in seconds: what the tree's directories get. */
  get directoryTime(): number {
    return this.createdSec;
  }

  /** Ends the archive, waits for its digest and fsyncs it. */
  async close(): Promise<PackedAci> {
    this.tar.end();
    const id = `sha512-${await this.sink.digest()}`;
    fs.fsyncSync(this.fd);
    fs.closeSync(this.fd);
    this.sys.fsyncPath(this.tmpDir);
    return { id, tmpTarPath: this.tmpTarPath, size: this.tar.size };
  }

  /** Stops the writing thread and removes the file. */
  async discard(): Promise<void> {
    await this.sink.stop();
    try {
      fs.closeSync(this.fd);
    } catch {
      // closed already
    }
    fs.rmSync(this.tmpTarPath, { force: true });
  }
}

/** What packing a tree reads besides its files: the fsync of the tmp dir, the entries' xattrs. */
export type TreeSyscalls = Pick<Syscalls, 'fsyncPath'> & XattrSyscalls;

/**
 * Writes `manifest` and the tree under `rootfs` as an ACI into a new file of `tmpDir` (fsynced),
 * walking the tree in sorted order. The file is removed when packing fails.
 */
export async function writeAci(manifestBytes: Buffer, rootfs: string, created: Date, tmpDir: string, sys: TreeSyscalls): Promise<PackedAci> {
  const aci = AciWriter.open(manifestBytes, created, tmpDir, sys);
  try {
    const createdSec = aci.directoryTime;
    const links = new Map<string, string>();
    const walk = async (abs: string, rel: string, st: fs.Stats): Promise<void> => {
      const meta: RecordedEntry = { mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, size: 0, mtime: Math.floor(st.mtimeMs / 1000), ...treeXattrs(sys, abs) };
      if (st.isDirectory()) {
        aci.entry(rel, 'directory', meta);
        for (const child of fs.readdirSync(abs).sort()) {
          const childAbs = `${abs}/${child}`;
          await walk(childAbs, rel === '' ? child : `${rel}/${child}`, fs.lstatSync(childAbs));
        }
        // The tree gets the times the archive carries: it can serve as the image's rendered tree.
        if (st.mtimeMs !== createdSec * 1000) fs.lutimesSync(abs, createdSec, createdSec);
      } else if (st.isSymbolicLink()) {
        aci.entry(rel, 'symlink', { ...meta, symlink: fs.readlinkSync(abs) });
      } else if (st.isFile()) {
        const key = `${st.dev}:${st.ino}`;
        const first = st.nlink > 1 ? links.get(key) : undefined;
        if (first !== undefined) {
          aci.link(rel, first, st);
          return;
        }
        if (st.nlink > 1) links.set(key, rel);
        aci.entry(rel, 'file', { ...meta, size: st.size });
        const src = fs.openSync(abs, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
        try {
          aci.body(src, st.size, rel);
        } finally {
          fs.closeSync(src);
        }
        await aci.pace();
      } else if (st.isCharacterDevice() || st.isBlockDevice()) {
        const rdev = st.rdev;
        aci.entry(rel, st.isCharacterDevice() ? 'character-device' : 'block-device', {
          ...meta,
          devmajor: Math.floor(rdev / 256) & 0xfff,
          devminor: (rdev & 0xff) | ((Math.floor(rdev / 4096) & 0xfff00) >>> 0),
        });
      } else if (st.isFIFO()) {
        aci.entry(rel, 'fifo', meta);
      }
    };
    await walk(rootfs, '', fs.lstatSync(rootfs));
    return await aci.close();
  } catch (err) {
    await aci.discard();
    throw err;
  }
}

/**
 * Ends the ACI of a merge (src/oci/merge.ts) whose entries `aci` recorded as they were extracted:
 * adds `rootfs/`, the implicit directories and the hardlinks (as the tree has them now), gives the
 * tree's directories the archive's time (so the tree equals what extracting the archive gives and
 * the store can keep it as the rendered tree, adoptTree), and closes the archive.
 */
export async function finishMergedAci(aci: AciWriter, rootfs: string, merge: MergeResult, sys: TreeSyscalls): Promise<PackedAci> {
  const meta = (st: fs.Stats): RecordedEntry => ({ mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, size: 0, mtime: 0 });
  // The root's xattrs come from the tree, as writeAci's walk reads them (a layer's `./` entry may carry some).
  aci.entry('', 'directory', { ...meta(fs.lstatSync(rootfs)), ...treeXattrs(sys, rootfs) });
  for (const rel of merge.implicit) aci.entry(rel, 'directory', meta(fs.lstatSync(`${rootfs}/${rel}`)));
  for (const [rel, linkRel] of merge.links) aci.link(rel, linkRel, fs.lstatSync(`${rootfs}/${rel}`));
  const time = aci.directoryTime;
  for (const rel of merge.directories) fs.lutimesSync(rel === '' ? rootfs : `${rootfs}/${rel}`, time, time);
  return aci.close();
}

/**
 * Applies `layers` onto `rootfs` (an empty directory) and packs the result as an ACI in `tmpDir`:
 * top-down with the archive written from the extracted bytes (src/oci/merge.ts), or, for an image
 * the merge cannot reproduce, bottom-up into a fresh `rootfs` and packed from a walk of the tree.
 * Either way the same image always gives the same archive.
 */
export async function packLayers(rootfs: string, layers: readonly LayerSource[], manifestBytes: Buffer, created: Date, tmpDir: string, options: ApplyLayersOptions): Promise<PackedAci> {
  const aci = AciWriter.open(manifestBytes, created, tmpDir, options.sys);
  try {
    const merged = await mergeLayers(rootfs, layers, { ...options, recorder: aci, pace: aci.pace });
    return await finishMergedAci(aci, rootfs, merged, options.sys);
  } catch (err) {
    await aci.discard();
    if (!(err instanceof MergeFallback)) throw err;
  }
  fs.rmSync(rootfs, { recursive: true, force: true });
  fs.mkdirSync(rootfs, { mode: 0o755 });
  await applyLayers(rootfs, layers, options);
  return writeAci(manifestBytes, rootfs, created, tmpDir, options.sys);
}
