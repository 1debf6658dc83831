// The syscall layer's contract: the `Syscalls` interface, kernel constants under their kernel
// spellings, and `SyscallError`. Pure declarations: no koffi here, so every module (and the
// recording fake) can import it without loading the FFI library.
import os from 'node:os';

import { TspodError } from '../errors.js';

// flock(2)
export const LOCK_SH = 1;
export const LOCK_EX = 2;
export const LOCK_NB = 4;
export const LOCK_UN = 8;

// renameat2(2)
export const AT_FDCWD = -100;
export const RENAME_NOREPLACE = 1 << 0;
export const RENAME_EXCHANGE = 1 << 1;

// mknod(2) file types (sys/stat.h)
export const S_IFIFO = 0o010000;
export const S_IFCHR = 0o020000;
export const S_IFBLK = 0o060000;

/** makedev(3) for Linux: the glibc encoding of major/minor into a dev_t. */
export function makedev(major: number, minor: number): bigint {
  const ma = BigInt(major);
  const mi = BigInt(minor);
  return ((ma & 0xfffff000n) << 32n) | ((ma & 0xfffn) << 8n) | ((mi & 0xffffff00n) << 12n) | (mi & 0xffn);
}

export class SyscallError extends TspodError {
  readonly syscall: string;
  readonly errno: number;
  readonly code: string;
  readonly path: string | undefined;

  constructor(syscall: string, errno: number, path?: string) {
    const code = errnoName(errno);
    super(`${syscall}${path === undefined ? '' : ` ${path}`}: ${code} (${describeErrno(errno)})`);
    this.syscall = syscall;
    this.errno = errno;
    this.code = code;
    this.path = path;
  }
}

export function errnoName(errno: number): string {
  for (const [name, value] of Object.entries(os.constants.errno)) {
    if (value === errno) return name;
  }
  return `errno ${errno}`;
}

const ERRNO_TEXT: Record<string, string> = {
  EPERM: 'operation not permitted',
  ENOENT: 'no such file or directory',
  EEXIST: 'file exists',
  EACCES: 'permission denied',
  EWOULDBLOCK: 'resource temporarily unavailable',
  EAGAIN: 'resource temporarily unavailable',
  EINVAL: 'invalid argument',
  ENOTSUP: 'operation not supported',
  EOPNOTSUPP: 'operation not supported',
  ENODATA: 'no data available',
  ENOSYS: 'function not implemented',
  EXDEV: 'invalid cross-device link',
  EBADF: 'bad file descriptor',
};

function describeErrno(errno: number): string {
  return ERRNO_TEXT[errnoName(errno)] ?? 'system error';
}

/**
 * The kernel calls tspod makes. Synchronous, named after the C calls; a failing call throws
 * SyscallError with the errno read right after it. One real implementation (`libc.ts`), and a
 * recording fake for unit tests (`recording.ts`).
 */
export interface Syscalls {
  /** flock(2) on an open fd. With LOCK_NB, a held lock throws SyscallError with code EAGAIN (= EWOULDBLOCK). */
  flock(fd: number, operation: number): void;
  /** mknod(2): `mode` carries the file type bits (S_IFCHR, S_IFBLK, S_IFIFO) and permissions. */
  mknod(path: string, mode: number, dev: bigint): void;
  /** lsetxattr(2): sets an extended attribute without following a final symlink. */
  lsetxattr(path: string, name: string, value: Buffer): void;
  /** lgetxattr(2): the attribute's value, or undefined when it is absent (ENODATA). */
  lgetxattr(path: string, name: string): Buffer | undefined;
  /** renameat2(2) relative to the cwd (AT_FDCWD), with RENAME_NOREPLACE / RENAME_EXCHANGE. */
  renameat2(oldPath: string, newPath: string, flags: number): void;
  /** fsync(2) of a file or directory by path (directories make renames in them durable). */
  fsyncPath(path: string): void;
}
