// The archives tspod writes (the ACI of an OCI image: src/fetch/oci-pack.ts; the layer of `image
// export`: src/oci/export.ts), in the POSIX.1-2001 pax format: a ustar header per entry, preceded
// by an `x` extended header when a name, link target, size or owner does not fit ustar's fields,
// or when the entry has extended attributes (`SCHILY.xattr.NAME` records, the spelling GNU tar,
// libarchive and OCI layers use; values are bytes). tar-entry.ts reads them back.
import fs from 'node:fs';

import type { Syscalls } from '../sys/types.js';

export const BLOCK = 512;
// ustar numeric fields hold octal digits and a terminator.
const MAX_OCTAL_11 = 0o77777777777;
const MAX_OCTAL_7 = 0o7777777;

export const TYPE = { file: 0x30, link: 0x31, symlink: 0x32, char: 0x33, block: 0x34, directory: 0x35, fifo: 0x36, pax: 0x78 } as const;

export interface TarWriteHeader {
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
  /** As `SCHILY.xattr.NAME` pax records, the spelling GNU tar, libarchive and the OCI layers use. */
  xattrs?: ReadonlyMap<string, Buffer>;
}


/**
 * Where a TarWriter's bytes go: `take` lends it an empty buffer to fill, `update` hands back the
 * first `length` bytes of a filled one, which the writer does not touch again.
 */
export interface TarSink {
  take(): Buffer;
  update(buf: Buffer, length: number): void;
}

/** Builds an archive in the sink's buffers, synchronously; the sink writes (and hashes) them in order. */
export class TarWriter {
  // After each flush the filled buffer goes to the sink thread and another is taken.
  private buf: Buffer;
  private used = 0;
  size = 0;

  constructor(private readonly sink: TarSink) {
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

  padTo512(): void {
    const pad = (BLOCK - (this.used % BLOCK)) % BLOCK;
    this.room(pad);
    this.buf.fill(0, this.used, this.used + pad);
    this.used += pad;
  }

  header(h: TarWriteHeader): void {
    const name = Buffer.from(h.name);
    const link = h.linkname === undefined ? undefined : Buffer.from(h.linkname);
    const pax: Buffer[] = [];
    if (name.length > 100) pax.push(paxRecord('path', name));
    if (link !== undefined && link.length > 100) pax.push(paxRecord('linkpath', link));
    if (h.size > MAX_OCTAL_11) pax.push(paxRecord('size', String(h.size)));
    if (h.uid > MAX_OCTAL_7) pax.push(paxRecord('uid', String(h.uid)));
    if (h.gid > MAX_OCTAL_7) pax.push(paxRecord('gid', String(h.gid)));
    // Sorted by name: the same attributes always give the same bytes, hence the same image id.
    pax.push(...xattrPaxRecords(h.xattrs));
    if (pax.length > 0) {
      const body = Buffer.concat(pax);
      this.block({ name: 'PaxHeader', type: TYPE.pax, mode: 0o644, uid: 0, gid: 0, size: body.length, mtime: h.mtime }, Buffer.from('PaxHeader'), undefined);
      this.write(body);
      this.padTo512();
    }
    this.block(h, name, link);
  }

  private block(h: TarWriteHeader, name: Buffer, link: Buffer | undefined): void {
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
    octal(b, 148, 7, sum);
    b[155] = 0x20;
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

/** `value` as length-1 octal digits and a NUL, written digit by digit (a string per field costs more for ~10k entries). */
function octal(b: Buffer, offset: number, length: number, value: number): void {
  let v = Math.floor(value);
  b[offset + length - 1] = 0;
  for (let i = offset + length - 2; i >= offset; i -= 1) {
    b[i] = 0x30 + (v % 8);
    v = Math.floor(v / 8);
  }
}

/** A pax record: "<len> <key>=<value>\n", len counting the whole record in bytes; a value may be binary (xattrs). */
function paxRecord(key: string, value: string | Buffer): Buffer {
  const rest = Buffer.concat([Buffer.from(` ${key}=`), typeof value === 'string' ? Buffer.from(value) : value, Buffer.from('\n')]);
  let len = rest.length + String(rest.length).length;
  if (String(len).length + rest.length !== len) len = rest.length + String(len).length;
  return Buffer.concat([Buffer.from(String(len)), rest]);
}

/** The `SCHILY.xattr.NAME` records of `xattrs`, sorted by name: the same attributes always give the same bytes. */
function xattrPaxRecords(xattrs: ReadonlyMap<string, Buffer> | undefined): Buffer[] {
  return [...(xattrs?.keys() ?? [])].sort().map((name) => paxRecord(`SCHILY.xattr.${name}`, xattrs!.get(name)!));
}

export type XattrSyscalls = Pick<Syscalls, 'llistxattr' | 'lgetxattr'>;

/**
 * The xattrs of a tree entry (not of a symlink's target), as `{ xattrs }` or `{}`.
 * security.selinux is left out: it is the label this host's policy gave the file, not part of
 * the image.
 */
export function treeXattrs(sys: XattrSyscalls, abs: string): { xattrs?: Map<string, Buffer> } {
  const names = sys.llistxattr(abs).filter((name) => name !== 'security.selinux');
  if (names.length === 0) return {};
  const xattrs = new Map<string, Buffer>();
  for (const name of names) {
    const value = sys.lgetxattr(abs, name);
    if (value !== undefined) xattrs.set(name, value);
  }
  return { xattrs };
}
