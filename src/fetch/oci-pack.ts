// Packing an applied OCI tree as an ACI (`manifest` + `rootfs/`, appc spec/aci.md "Image
// Archives") straight into a file of the store's tmp area, hashed (sha512: the image id) while it
// is written, so the store can commit it without reading it again.
//
// The archive is POSIX pax/ustar (POSIX.1-2001 `pax` format): a ustar header per entry, preceded
// by an `x` extended header when a name, link target, size or owner does not fit ustar's fields.
// Entries come in sorted order and directories carry the image's creation time, so the same tree
// always gives the same bytes and the same image id. Modes, owners, symlinks and hardlinks are
// kept; the safe extractor refused devices unless privileged; sockets and FIFOs carry no content
// and are skipped. Directory times in the tree are set to the archive's, so the tree equals what
// extracting the archive gives and the store can keep it as the rendered tree (adoptTree). The tree is read synchronously through one large buffer: for ~10k files the
// cost is the system calls (lstat, open, read, close per file), not a stream per file. Writing
// the archive and its sha512 run on a worker thread (each filled 4 MiB buffer is transferred to
// it and comes back for reuse), so they take a second core instead of the main thread's time.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Worker } from 'node:worker_threads';

import type { OciImageConfig } from '../oci/convert.js';
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

const BLOCK = 512;
const BUFFER_SIZE = 4 << 20;
// ustar numeric fields hold octal digits and a terminator.
const MAX_OCTAL_11 = 0o77777777777;
const MAX_OCTAL_7 = 0o7777777;

const TYPE = { file: 0x30, link: 0x31, symlink: 0x32, char: 0x33, block: 0x34, directory: 0x35, pax: 0x78 } as const;

interface Header {
  name: string;
  type: number;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  linkname?: string;
  devmajor?: number;
  devminor?: number;
}

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
class ArchiveSink {
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

/** Builds the archive in buffers that the sink writes and hashes in order. */
class TarWriter {
  // After each flush the filled buffer goes to the sink thread and another is taken.
  private buf: Buffer;
  private used = 0;
  size = 0;

  constructor(private readonly sink: ArchiveSink) {
    this.buf = sink.take();
  }

  private flush(): void {
    if (this.used === 0) return;
    this.size += this.used;
    this.sink.update(this.buf, this.used);
    this.buf = this.sink.take();
    this.used = 0;
  }

  private room(n: number): void {
    if (this.used + n > this.buf.length) this.flush();
  }

  private padTo512(): void {
    const pad = (BLOCK - (this.used % BLOCK)) % BLOCK;
    this.room(pad);
    this.buf.fill(0, this.used, this.used + pad);
    this.used += pad;
  }

  header(h: Header): void {
    const name = Buffer.from(h.name);
    const link = h.linkname === undefined ? undefined : Buffer.from(h.linkname);
    const pax: string[] = [];
    if (name.length > 100) pax.push(paxRecord('path', h.name));
    if (link !== undefined && link.length > 100) pax.push(paxRecord('linkpath', h.linkname!));
    if (h.size > MAX_OCTAL_11) pax.push(paxRecord('size', String(h.size)));
    if (h.uid > MAX_OCTAL_7) pax.push(paxRecord('uid', String(h.uid)));
    if (h.gid > MAX_OCTAL_7) pax.push(paxRecord('gid', String(h.gid)));
    if (pax.length > 0) {
      const body = Buffer.from(pax.join(''));
      this.block({ name: 'PaxHeader', type: TYPE.pax, mode: 0o644, uid: 0, gid: 0, size: body.length, mtime: h.mtime }, Buffer.from('PaxHeader'), undefined);
      this.write(body);
      this.padTo512();
    }
    this.block(h, name, link);
  }

  private block(h: Header, name: Buffer, link: Buffer | undefined): void {
    this.room(BLOCK);
    const b = this.buf.subarray(this.used, this.used + BLOCK);
    b.fill(0);
    name.copy(b, 0, 0, Math.min(name.length, 100));
    octal(b, 100, 8, h.mode & 0o7777);
    octal(b, 108, 8, Math.min(h.uid, MAX_OCTAL_7));
    octal(b, 116, 8, Math.min(h.gid, MAX_OCTAL_7));
    octal(b, 124, 12, Math.min(h.size, MAX_OCTAL_11));
    octal(b, 136, 12, Math.max(0, Math.min(h.mtime, MAX_OCTAL_11)));
    b[156] = h.type;
    if (link !== undefined) link.copy(b, 157, 0, Math.min(link.length, 100));
    b.write('ustar\u000000', 257, 'latin1');
    if (h.devmajor !== undefined) octal(b, 329, 8, h.devmajor);
    if (h.devminor !== undefined) octal(b, 337, 8, h.devminor);
    // Checksum: the sum of the header bytes with the checksum field as 8 spaces (POSIX ustar).
    b.fill(0x20, 148, 156);
    let sum = 0;
    for (let i = 0; i < BLOCK; i++) sum += b[i]!;
    b.write(`${sum.toString(8).padStart(6, '0')}\u0000 `, 148, 'latin1');
    this.used += BLOCK;
  }

  write(data: Buffer): void {
    let off = 0;
    while (off < data.length) {
      this.room(1);
      const n = Math.min(data.length - off, this.buf.length - this.used);
      data.copy(this.buf, this.used, off, off + n);
      this.used += n;
      off += n;
    }
  }

  /** Copies `size` bytes of the open file `src` into the archive, then pads to a block. */
  body(src: number, size: number, what: string): void {
    let left = size;
    while (left > 0) {
      this.room(1);
      const n = fs.readSync(src, this.buf, this.used, Math.min(left, this.buf.length - this.used), null);
      if (n === 0) throw new Error(`pack ${what}: the file shrank while it was packed`);
      this.used += n;
      left -= n;
    }
    this.padTo512();
  }

  /** Two zero blocks end the archive. */
  end(): void {
    this.room(2 * BLOCK);
    this.buf.fill(0, this.used, this.used + 2 * BLOCK);
    this.used += 2 * BLOCK;
    this.flush();
  }
}

function octal(b: Buffer, offset: number, length: number, value: number): void {
  b.write(`${Math.floor(value).toString(8).padStart(length - 1, '0')}\u0000`, offset, 'latin1');
}

/** A pax record: "<len> <key>=<value>\n", len counting the whole record in bytes. */
function paxRecord(key: string, value: string): string {
  const rest = ` ${key}=${value}\n`;
  const restBytes = Buffer.byteLength(rest);
  let len = restBytes + String(restBytes).length;
  if (String(len).length + restBytes !== len) len = restBytes + String(len).length;
  return `${len}${rest}`;
}

/**
 * Writes `manifest` and the tree under `rootfs` as an ACI into a new file of `tmpDir` (fsynced).
 * The file is removed when packing fails.
 */
export async function writeAci(manifestBytes: Buffer, rootfs: string, created: Date, tmpDir: string, sys: Pick<Syscalls, 'fsyncPath'>): Promise<PackedAci> {
  const tmpTarPath = path.join(tmpDir, `aci-${crypto.randomBytes(8).toString('hex')}.tar`);
  const fd = fs.openSync(tmpTarPath, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o600);
  const sink = new ArchiveSink(fd);
  try {
    const tar = new TarWriter(sink);
    const createdSec = Math.floor(created.getTime() / 1000);
    tar.header({ name: 'manifest', type: TYPE.file, mode: 0o644, uid: 0, gid: 0, size: manifestBytes.length, mtime: createdSec });
    tar.write(manifestBytes);
    tar.write(Buffer.alloc((BLOCK - (manifestBytes.length % BLOCK)) % BLOCK));
    const links = new Map<string, string>();
    const walk = async (abs: string, name: string, st: fs.Stats): Promise<void> => {
      const common = { name, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, size: 0, mtime: Math.floor(st.mtimeMs / 1000) };
      if (st.isDirectory()) {
        // A directory's mtime is the time of this extraction once a layer wrote in it (and always
        // for rootfs/): the image's creation time keeps the image id the same for every fetch of
        // the same image. Files and symlinks keep their layer mtimes.
        tar.header({ ...common, name: `${name}/`, type: TYPE.directory, mtime: createdSec });
        for (const child of fs.readdirSync(abs).sort()) {
          const childAbs = `${abs}/${child}`;
          await walk(childAbs, `${name}/${child}`, fs.lstatSync(childAbs));
        }
        // The tree gets the times the archive carries: it can serve as the image's rendered tree.
        if (st.mtimeMs !== createdSec * 1000) fs.lutimesSync(abs, createdSec, createdSec);
      } else if (st.isSymbolicLink()) {
        tar.header({ ...common, type: TYPE.symlink, linkname: fs.readlinkSync(abs) });
      } else if (st.isFile()) {
        const key = `${st.dev}:${st.ino}`;
        const first = st.nlink > 1 ? links.get(key) : undefined;
        if (first !== undefined) {
          tar.header({ ...common, type: TYPE.link, linkname: first });
          return;
        }
        if (st.nlink > 1) links.set(key, name);
        tar.header({ ...common, type: TYPE.file, size: st.size });
        const src = fs.openSync(abs, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
        try {
          tar.body(src, st.size, name);
        } finally {
          fs.closeSync(src);
        }
        await sink.ready();
      } else if (st.isCharacterDevice() || st.isBlockDevice()) {
        const rdev = st.rdev;
        tar.header({
          ...common,
          type: st.isCharacterDevice() ? TYPE.char : TYPE.block,
          devmajor: Math.floor(rdev / 256) & 0xfff,
          devminor: (rdev & 0xff) | ((Math.floor(rdev / 4096) & 0xfff00) >>> 0),
        });
      }
    };
    await walk(rootfs, 'rootfs', fs.lstatSync(rootfs));
    tar.end();
    const id = `sha512-${await sink.digest()}`;
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    sys.fsyncPath(tmpDir);
    return { id, tmpTarPath, size: tar.size };
  } catch (err) {
    await sink.stop();
    try {
      fs.closeSync(fd);
    } catch {
      // closed already
    }
    fs.rmSync(tmpTarPath, { force: true });
    throw err;
  }
}
