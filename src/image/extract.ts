// Safe tar extraction: the one place tspod turns archive entries into files. It never writes
// outside `target`, refuses hostile or malformed archives with ImageFormatError naming the entry,
// and is the write path of rendering (`overwrite` replaces what an earlier layer put at a path).
//
// Rules (each enforced below, see the why-comments):
// - names: raw bytes must be valid UTF-8 without NUL; `..` components are refused; a leading `/`
//   is CONTAINED (stripped, with one warning), like GNU tar's "Removing leading `/'".
// - nothing is ever written through a symlink: a parent that is a symlink created by this archive
//   is refused; one left by an earlier layer (overwrite) is replaced by a directory. Files are
//   created with O_EXCL|O_NOFOLLOW, so a final symlink is never followed either.
// - hardlinks must name a regular file extracted earlier from the same archive; with
//   `hardlinksToTarget` (OCI layers above the first) they may also name a regular file already in
//   `target`, reached through real directories only (every ancestor lstat'ed, no symlink followed).
// - duplicates (after normalization, so `./a` == `a`) are refused, as are conflicts with a path
//   this archive already created (a file over an implicit directory).
// - device nodes only when privileged; ownership, setuid/setgid, xattrs only when privileged.
// - limits on entries, sizes and path lengths; bodies are streamed, never allocated whole.
//
// Known limit: checks are path based (lstat + O_NOFOLLOW), which is safe against the archive but
// not against another process changing `target` concurrently; that needs openat2(RESOLVE_BENEATH).
import fs from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';

import { ImageFormatError } from '../errors.js';
import { makedev, S_IFBLK, S_IFCHR, S_IFIFO, type Syscalls } from '../sys/types.js';
import { TarFormatError, TarReader, TYPEFLAG, type TarHeader, type TarVisitor } from './tar-entry.js';

export interface ExtractLimits {
  maxEntries: number;
  maxEntrySize: number;
  maxTotalSize: number;
  /** In bytes, for entry names and link targets. */
  maxPathLength: number;
  /** For the caller reading `manifest`; also caps PAX / GNU long-name headers here. */
  maxManifestSize: number;
}

const GiB = 1024 ** 3;

export const DEFAULT_LIMITS: ExtractLimits = Object.freeze({
  maxEntries: 1_000_000,
  maxEntrySize: 64 * GiB,
  maxTotalSize: 256 * GiB,
  maxPathLength: 4096,
  maxManifestSize: 1024 * 1024,
});

export type EntryType = 'file' | 'directory' | 'symlink' | 'link' | 'character-device' | 'block-device' | 'fifo';

export interface ExtractOptions {
  sys: Syscalls;
  /** only entries under this prefix (e.g. 'rootfs/') are extracted, with the prefix removed; others are ignored (the caller handles 'manifest') */
  prefix?: string;
  /** per normalized relative path (no leading slash, no trailing slash); false skips the entry */
  filter?: (relPath: string, type: EntryType) => boolean;
  /** replace what an earlier layer put at a path (rendering); a symlink at the path is removed, never followed */
  overwrite?: boolean;
  /**
   * A hardlink may also name a regular file already in `target` (left by a lower OCI layer), not
   * only an earlier entry of this archive. Its ancestors must be real directories in `target`.
   */
  hardlinksToTarget?: boolean;
  /** keep uid/gid, device nodes, xattrs: default process.geteuid() === 0 */
  privileged?: boolean;
  limits?: Partial<ExtractLimits>;
  onWarning?: (message: string) => void;
  /**
   * Told about every entry as this extraction creates it, with the metadata it applied, and fed
   * its body: lets a caller write the same entries into an archive while they are extracted
   * (src/fetch/oci-pack.ts). Skipped, filtered and unprivileged device entries are not told, nor
   * are hardlinks: a recorder's caller defers them (deferHardlinks) and records them itself.
   */
  recorder?: ExtractRecorder;
  /**
   * Hardlinks are not made but handed over (after the filter and the checks of their own name)
   * with the target's path relative to `target`: the caller makes them later with linkInTree.
   */
  deferHardlinks?: (relPath: string, linkRel: string) => void;
  /** 'ignore': the archive's root entry (`./`) does not set the target's metadata. */
  rootEntry?: 'apply' | 'ignore';
  /** Awaited after each chunk of the archive has been extracted: lets a slower consumer of the recorder catch up. */
  pace?: () => Promise<void>;
}

/** Metadata of an entry as extracted: the mode and owner it got, not only what the archive asked. */
export interface RecordedEntry {
  mode: number;
  uid: number;
  gid: number;
  /** Whole seconds. */
  mtime: number;
  /** Bytes of body that follow through `data` (regular files). */
  size: number;
  /** Symlink target. */
  symlink?: string;
  devmajor?: number;
  devminor?: number;
  /** The extended attributes the entry got (privileged extraction only), when it has any. */
  xattrs?: ReadonlyMap<string, Buffer>;
}

export interface ExtractRecorder {
  entry(relPath: string, type: EntryType, meta: RecordedEntry): void;
  data(chunk: Buffer): void;
  entryEnd(): void;
}

export interface ExtractResult {
  entries: number;
  bytes: number;
  /** What this extraction created, implicit parent directories included ('' is the target). */
  paths: Map<string, EntryType>;
  /** The directories it created implicitly (0755, the extracting user's) that no entry of the archive claimed. */
  implicit: ReadonlySet<string>;
}

const TYPE_OF_FLAG = new Map<number, EntryType>([
  [TYPEFLAG.REGTYPE, 'file'],
  [TYPEFLAG.AREGTYPE, 'file'],
  [TYPEFLAG.CONTTYPE, 'file'],
  [TYPEFLAG.LNKTYPE, 'link'],
  [TYPEFLAG.SYMTYPE, 'symlink'],
  [TYPEFLAG.CHRTYPE, 'character-device'],
  [TYPEFLAG.BLKTYPE, 'block-device'],
  [TYPEFLAG.DIRTYPE, 'directory'],
  [TYPEFLAG.FIFOTYPE, 'fifo'],
]);

const { O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW } = fs.constants;
// libuv opens every fd with O_CLOEXEC already.
const CREATE_FLAGS = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW;
const IMPLICIT_DIR_MODE = 0o755;
/** Mode of explicit directories while extracting; their own mode is applied at the end. */
const WORKING_DIR_MODE = 0o700;
const SETID_BITS = 0o6000;

const utf8 = new TextDecoder('utf-8', { fatal: true });

const MAX_SHOWN = 240;

/** Shows raw name bytes in messages: valid UTF-8 as is, anything else with \xNN escapes. */
function printable(raw: Buffer): string {
  let shown: string | undefined;
  try {
    const text = utf8.decode(raw);
    if (!/[\u0000-\u001f\u007f]/.test(text)) shown = text;
  } catch {
    // not UTF-8: the escaped form below
  }
  if (shown === undefined) {
    shown = '';
    for (const byte of raw) {
      shown += byte >= 0x20 && byte < 0x7f && byte !== 0x5c ? String.fromCharCode(byte) : `\\x${byte.toString(16).padStart(2, '0')}`;
    }
  }
  // Names can be 4 KiB and more; messages keep the start and the end.
  return shown.length > MAX_SHOWN ? `${shown.slice(0, MAX_SHOWN / 2)}...${shown.slice(-MAX_SHOWN / 2)}` : shown;
}

interface DeferredDir {
  abs: string;
  mode: number;
  uid: number;
  gid: number;
  mtime: number;
}

/** Where an entry is going, decided in `entry()` and used by `data()` / `entryEnd()`. */
interface OpenFile {
  fd: number;
  abs: string;
  rel: string;
  header: TarHeader;
}

class Extractor implements TarVisitor {
  readonly paths = new Map<string, EntryType>();
  /** Directories created implicitly by this extraction that no entry claimed (read after finish). */
  get implicit(): ReadonlySet<string> {
    return this.implicitDirs;
  }
  entries = 0;
  bytes = 0;
  private totalSize = 0;
  /** Every normalized archive name seen (prefix included), for duplicates and hardlink targets. */
  private readonly seen = new Map<string, EntryType>();
  /** Directories found on disk (left by an earlier layer), so parents are lstat'ed once. */
  private readonly existingDirs = new Set<string>();
  /** Directories created implicitly by this extraction; an explicit entry may still claim them. */
  private readonly implicitDirs = new Set<string>();
  private readonly deferred: DeferredDir[] = [];
  private readonly restores: DeferredDir[] = [];
  private readonly limits: ExtractLimits;
  private readonly prefix: string | undefined;
  private readonly privileged: boolean;
  private readonly overwrite: boolean;
  private file: OpenFile | undefined;
  private currentName: string | undefined;
  private warnedAbsolute = false;
  private warnedXattrs = false;
  private rootMeta: DeferredDir | undefined;
  /** To skip chown(2) when the archive's owner is already the creator (the common root:root case). */
  private readonly euid = process.geteuid?.() ?? -1;
  private readonly egid = process.getegid?.() ?? -1;
  /** Directories in which new entries take the directory's group (setgid, BSD semantics). */
  private readonly setgidDirs = new Set<string>();
  /** The process umask, read once: files are created with their mode and chmod'ed only when it interferes. */
  private readonly umask = process.umask();

  constructor(
    private readonly target: string,
    private readonly options: ExtractOptions,
  ) {
    this.limits = { ...DEFAULT_LIMITS, ...options.limits };
    const prefix = options.prefix === undefined ? '' : normalizeSimple(options.prefix);
    this.prefix = prefix === '' ? undefined : prefix;
    this.privileged = options.privileged ?? process.geteuid?.() === 0;
    this.overwrite = options.overwrite ?? false;
    this.paths.set('', 'directory');
    if (fs.lstatSync(target).mode & 0o2000) this.setgidDirs.add('');
  }

  get entryName(): string | undefined {
    return this.currentName;
  }

  private fail(name: string, cause: string): never {
    throw new ImageFormatError(`extract ${name}: ${cause}`);
  }

  private warn(message: string): void {
    this.options.onWarning?.(message);
  }

  /** Raw bytes to a normalized relative name; refuses what cannot be contained. */
  private normalize(raw: Buffer, display: string, what: string): string {
    if (raw.length > this.limits.maxPathLength) {
      this.fail(display, `${what} of ${raw.length} bytes exceeds the limit of ${this.limits.maxPathLength}`);
    }
    if (raw.includes(0)) this.fail(display, `${what} contains a NUL byte`);
    let text: string;
    try {
      text = utf8.decode(raw);
    } catch {
      this.fail(display, `${what} is not valid UTF-8`);
    }
    if (text.startsWith('/') && what === 'name') {
      if (!this.warnedAbsolute) {
        this.warnedAbsolute = true;
        this.warn(`extract ${display}: removing leading "/" from member names`);
      }
    }
    const parts: string[] = [];
    for (const part of text.split('/')) {
      if (part === '' || part === '.') continue;
      // `..` is refused wherever it appears, even when it would stay inside (`a/../b`): an image
      // has no reason to use it and resolving it lexically would hide symlink games.
      if (part === '..') this.fail(display, `${what === 'name' ? 'path' : what} escapes the target`);
      parts.push(part);
    }
    return parts.join('/');
  }

  /** The path relative to target, or undefined when the entry is outside the prefix. */
  private relative(name: string): string | undefined {
    if (this.prefix === undefined) return name;
    if (name === this.prefix) return '';
    if (name.startsWith(this.prefix) && name.charCodeAt(this.prefix.length) === 0x2f) return name.slice(this.prefix.length + 1);
    return undefined;
  }

  private abs(rel: string): string {
    return rel === '' ? this.target : `${this.target}/${rel}`;
  }

  entry(header: TarHeader): void {
    const display = printable(header.name);
    this.currentName = display;
    this.entries += 1;
    if (this.entries > this.limits.maxEntries) this.fail(display, `archive has more than ${this.limits.maxEntries} entries`);
    if (header.size > this.limits.maxEntrySize) {
      this.fail(display, `entry size ${header.size} exceeds the limit of ${this.limits.maxEntrySize} bytes`);
    }
    this.totalSize += header.size;
    if (this.totalSize > this.limits.maxTotalSize) {
      this.fail(display, `archive contents exceed the limit of ${this.limits.maxTotalSize} bytes`);
    }
    const type = TYPE_OF_FLAG.get(header.typeflag);
    if (type === undefined) {
      this.fail(display, `unknown entry type ${JSON.stringify(String.fromCharCode(header.typeflag))}`);
    }
    const name = this.normalize(header.name, display, 'name');
    if (this.seen.has(name)) this.fail(display, `duplicate entry (${name === '' ? '.' : name} appears twice)`);
    this.seen.set(name, type);
    if (type === 'symlink' || type === 'link') {
      if (header.linkname.length === 0) this.fail(display, `${type} has an empty target`);
    }
    const rel = this.relative(name);
    if (rel === undefined) return;
    if (rel === '') {
      if (type !== 'directory') this.fail(display, 'the root of the tree must be a directory');
      if (this.options.rootEntry === 'ignore') return;
      this.rootMeta = this.dirMeta(this.target, header);
      this.record('', 'directory', header, this.rootMeta.mode);
      return;
    }
    if (this.options.filter !== undefined && !this.options.filter(rel, type)) return;

    switch (type) {
      case 'file':
        this.createFile(rel, display, header);
        return;
      case 'directory':
        this.createDirectory(rel, display, header);
        return;
      case 'symlink':
        this.createSymlink(rel, display, header);
        return;
      case 'link':
        this.createHardlink(rel, display, header);
        return;
      default:
        this.createNode(rel, display, header, type);
    }
  }

  data(chunk: Buffer): void {
    const file = this.file;
    if (file === undefined) return; // body of a skipped entry
    let written = 0;
    while (written < chunk.length) written += fs.writeSync(file.fd, chunk, written, chunk.length - written);
    this.bytes += chunk.length;
    this.options.recorder?.data(chunk);
  }

  entryEnd(): void {
    const file = this.file;
    if (file === undefined) return;
    this.file = undefined;
    try {
      this.applyMeta(file.abs, file.header, file.fd, file.rel);
    } finally {
      fs.closeSync(file.fd);
    }
    this.options.recorder?.entryEnd();
  }

  /** Closes a file left open by a failure (truncated body, write error). */
  abort(): void {
    if (this.file !== undefined) {
      fs.closeSync(this.file.fd);
      this.file = undefined;
    }
  }

  /** Directory modes, owners and mtimes, deepest first, so read-only directories did not block writes. */
  finish(): void {
    // Earlier layers' directories made writable get their mode back first; entries of this
    // archive for the same directories then override it.
    for (const dir of this.restores) {
      try {
        fs.chmodSync(dir.abs, dir.mode);
      } catch (err) {
        // replaced by an entry of this archive meanwhile
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
    }
    for (let i = this.deferred.length - 1; i >= 0; i -= 1) this.applyDirMeta(this.deferred[i]!);
    if (this.rootMeta !== undefined) this.applyDirMeta(this.rootMeta);
  }

  private applyDirMeta(dir: DeferredDir): void {
    if (this.privileged) fs.lchownSync(dir.abs, dir.uid, dir.gid);
    // chmod after chown: chown(2) clears setuid/setgid.
    fs.chmodSync(dir.abs, dir.mode);
    fs.lutimesSync(dir.abs, dir.mtime, dir.mtime);
  }

  private dirMeta(abs: string, header: TarHeader): DeferredDir {
    return { abs, mode: this.mode(header), uid: header.uid, gid: header.gid, mtime: header.mtime };
  }

  private mode(header: TarHeader): number {
    // Unprivileged extraction drops setuid/setgid: they would be the extracting user's anyway.
    return this.privileged ? header.mode : header.mode & ~SETID_BITS;
  }

  /** Tells the recorder about an entry just created, with the owner and xattrs it got. */
  private record(rel: string, type: EntryType, header: TarHeader, mode: number, extra: Partial<RecordedEntry> = {}): void {
    const recorder = this.options.recorder;
    if (recorder === undefined) return;
    let { uid, gid } = header;
    if (!this.privileged) {
      uid = this.euid;
      // A new entry of a setgid directory takes the directory's group.
      gid = rel !== '' && this.setgidDirs.has(this.parentOf(rel)) ? fs.lstatSync(this.abs(rel)).gid : this.egid;
    }
    const xattrs = this.privileged && header.xattrs.size > 0 ? { xattrs: header.xattrs } : {};
    recorder.entry(rel, type, { mode, uid, gid, mtime: Math.floor(header.mtime), size: 0, ...xattrs, ...extra });
  }

  /**
   * Makes sure `rel` (a parent of an entry) is a real directory inside target, creating missing
   * ones 0755. The in-memory maps answer for what this extraction made; lstat for the rest.
   */
  private ensureDir(rel: string, display: string): void {
    if (rel === '') return;
    const known = this.paths.get(rel);
    if (known === 'directory' || this.existingDirs.has(rel)) return;
    if (known !== undefined) this.fail(display, `parent ${rel} is a ${known === 'link' ? 'file' : known} in this archive`);
    const slash = rel.lastIndexOf('/');
    this.ensureDir(slash === -1 ? '' : rel.slice(0, slash), display);
    const abs = this.abs(rel);
    let stat: fs.Stats | undefined;
    try {
      stat = fs.lstatSync(abs);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    if (stat?.isDirectory()) {
      this.existingDirs.add(rel);
      if (stat.mode & 0o2000) this.setgidDirs.add(rel);
      if (!this.privileged && (stat.mode & 0o700) !== 0o700) {
        // An earlier layer's read-only directory: writable while we work, its mode restored at the end.
        fs.chmodSync(abs, (stat.mode & 0o7777) | 0o700);
        this.restores.push({ abs, mode: stat.mode & 0o7777, uid: stat.uid, gid: stat.gid, mtime: stat.mtimeMs / 1000 });
      }
      return;
    }
    if (stat !== undefined) {
      // Left by an earlier layer (or the caller): never followed. With overwrite it gives way to a directory.
      if (!this.overwrite) this.fail(display, `parent ${rel} exists in the target and is not a directory`);
      this.warn(`extract ${display}: replacing ${stat.isSymbolicLink() ? 'symlink' : 'non-directory'} ${rel} from an earlier layer with a directory`);
      fs.unlinkSync(abs);
    }
    fs.mkdirSync(abs, IMPLICIT_DIR_MODE);
    this.paths.set(rel, 'directory');
    this.implicitDirs.add(rel);
    // mkdir(2) in a setgid directory makes a setgid directory.
    if (this.setgidDirs.has(this.parentOf(rel))) this.setgidDirs.add(rel);
  }

  private parentOf(rel: string): string {
    const slash = rel.lastIndexOf('/');
    return slash === -1 ? '' : rel.slice(0, slash);
  }

  /**
   * Clears the way for a new entry at `rel`: refuses a clash with what this archive made; with
   * overwrite removes what an earlier layer left (a directory only when the new entry is not one).
   * Returns true when a directory already stands there and should be kept.
   */
  private makeRoom(rel: string, display: string, type: EntryType): boolean {
    const abs = this.abs(rel);
    const mine = this.paths.get(rel);
    if (mine !== undefined) {
      if (mine === 'directory' && type === 'directory' && this.implicitDirs.has(rel)) {
        this.implicitDirs.delete(rel);
        return true;
      }
      this.fail(display, `conflicts with the ${mine} ${rel} created earlier from this archive`);
    }
    let stat: fs.Stats;
    try {
      stat = fs.lstatSync(abs);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw err;
    }
    if (stat.isDirectory() && type === 'directory') return true;
    if (!this.overwrite) this.fail(display, `${rel} already exists in the target`);
    if (stat.isDirectory()) {
      // rm -r does not follow symlinks inside the tree (it lstat's every path).
      fs.rmSync(abs, { recursive: true, force: true });
      this.forgetBelow(rel);
    } else {
      fs.unlinkSync(abs);
    }
    return false;
  }

  private forgetBelow(rel: string): void {
    this.existingDirs.delete(rel);
    const below = `${rel}/`;
    for (const dir of this.existingDirs) if (dir.startsWith(below)) this.existingDirs.delete(dir);
  }

  private createFile(rel: string, display: string, header: TarHeader): void {
    const parent = this.parentOf(rel);
    this.ensureDir(parent, display);
    const abs = this.abs(rel);
    // Created with its permission bits (the fd stays writable whatever they are); setuid/setgid
    // come after chown, and chmod only runs when the umask or those bits require it.
    const createMode = this.mode(header) & 0o777;
    let fd: number;
    try {
      // O_EXCL|O_NOFOLLOW: never opens what is already there, least of all through a final symlink.
      fd = fs.openSync(abs, CREATE_FLAGS, createMode);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      this.makeRoom(rel, display, 'file');
      fd = fs.openSync(abs, CREATE_FLAGS, createMode);
    }
    this.paths.set(rel, 'file');
    this.record(rel, 'file', header, this.mode(header), { size: header.size });
    if (header.size === 0) {
      try {
        this.applyMeta(abs, header, fd, rel);
      } finally {
        fs.closeSync(fd);
      }
      this.options.recorder?.entryEnd();
    } else {
      this.file = { fd, abs, header, rel };
    }
  }

  private createDirectory(rel: string, display: string, header: TarHeader): void {
    this.ensureDir(this.parentOf(rel), display);
    const abs = this.abs(rel);
    if (this.paths.get(rel) === 'directory' && this.implicitDirs.has(rel)) {
      this.implicitDirs.delete(rel);
    } else {
      let merged = this.existingDirs.has(rel);
      if (!merged) {
        try {
          fs.mkdirSync(abs, WORKING_DIR_MODE);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
          merged = this.makeRoom(rel, display, 'directory');
          if (!merged) fs.mkdirSync(abs, WORKING_DIR_MODE);
        }
      }
      // A directory from an earlier layer is merged; its metadata is replaced at the end. Until
      // then it must stay writable for an unprivileged extraction.
      if (merged && !this.privileged) fs.chmodSync(abs, WORKING_DIR_MODE);
    }
    this.paths.set(rel, 'directory');
    this.existingDirs.delete(rel);
    if (this.setgidDirs.has(this.parentOf(rel))) this.setgidDirs.add(rel);
    this.setXattrs(abs, header, display);
    const meta = this.dirMeta(abs, header);
    this.deferred.push(meta);
    this.record(rel, 'directory', header, meta.mode);
  }

  private createSymlink(rel: string, display: string, header: TarHeader): void {
    // The target is kept verbatim and may point anywhere: nothing is ever written through it.
    const linkDisplay = printable(header.linkname);
    if (header.linkname.length > this.limits.maxPathLength) {
      this.fail(display, `symlink target of ${header.linkname.length} bytes exceeds the limit of ${this.limits.maxPathLength}`);
    }
    if (header.linkname.includes(0)) this.fail(display, 'symlink target contains a NUL byte');
    let linkText: string;
    try {
      linkText = utf8.decode(header.linkname);
    } catch {
      this.fail(display, `symlink target ${linkDisplay} is not valid UTF-8`);
    }
    this.ensureDir(this.parentOf(rel), display);
    const abs = this.abs(rel);
    try {
      fs.symlinkSync(linkText, abs);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      this.makeRoom(rel, display, 'symlink');
      fs.symlinkSync(linkText, abs);
    }
    this.paths.set(rel, 'symlink');
    if (this.privileged) fs.lchownSync(abs, header.uid, header.gid);
    this.setXattrs(abs, header, display);
    fs.lutimesSync(abs, header.mtime, header.mtime);
    // Symlinks have no mode of their own on Linux: lstat shows 0777.
    this.record(rel, 'symlink', header, 0o777, { symlink: linkText });
  }

  private createHardlink(rel: string, display: string, header: TarHeader): void {
    const linkDisplay = printable(header.linkname);
    const linkName = this.normalize(header.linkname, display, 'hardlink target');
    if (this.options.deferHardlinks !== undefined) {
      const linkRel = this.relative(linkName);
      if (linkRel === undefined || linkRel === '') this.fail(display, `hardlink target ${linkDisplay} is outside ${this.prefix ?? 'the tree'}`);
      this.ensureDir(this.parentOf(rel), display);
      const mine = this.paths.get(rel);
      if (mine !== undefined) this.fail(display, `conflicts with the ${mine} ${rel} created earlier from this archive`);
      this.paths.set(rel, 'link');
      this.options.deferHardlinks(rel, linkRel);
      return;
    }
    const seenType = this.seen.get(linkName);
    if (seenType === undefined && linkName !== '' && this.options.hardlinksToTarget === true && this.nonDirectoryAncestor(linkName) === undefined) {
      this.createLinkToTarget(rel, display, linkName, linkDisplay);
      return;
    }
    if (seenType === undefined || linkName === '') {
      const through = this.nonDirectoryAncestor(linkName);
      if (through !== undefined) this.fail(display, `hardlink target ${linkDisplay} goes through the ${through[1]} ${through[0]}`);
      this.fail(display, `hardlink target ${linkDisplay} is not an earlier entry of the archive`);
    }
    if (seenType !== 'file' && seenType !== 'link') {
      this.fail(display, `hardlink target ${linkDisplay} is a ${seenType}, not a regular file`);
    }
    const linkRel = this.relative(linkName);
    if (linkRel === undefined) this.fail(display, `hardlink target ${linkDisplay} is outside ${this.prefix ?? 'the tree'}`);
    const created = this.paths.get(linkRel);
    if (created !== 'file' && created !== 'link') {
      // The target was filtered out (pathWhitelist): its data is gone, so the link cannot be made.
      this.warn(`extract ${display}: skipped, its hardlink target ${linkDisplay} was not extracted`);
      return;
    }
    // link(2) does not follow a symlink at the old path; ours is a regular file we created.
    this.link(rel, display, linkRel);
  }

  /** Makes `rel` a hardlink of `linkRel` (a checked regular file), replacing what was at `rel`. */
  private link(rel: string, display: string, linkRel: string): void {
    this.ensureDir(this.parentOf(rel), display);
    const abs = this.abs(rel);
    try {
      fs.linkSync(this.abs(linkRel), abs);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      this.makeRoom(rel, display, 'link');
      fs.linkSync(this.abs(linkRel), abs);
    }
    this.paths.set(rel, 'link');
  }

  /** A hardlink to a regular file that an earlier layer left in target (hardlinksToTarget). */
  private createLinkToTarget(rel: string, display: string, linkName: string, linkDisplay: string): void {
    const linkRel = this.relative(linkName);
    if (linkRel === undefined || linkRel === '') this.fail(display, `hardlink target ${linkDisplay} is outside ${this.prefix ?? 'the tree'}`);
    const wrong = treeFileProblem(this.target, linkRel);
    if (wrong !== undefined) this.fail(display, `hardlink target ${linkDisplay} ${wrong === 'missing' ? 'is neither an earlier entry of the archive nor a file of a lower layer' : wrong}`);
    this.link(rel, display, linkRel);
  }

  /** For messages: the first ancestor of an archive name that the archive made a non-directory. */
  private nonDirectoryAncestor(name: string): [string, EntryType] | undefined {
    let end = name.indexOf('/');
    while (end !== -1) {
      const ancestor = name.slice(0, end);
      const type = this.seen.get(ancestor);
      if (type !== undefined && type !== 'directory') return [ancestor, type];
      end = name.indexOf('/', end + 1);
    }
    return undefined;
  }

  private createNode(rel: string, display: string, header: TarHeader, type: EntryType): void {
    const isDevice = type === 'character-device' || type === 'block-device';
    // Parents first, so a hostile path is refused the same way with or without privileges.
    this.ensureDir(this.parentOf(rel), display);
    if (isDevice && !this.privileged) {
      this.warn(`extract ${display}: skipped ${type} ${header.devmajor}:${header.devminor}, creating device nodes needs privileges`);
      return;
    }
    const abs = this.abs(rel);
    const fileType = type === 'character-device' ? S_IFCHR : type === 'block-device' ? S_IFBLK : S_IFIFO;
    const dev = isDevice ? makedev(header.devmajor, header.devminor) : 0n;
    const perm = this.mode(header) & 0o777;
    try {
      // mknod(2) fails with EEXIST on any existing path, a symlink included: nothing is followed.
      this.options.sys.mknod(abs, fileType | perm, dev);
    } catch (err) {
      if ((err as { code?: string }).code !== 'EEXIST') throw err;
      this.makeRoom(rel, display, type);
      this.options.sys.mknod(abs, fileType | perm, dev);
    }
    this.paths.set(rel, type);
    this.applyMeta(abs, header, undefined);
    this.record(rel, type, header, this.mode(header), isDevice ? { devmajor: header.devmajor, devminor: header.devminor } : {});
  }

  private setXattrs(abs: string, header: TarHeader, display: string): void {
    if (header.xattrs.size === 0) return;
    if (!this.privileged) {
      if (!this.warnedXattrs) {
        this.warnedXattrs = true;
        this.warn(`extract ${display}: extended attributes are not kept without privileges`);
      }
      return;
    }
    for (const [name, value] of header.xattrs) {
      if (name.includes('\0')) this.fail(display, 'xattr name contains a NUL byte');
      this.options.sys.lsetxattr(abs, name, value);
    }
  }

  /** Owner, xattrs, mode, mtime of a non-directory; `fd` when the file is open. */
  private applyMeta(abs: string, header: TarHeader, fd: number | undefined, rel?: string): void {
    const mode = this.mode(header);
    if (this.privileged) {
      // A new file belongs to the creator, with the group of a setgid parent: chown only when that differs.
      const needChown = fd === undefined || header.uid !== this.euid || header.gid !== this.egid || rel === undefined || this.setgidDirs.has(this.parentOf(rel));
      if (needChown) {
        if (fd === undefined) fs.lchownSync(abs, header.uid, header.gid);
        else fs.fchownSync(fd, header.uid, header.gid);
      }
    }
    // xattrs after chown (chown(2) clears security.capability), mode after chown (it clears setuid).
    this.setXattrs(abs, header, this.currentName ?? abs);
    if (fd === undefined) fs.chmodSync(abs, mode);
    else if ((mode & ~0o777) !== 0 || (mode & this.umask) !== 0) fs.fchmodSync(fd, mode);
    if (fd === undefined) fs.lutimesSync(abs, header.mtime, header.mtime);
    else fs.futimesSync(fd, header.mtime, header.mtime);
  }
}

function lstatOrNone(abs: string): fs.Stats | undefined {
  try {
    return fs.lstatSync(abs);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') return undefined;
    throw err;
  }
}

/**
 * Why the parents of `rel` are not all real directories of `root` ('missing' for one that is not
 * there). Walked one component at a time with lstat: a symlink on the way is never followed.
 */
function ancestorsProblem(root: string, rel: string): string | undefined {
  for (let end = rel.indexOf('/'); end !== -1; end = rel.indexOf('/', end + 1)) {
    const ancestor = rel.slice(0, end);
    const st = lstatOrNone(`${root}/${ancestor}`);
    if (st === undefined) return 'missing';
    if (!st.isDirectory()) return `goes through the ${kindOf(st)} ${ancestor}`;
  }
  return undefined;
}

/** Why `rel` is not a regular file reached through real directories of `root` ('missing' when it is not there). */
function treeFileProblem(root: string, rel: string): string | undefined {
  const through = ancestorsProblem(root, rel);
  if (through !== undefined) return through;
  const st = lstatOrNone(`${root}/${rel}`);
  if (st === undefined) return 'missing';
  return st.isFile() ? undefined : `is a ${kindOf(st)}, not a regular file`;
}

/**
 * Makes `rel` a hardlink of the regular file `linkRel`, both relative to `root`, for a caller
 * that deferred its hardlinks (ExtractOptions.deferHardlinks): the target must be a regular file
 * and both reached through real directories. Returns why not, or undefined once the link is made.
 */
export function linkInTree(root: string, rel: string, linkRel: string): string | undefined {
  const target = treeFileProblem(root, linkRel);
  if (target !== undefined) return `its target ${linkRel} ${target === 'missing' ? 'is not in the tree' : target}`;
  const parent = ancestorsProblem(root, rel);
  if (parent !== undefined) return `its path ${parent === 'missing' ? 'has a missing directory' : parent}`;
  try {
    // link(2) does not follow a symlink at the old path; the target was checked to be a file.
    fs.linkSync(`${root}/${linkRel}`, `${root}/${rel}`);
  } catch (err) {
    return `link(2): ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`;
  }
  return undefined;
}

/** For messages: what an lstat'ed path is. */
function kindOf(st: fs.Stats): string {
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isDirectory()) return 'directory';
  if (st.isFile()) return 'file';
  return 'special file';
}

/** Lexical normalization of a caller-given prefix such as 'rootfs/' or './rootfs'. */
function normalizeSimple(prefix: string): string {
  return prefix
    .split('/')
    .filter((part) => part !== '' && part !== '.')
    .join('/');
}

/**
 * Extracts an (uncompressed) tar stream into `target`, an existing directory. Resolves with what
 * was written; rejects with ImageFormatError for hostile or malformed archives, in which case
 * `target` may hold a partial tree (the caller extracts into a temporary directory).
 */
export async function extractTar(tar: NodeJS.ReadableStream | Readable, target: string, options: ExtractOptions): Promise<ExtractResult> {
  const root = path.resolve(target);
  const stat = fs.lstatSync(root);
  if (!stat.isDirectory()) throw new ImageFormatError(`extract into ${target}: not a directory`);
  const extractor = new Extractor(root, options);
  const limits = { ...DEFAULT_LIMITS, ...options.limits };
  const reader = new TarReader(extractor, { maxMetaSize: Math.max(limits.maxManifestSize, limits.maxPathLength + 512) });
  try {
    const pace = options.pace;
    for await (const chunk of tar as AsyncIterable<Buffer | string>) {
      reader.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
      if (pace !== undefined) await pace();
    }
    reader.end();
    extractor.finish();
  } catch (err) {
    extractor.abort();
    if (err instanceof TarFormatError) {
      // Errors between entries name the archive and, for orientation, the last entry read.
      const last = extractor.entryName;
      const name = err.entryName !== undefined ? printable(err.entryName) : 'archive';
      const after = err.entryName === undefined && last !== undefined ? ` (after entry ${last})` : '';
      throw new ImageFormatError(`extract ${name}: ${err.message}${after}`, { cause: err });
    }
    throw err;
  }
  return { entries: extractor.entries, bytes: extractor.bytes, paths: extractor.paths, implicit: extractor.implicit };
}
