// The real Syscalls: libc through koffi. The only module in tspod that imports koffi. The library
// is loaded on first use, so commands that make no kernel call do not pay for koffi's start-up.
import fs from 'node:fs';
import { createRequire } from 'node:module';

import { AT_FDCWD, SyscallError, type Syscalls } from './types.js';

type KoffiModule = typeof import('koffi');
type Fn = (...args: unknown[]) => number;

interface Libc {
  koffi: KoffiModule;
  flock: Fn;
  mknod: Fn;
  lsetxattr: Fn;
  lgetxattr: Fn;
  renameat2: Fn;
}

let libc: Libc | undefined;

function load(): Libc {
  if (libc !== undefined) return libc;
  // koffi is CommonJS with a native addon; require keeps its load synchronous.
  const koffi = createRequire(import.meta.url)('koffi') as KoffiModule;
  const lib = koffi.load('libc.so.6');
  libc = {
    koffi,
    flock: lib.func('int flock(int fd, int operation)') as Fn,
    mknod: lib.func('int mknod(const char *path, uint32_t mode, uint64_t dev)') as Fn,
    lsetxattr: lib.func('int lsetxattr(const char *path, const char *name, const void *value, size_t size, int flags)') as Fn,
    // ssize_t is not a koffi type name; intptr_t has its width and sign on Linux.
    lgetxattr: lib.func('intptr_t lgetxattr(const char *path, const char *name, void *value, size_t size)') as Fn,
    renameat2: lib.func('int renameat2(int olddirfd, const char *oldpath, int newdirfd, const char *newpath, unsigned int flags)') as Fn,
  };
  return libc;
}

/** Throws SyscallError when a libc call returned -1; errno is read right after the call. */
function check(c: Libc, result: number, syscall: string, path?: string): number {
  if (result === -1) throw new SyscallError(syscall, c.koffi.errno(), path);
  return result;
}

const ENODATA = 61;
const ERANGE = 34;

export const libcSyscalls: Syscalls = {
  flock(fd, operation) {
    const c = load();
    check(c, c.flock(fd, operation), 'flock');
  },
  mknod(path, mode, dev) {
    const c = load();
    check(c, c.mknod(path, mode, dev), 'mknod', path);
  },
  lsetxattr(path, name, value) {
    const c = load();
    check(c, c.lsetxattr(path, name, value, value.length, 0), 'lsetxattr', path);
  },
  lgetxattr(path, name) {
    const c = load();
    let size = 256;
    for (;;) {
      const buf = Buffer.alloc(size);
      const n = Number(c.lgetxattr(path, name, buf, size));
      if (n >= 0) return buf.subarray(0, n);
      const errno = c.koffi.errno();
      if (errno === ENODATA) return undefined;
      if (errno === ERANGE && size < 1 << 20) {
        size *= 16;
        continue;
      }
      throw new SyscallError('lgetxattr', errno, path);
    }
  },
  renameat2(oldPath, newPath, flags) {
    const c = load();
    check(c, c.renameat2(AT_FDCWD, oldPath, AT_FDCWD, newPath, flags), 'renameat2', newPath);
  },
  fsyncPath(path) {
    // fsync(2) on a directory fd is how a rename inside it is made durable.
    const fd = fs.openSync(path, fs.constants.O_RDONLY);
    try {
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  },
};
