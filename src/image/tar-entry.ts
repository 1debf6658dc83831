// A strict, push-based tar reader for safe extraction: ustar, GNU (longname/longlink) and PAX
// headers, with names and xattr values kept as RAW BYTES so the caller can refuse invalid UTF-8
// and NUL bytes (tar-stream decodes PAX records as lossy UTF-8, which would turn a hostile name
// into U+FFFD silently). It never allocates an entry's claimed size: bodies are handed on in the
// slices that arrived, so a header claiming 2^40 bytes over a short body costs nothing.
// Parsing is synchronous per pushed chunk, so the extractor can write bodies with sync fs calls.

/** Raised for malformed archives; the extractor turns it into an ImageFormatError. */
export class TarFormatError extends Error {
  /** The raw name of the entry being read, when one is known. */
  readonly entryName: Buffer | undefined;
  constructor(message: string, entryName?: Buffer) {
    super(message);
    this.name = 'TarFormatError';
    this.entryName = entryName;
  }
}

/** Typeflags (POSIX ustar, GNU extensions), by their kernel-ish single-character spellings. */
export const TYPEFLAG = {
  REGTYPE: 0x30, // '0'
  AREGTYPE: 0x00, // '\0', old regular file
  LNKTYPE: 0x31, // '1'
  SYMTYPE: 0x32, // '2'
  CHRTYPE: 0x33, // '3'
  BLKTYPE: 0x34, // '4'
  DIRTYPE: 0x35, // '5'
  FIFOTYPE: 0x36, // '6'
  CONTTYPE: 0x37, // '7', contiguous file: a regular file everywhere that matters
  XHDTYPE: 0x78, // 'x', PAX extended header for the next entry
  XGLTYPE: 0x67, // 'g', PAX global header
  GNU_LONGNAME: 0x4c, // 'L'
  GNU_LONGLINK: 0x4b, // 'K'
} as const;

export interface TarHeader {
  /** Raw name bytes after PAX `path` / GNU longname / ustar prefix are applied. */
  name: Buffer;
  /** Raw link target bytes (hardlinks and symlinks), empty otherwise. */
  linkname: Buffer;
  typeflag: number;
  mode: number;
  uid: number;
  gid: number;
  /** Bytes of body that follow (after PAX `size`). */
  size: number;
  /** Seconds since the epoch, possibly fractional (PAX mtime). */
  mtime: number;
  devmajor: number;
  devminor: number;
  /** `SCHILY.xattr.<name>` PAX records: name -> raw value. */
  xattrs: Map<string, Buffer>;
  /** Byte offset of this entry's (first) header in the archive, for messages. */
  offset: number;
}

export interface TarVisitor {
  /** A header was read; `size` bytes of body follow through `data`, then `entryEnd`. */
  entry(header: TarHeader): void;
  data(chunk: Buffer): void;
  entryEnd(): void;
}

export interface TarReaderLimits {
  /** Largest PAX / GNU long-name body accepted (they are buffered in memory). */
  maxMetaSize: number;
}

const BLOCK = 512;
const ZERO_BLOCK_SUM = 8 * 0x20; // the checksum of an all-zero header with its field as spaces

type State = 'header' | 'meta' | 'body' | 'padding' | 'end';

interface PendingMeta {
  path?: Buffer;
  linkpath?: Buffer;
  size?: number;
  uid?: number;
  gid?: number;
  mtime?: number;
  xattrs: Map<string, Buffer>;
  offset: number;
}

export class TarReader {
  private state: State = 'header';
  /** Bytes of a partial header or meta body carried between pushes. */
  private carry: Buffer[] = [];
  private carried = 0;
  /** Bytes still expected in the current body / meta / padding. */
  private remaining = 0;
  private padding = 0;
  private offset = 0;
  private metaType = 0;
  private pending: PendingMeta | undefined;
  private current: TarHeader | undefined;
  private zeroBlocks = 0;

  constructor(
    private readonly visitor: TarVisitor,
    private readonly limits: TarReaderLimits,
  ) {}

  /** Feeds the next bytes of the archive; visitor callbacks run synchronously inside. */
  push(chunk: Buffer): void {
    let pos = 0;
    while (pos < chunk.length) {
      switch (this.state) {
        case 'end':
          // Trailing bytes after the end-of-archive marker (record padding) are ignored, as tar does.
          this.offset += chunk.length - pos;
          return;
        case 'header':
        case 'meta': {
          const need = (this.state === 'header' ? BLOCK : this.remaining) - this.carried;
          const take = Math.min(need, chunk.length - pos);
          const piece = chunk.subarray(pos, pos + take);
          pos += take;
          if (take === need && this.carried === 0) {
            this.complete(piece);
          } else {
            this.carry.push(piece);
            this.carried += take;
            if (take === need) {
              const whole = Buffer.concat(this.carry, this.carried);
              this.carry = [];
              this.carried = 0;
              this.complete(whole);
            }
          }
          break;
        }
        case 'body': {
          const take = Math.min(this.remaining, chunk.length - pos);
          this.visitor.data(chunk.subarray(pos, pos + take));
          pos += take;
          this.remaining -= take;
          this.offset += take;
          if (this.remaining === 0) this.finishBody();
          break;
        }
        case 'padding': {
          const take = Math.min(this.padding, chunk.length - pos);
          pos += take;
          this.padding -= take;
          this.offset += take;
          if (this.padding === 0) this.state = 'header';
          break;
        }
      }
    }
  }

  /** The input ended: anything but a block boundary between entries is a truncated archive. */
  end(): void {
    if (this.state === 'end' || (this.state === 'header' && this.carried === 0 && this.pending === undefined)) return;
    const where =
      this.state === 'body' || this.state === 'padding'
        ? `in the body of this entry (${this.remaining + this.padding} bytes missing)`
        : this.state === 'meta'
          ? 'in an extended header'
          : this.pending !== undefined
            ? 'after an extended header, before its entry'
            : `in a header at byte ${this.offset}`;
    throw new TarFormatError(`archive truncated ${where}`, this.current?.name ?? this.pending?.path);
  }

  private complete(buf: Buffer): void {
    if (this.state === 'header') {
      this.offset += BLOCK;
      this.onHeader(buf);
    } else {
      this.offset += buf.length;
      this.onMeta(buf);
    }
  }

  private finishBody(): void {
    this.visitor.entryEnd();
    this.current = undefined;
    this.state = this.padding > 0 ? 'padding' : 'header';
  }

  private onHeader(block: Buffer): void {
    const headerOffset = this.offset - BLOCK;
    if (isZeroBlock(block)) {
      // Two zero blocks end the archive; a lone one followed by EOF is accepted (GNU tar warns only).
      if (this.pending !== undefined) throw new TarFormatError('archive ends after an extended header, before its entry', this.pending.path);
      this.zeroBlocks += 1;
      if (this.zeroBlocks >= 2) this.state = 'end';
      return;
    }
    if (this.zeroBlocks > 0) throw new TarFormatError(`a lone zero block at byte ${headerOffset - BLOCK} is followed by more headers`);
    const rawName = cString(block, 0, 100);
    const stored = parseNumber(block, 148, 8, 'checksum', rawName);
    const [unsigned, signed] = checksums(block);
    if (stored !== unsigned && stored !== signed) {
      throw new TarFormatError(`bad header checksum at byte ${headerOffset} (stored ${stored}, computed ${unsigned})`, rawName);
    }
    const magic = block.toString('latin1', 257, 263);
    const version = block.toString('latin1', 263, 265);
    const isUstar = magic === 'ustar\0' && version === '00';
    const isGnu = magic === 'ustar ' && version === ' \0';
    // V7 archives carry no magic; anything else with a valid checksum is a format we do not know.
    if (!isUstar && !isGnu && !block.subarray(257, 265).every((b) => b === 0)) {
      throw new TarFormatError(`unknown tar format at byte ${headerOffset}`, rawName);
    }
    let name = rawName;
    if (isUstar && block[345] !== 0) name = Buffer.concat([cString(block, 345, 155), Buffer.from('/'), rawName]);
    let typeflag = block[156] ?? 0;
    const size = parseNumber(block, 124, 12, 'size', name);

    if (typeflag === TYPEFLAG.XHDTYPE || typeflag === TYPEFLAG.XGLTYPE || typeflag === TYPEFLAG.GNU_LONGNAME || typeflag === TYPEFLAG.GNU_LONGLINK) {
      if (size > this.limits.maxMetaSize) {
        throw new TarFormatError(`extended header of ${size} bytes exceeds the limit of ${this.limits.maxMetaSize}`, name);
      }
      this.pending ??= { xattrs: new Map(), offset: headerOffset };
      this.metaType = typeflag;
      this.remaining = size;
      this.padding = padOf(size);
      if (size === 0) this.onMeta(Buffer.alloc(0));
      else this.state = 'meta';
      return;
    }

    const pending = this.pending;
    this.pending = undefined;
    if ((typeflag === TYPEFLAG.AREGTYPE || typeflag === TYPEFLAG.REGTYPE) && name.length > 0 && name[name.length - 1] === 0x2f) {
      // Pre-POSIX archives mark directories with a trailing slash on a regular-file typeflag.
      typeflag = TYPEFLAG.DIRTYPE;
    }
    const header: TarHeader = {
      name: pending?.path ?? name,
      linkname: pending?.linkpath ?? cString(block, 157, 100),
      typeflag,
      mode: parseNumber(block, 100, 8, 'mode', name) & 0o7777,
      uid: pending?.uid ?? parseNumber(block, 108, 8, 'uid', name),
      gid: pending?.gid ?? parseNumber(block, 116, 8, 'gid', name),
      size: pending?.size ?? size,
      mtime: pending?.mtime ?? parseNumber(block, 136, 12, 'mtime', name, true),
      devmajor: isUstar || isGnu ? parseNumber(block, 329, 8, 'devmajor', name) : 0,
      devminor: isUstar || isGnu ? parseNumber(block, 337, 8, 'devminor', name) : 0,
      xattrs: pending?.xattrs ?? new Map(),
      offset: pending?.offset ?? headerOffset,
    };
    this.current = header;
    this.remaining = header.size;
    this.padding = padOf(header.size);
    this.visitor.entry(header);
    if (header.size === 0) this.finishBody();
    else this.state = 'body';
  }

  private onMeta(buf: Buffer): void {
    const pending = this.pending!;
    switch (this.metaType) {
      case TYPEFLAG.GNU_LONGNAME:
        pending.path = stripTrailingNuls(buf);
        break;
      case TYPEFLAG.GNU_LONGLINK:
        pending.linkpath = stripTrailingNuls(buf);
        break;
      case TYPEFLAG.XHDTYPE:
        applyPax(parsePax(buf, pending.path), pending);
        break;
      case TYPEFLAG.XGLTYPE:
        // Global records (git archive's `comment`) are validated and otherwise ignored: a global
        // path or size makes no sense for an image, and applying it silently would surprise.
        parsePax(buf, pending.path);
        break;
    }
    this.state = this.padding > 0 ? 'padding' : 'header';
  }
}

function padOf(size: number): number {
  const rest = size % BLOCK;
  return rest === 0 ? 0 : BLOCK - rest;
}

function isZeroBlock(block: Buffer): boolean {
  for (let i = 0; i < BLOCK; i += 1) if (block[i] !== 0) return false;
  return true;
}

/** The ustar checksum, unsigned (POSIX) and signed (some historic tars), with the field as spaces. */
function checksums(block: Buffer): [number, number] {
  let unsigned = ZERO_BLOCK_SUM;
  let signed = ZERO_BLOCK_SUM;
  for (let i = 0; i < BLOCK; i += 1) {
    if (i >= 148 && i < 156) continue;
    const b = block[i]!;
    unsigned += b;
    signed += b >= 0x80 ? b - 0x100 : b;
  }
  return [unsigned, signed];
}

/** A NUL-terminated field; bytes after the first NUL are padding by definition (POSIX ustar). */
function cString(block: Buffer, offset: number, length: number): Buffer {
  const end = block.indexOf(0, offset);
  return Buffer.from(block.subarray(offset, end === -1 || end > offset + length ? offset + length : end));
}

function stripTrailingNuls(buf: Buffer): Buffer {
  let end = buf.length;
  while (end > 0 && buf[end - 1] === 0) end -= 1;
  // A NUL left inside is kept so the extractor refuses the name instead of silently truncating it.
  return Buffer.from(buf.subarray(0, end));
}

/** Octal with optional leading spaces and NUL/space terminator, or GNU base-256 (high bit set). */
function parseNumber(block: Buffer, offset: number, length: number, field: string, name: Buffer, allowNegative = false): number {
  const first = block[offset]!;
  if (first & 0x80) {
    // base-256: 0x80 positive, 0xff negative (two's complement)
    const negative = first === 0xff;
    if (!negative && first !== 0x80) throw new TarFormatError(`invalid base-256 ${field} field`, name);
    if (negative && !allowNegative) throw new TarFormatError(`negative ${field} field`, name);
    let value = 0;
    for (let i = offset + 1; i < offset + length; i += 1) {
      const b = negative ? 0xff - block[i]! : block[i]!;
      value = value * 256 + b;
      if (!Number.isSafeInteger(value)) throw new TarFormatError(`${field} field is too large`, name);
    }
    return negative ? -(value + 1) : value;
  }
  let i = offset;
  const end = offset + length;
  while (i < end && block[i] === 0x20) i += 1;
  let value = 0;
  let digits = 0;
  for (; i < end; i += 1) {
    const b = block[i]!;
    if (b === 0 || b === 0x20) break;
    if (b < 0x30 || b > 0x37) throw new TarFormatError(`invalid octal ${field} field`, name);
    value = value * 8 + (b - 0x30);
    digits += 1;
  }
  // Only terminators may follow the digits.
  for (; i < end; i += 1) {
    const b = block[i]!;
    if (b !== 0 && b !== 0x20) throw new TarFormatError(`invalid octal ${field} field`, name);
  }
  if (digits === 0 && field === 'checksum') throw new TarFormatError('missing header checksum', name);
  return value;
}

interface PaxRecord {
  key: string;
  value: Buffer;
}

/** PAX records: "<len> <key>=<value>\n", len counting the whole record in bytes (POSIX pax). */
function parsePax(buf: Buffer, name: Buffer | undefined): PaxRecord[] {
  const records: PaxRecord[] = [];
  let pos = 0;
  while (pos < buf.length) {
    // A run of NULs pads the end of some writers' extended headers.
    if (buf[pos] === 0) {
      if (buf.subarray(pos).every((b) => b === 0)) break;
      throw new TarFormatError('malformed pax record', name);
    }
    const space = buf.indexOf(0x20, pos);
    if (space === -1 || space - pos > 20) throw new TarFormatError('malformed pax record length', name);
    const lenText = buf.toString('latin1', pos, space);
    if (!/^[1-9][0-9]*$/.test(lenText)) throw new TarFormatError('malformed pax record length', name);
    const len = Number(lenText);
    const recEnd = pos + len;
    if (recEnd > buf.length || buf[recEnd - 1] !== 0x0a) throw new TarFormatError('malformed pax record', name);
    const eq = buf.indexOf(0x3d, space + 1);
    if (eq === -1 || eq >= recEnd - 1) throw new TarFormatError('malformed pax record (no "=")', name);
    const key = buf.toString('latin1', space + 1, eq);
    records.push({ key, value: Buffer.from(buf.subarray(eq + 1, recEnd - 1)) });
    pos = recEnd;
  }
  return records;
}

function paxInteger(record: PaxRecord, name: Buffer | undefined): number {
  const text = record.value.toString('latin1');
  if (!/^[0-9]{1,16}$/.test(text)) throw new TarFormatError(`invalid pax ${record.key} "${text}"`, name);
  const value = Number(text);
  if (!Number.isSafeInteger(value)) throw new TarFormatError(`pax ${record.key} is too large`, name);
  return value;
}

function applyPax(records: PaxRecord[], pending: PendingMeta): void {
  for (const record of records) {
    const { key, value } = record;
    if (key === 'path') pending.path = value;
    else if (key === 'linkpath') pending.linkpath = value;
    else if (key === 'size') pending.size = paxInteger(record, pending.path);
    else if (key === 'uid') pending.uid = paxInteger(record, pending.path);
    else if (key === 'gid') pending.gid = paxInteger(record, pending.path);
    else if (key === 'mtime') {
      const text = value.toString('latin1');
      if (!/^-?[0-9]{1,16}(\.[0-9]{1,9})?$/.test(text)) throw new TarFormatError(`invalid pax mtime "${text}"`, pending.path);
      pending.mtime = Number(text);
    } else if (key.startsWith('SCHILY.xattr.')) {
      const attr = key.slice('SCHILY.xattr.'.length);
      if (attr.length === 0) throw new TarFormatError('empty xattr name in pax record', pending.path);
      pending.xattrs.set(attr, value);
    } else if (key.startsWith('GNU.sparse.')) {
      // Sparse files would extract as their map plus data, not as the file: refuse them.
      throw new TarFormatError('sparse files are not supported', pending.path);
    }
    // Other keys (atime, ctime, uname, gname, comment, charset, LIBARCHIVE.*) change nothing we keep.
  }
}
