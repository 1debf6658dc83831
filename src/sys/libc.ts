// The real Syscalls: libc through koffi. The only module in tspod that imports koffi. The library
// is loaded on first use, so commands that make no kernel call do not pay for koffi's start-up.
import fs from 'node:fs';
import { createRequire } from 'node:module';

import {
  _LINUX_CAPABILITY_VERSION_3,
  AT_FDCWD,
  CAP_DATA_V3_SIZE,
  F_GETFD,
  F_SETFD,
  FD_CLOEXEC,
  IFNAMSIZ,
  IFREQ_SIZE,
  SECCOMP_SET_MODE_FILTER,
  SIOCGIFFLAGS,
  SIOCSIFFLAGS,
  SyscallError,
  TIOCSCTTY,
  type Syscalls,
} from './types.js';

type KoffiModule = typeof import('koffi');
type Fn = (...args: unknown[]) => number;

/**
 * Numbers of the calls made through syscall(2) rather than a glibc wrapper (pivot_root has no
 * wrapper; the credential calls must not go through glibc's all-threads wrappers). From
 * arch/x86/entry/syscalls/syscall_64.tbl and include/uapi/asm-generic/unistd.h (aarch64).
 */
export const SYSCALL_NUMBERS = {
  x64: { setgroups: 116, setresuid: 117, setresgid: 119, pivot_root: 155, seccomp: 317 },
  arm64: { setgroups: 159, setresuid: 147, setresgid: 149, pivot_root: 41, seccomp: 277 },
} as const;

type RawSyscall = keyof (typeof SYSCALL_NUMBERS)['x64'];

interface Libc {
  koffi: KoffiModule;
  nr: Record<RawSyscall, number>;
  flock: Fn;
  mknod: Fn;
  lsetxattr: Fn;
  lgetxattr: Fn;
  renameat2: Fn;
  unshare: Fn;
  setns: Fn;
  mount: Fn;
  umount2: Fn;
  chroot: Fn;
  chdir: Fn;
  sethostname: Fn;
  capget: Fn;
  capset: Fn;
  prctl: Fn;
  fcntl: Fn;
  execve: Fn;
  getpid: Fn;
  kill: Fn;
  waitpid: Fn;
  setpgid: Fn;
  tcsetpgrp: Fn;
  pthreadSigmask: Fn;
  ioctl: Fn;
  /** ioctl(fd, request, void *): requests whose argument is a struct (netdevice(7) ifreq). */
  ioctlPtr: Fn;
  socket: Fn;
  close: Fn;
  /** syscall(nr, long, long, long): the raw credential calls. */
  syscallLong3: Fn;
  /** syscall(nr, long, gid_t *): setgroups. */
  syscallSetgroups: Fn;
  /** syscall(nr, const char *, const char *): pivot_root. */
  syscallStr2: Fn;
  /** syscall(nr, unsigned, unsigned, const struct sock_fprog *): seccomp. */
  syscallSeccomp: Fn;
}

let libc: Libc | undefined;

function syscallNumbers(): Record<RawSyscall, number> {
  const table = (SYSCALL_NUMBERS as Record<string, Record<RawSyscall, number>>)[process.arch];
  if (table === undefined) throw new Error(`tspod: no syscall numbers for architecture ${process.arch} (known: ${Object.keys(SYSCALL_NUMBERS).join(', ')})`);
  return table;
}

/** linux/filter.h `struct sock_fprog { unsigned short len; struct sock_filter *filter; }` (koffi adds the padding). */
function sockFprog(koffi: KoffiModule): ReturnType<KoffiModule['struct']> {
  return koffi.struct('tspod_sock_fprog', { len: 'uint16_t', filter: 'void *' });
}

function load(): Libc {
  if (libc !== undefined) return libc;
  const nr = syscallNumbers();
  // koffi is CommonJS with a native addon; require keeps its load synchronous.
  const koffi = createRequire(import.meta.url)('koffi') as KoffiModule;
  const lib = koffi.load('libc.so.6');
  libc = {
    koffi,
    nr,
    flock: lib.func('int flock(int fd, int operation)') as Fn,
    mknod: lib.func('int mknod(const char *path, uint32_t mode, uint64_t dev)') as Fn,
    lsetxattr: lib.func('int lsetxattr(const char *path, const char *name, const void *value, size_t size, int flags)') as Fn,
    // ssize_t is not a koffi type name; intptr_t has its width and sign on Linux.
    lgetxattr: lib.func('intptr_t lgetxattr(const char *path, const char *name, void *value, size_t size)') as Fn,
    renameat2: lib.func('int renameat2(int olddirfd, const char *oldpath, int newdirfd, const char *newpath, unsigned int flags)') as Fn,
    unshare: lib.func('int unshare(int flags)') as Fn,
    setns: lib.func('int setns(int fd, int nstype)') as Fn,
    mount: lib.func('int mount(const char *source, const char *target, const char *fstype, unsigned long flags, const char *data)') as Fn,
    umount2: lib.func('int umount2(const char *target, int flags)') as Fn,
    chroot: lib.func('int chroot(const char *path)') as Fn,
    chdir: lib.func('int chdir(const char *path)') as Fn,
    sethostname: lib.func('int sethostname(const char *name, size_t len)') as Fn,
    // capget/capset take pointers to the header and the data; Buffers are passed by reference.
    capget: lib.func('int capget(void *hdrp, void *datap)') as Fn,
    capset: lib.func('int capset(void *hdrp, void *datap)') as Fn,
    // prctl and fcntl are variadic in C; every argument tspod passes is an integer in a general
    // register, where the x86_64 and aarch64 (Linux) calling conventions match a fixed prototype.
    prctl: lib.func('int prctl(int option, unsigned long arg2, unsigned long arg3, unsigned long arg4, unsigned long arg5)') as Fn,
    fcntl: lib.func('int fcntl(int fd, int cmd, int arg)') as Fn,
    execve: lib.func('int execve(const char *path, const char **argv, const char **envp)') as Fn,
    getpid: lib.func('int getpid()') as Fn,
    kill: lib.func('int kill(int pid, int sig)') as Fn,
    waitpid: lib.func('int waitpid(int pid, _Out_ int *status, int options)') as Fn,
    setpgid: lib.func('int setpgid(int pid, int pgid)') as Fn,
    tcsetpgrp: lib.func('int tcsetpgrp(int fd, int pgrp)') as Fn,
    // sigset_t is 1024 bits in glibc; the kernel reads the first 64.
    pthreadSigmask: lib.func('int pthread_sigmask(int how, void *set, void *oldset)') as Fn,
    ioctl: lib.func('int ioctl(int fd, unsigned long request, unsigned long arg)') as Fn,
    // A second prototype of the variadic ioctl: a pointer also travels in a general register.
    ioctlPtr: lib.func('ioctl', 'int', ['int', 'unsigned long', 'void *']) as Fn,
    socket: lib.func('int socket(int domain, int type, int protocol)') as Fn,
    close: lib.func('int close(int fd)') as Fn,
    syscallLong3: lib.func('syscall', 'long', ['long', 'long', 'long', 'long']) as Fn,
    syscallSetgroups: lib.func('syscall', 'long', ['long', 'long', 'void *']) as Fn,
    syscallStr2: lib.func('syscall', 'long', ['long', 'const char *', 'const char *']) as Fn,
    syscallSeccomp: lib.func('syscall', 'long', ['long', 'unsigned int', 'unsigned int', koffi.pointer(sockFprog(koffi))]) as Fn,
  };
  return libc;
}

/** Throws SyscallError when a libc call returned -1; errno is read right after the call. */
function check(c: Libc, result: number, syscall: string, path?: string): number {
  if (result === -1) throw new SyscallError(syscall, c.koffi.errno(), path);
  return result;
}

/** `struct __user_cap_header_struct { __u32 version; int pid; }` for capget/capset v3. */
function capHeader(pid: number): Buffer {
  const header = Buffer.alloc(8);
  header.writeUInt32LE(_LINUX_CAPABILITY_VERSION_3, 0);
  header.writeInt32LE(pid, 4);
  return header;
}

const ENODATA = 61;
const ERANGE = 34;
/** Kernel spellings of the ifreq requests, for error messages. */
const IFREQ_REQUEST_NAMES: Record<number, string> = { [SIOCGIFFLAGS]: 'SIOCGIFFLAGS', [SIOCSIFFLAGS]: 'SIOCSIFFLAGS' };

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
  unshare(flags) {
    const c = load();
    check(c, c.unshare(flags), 'unshare');
  },
  setns(fd, nstype) {
    const c = load();
    check(c, c.setns(fd, nstype), 'setns');
  },
  mount(source, target, fstype, flags, data) {
    const c = load();
    // MS_* values above bit 30 would be negative as JS int32 results of `|`; unsigned long wants >>> 0.
    check(c, c.mount(source, target, fstype, flags >>> 0, data), 'mount', target);
  },
  umount2(target, flags) {
    const c = load();
    check(c, c.umount2(target, flags), 'umount2', target);
  },
  pivotRoot(newRoot, putOld) {
    const c = load();
    check(c, Number(c.syscallStr2(c.nr.pivot_root, newRoot, putOld)), 'pivot_root', newRoot);
  },
  chroot(path) {
    const c = load();
    check(c, c.chroot(path), 'chroot', path);
  },
  chdir(path) {
    const c = load();
    check(c, c.chdir(path), 'chdir', path);
  },
  sethostname(name) {
    const c = load();
    check(c, c.sethostname(name, Buffer.byteLength(name)), 'sethostname', name);
  },
  setresuid(ruid, euid, suid) {
    const c = load();
    // Raw syscall(SYS_setresuid): per thread (see the Syscalls doc comment on glibc's SIGSETXID broadcast).
    check(c, Number(c.syscallLong3(c.nr.setresuid, ruid, euid, suid)), 'setresuid');
  },
  setresgid(rgid, egid, sgid) {
    const c = load();
    check(c, Number(c.syscallLong3(c.nr.setresgid, rgid, egid, sgid)), 'setresgid');
  },
  setgroups(gids) {
    const c = load();
    // gid_t is u32 on Linux; the kernel reads `size` entries from the list.
    const list = Buffer.alloc(Math.max(gids.length, 1) * 4);
    gids.forEach((g, i) => list.writeUInt32LE(g >>> 0, i * 4));
    check(c, Number(c.syscallSetgroups(c.nr.setgroups, gids.length, list)), 'setgroups');
  },
  capget(pid) {
    const c = load();
    const header = capHeader(pid);
    const data = Buffer.alloc(CAP_DATA_V3_SIZE);
    check(c, c.capget(header, data), 'capget');
    return data;
  },
  capset(data) {
    const c = load();
    // capset(2): with _LINUX_CAPABILITY_VERSION_3 the kernel reads two data structs (24 bytes).
    if (data.length !== CAP_DATA_V3_SIZE) throw new RangeError(`capset: data must be ${CAP_DATA_V3_SIZE} bytes, not ${data.length}`);
    check(c, c.capset(capHeader(0), data), 'capset');
  },
  prctl(option, arg2 = 0, arg3 = 0, arg4 = 0, arg5 = 0) {
    const c = load();
    return check(c, c.prctl(option, arg2, arg3, arg4, arg5), 'prctl');
  },
  seccompSetFilter(program) {
    const c = load();
    // linux/filter.h: struct sock_filter is 8 bytes; sock_fprog.len counts instructions (u16).
    if (program.length === 0 || program.length % 8 !== 0 || program.length / 8 > 0xffff) {
      throw new RangeError(`seccomp: program of ${program.length} bytes is not a sock_filter array`);
    }
    const prog = { len: program.length / 8, filter: program };
    check(c, Number(c.syscallSeccomp(c.nr.seccomp, SECCOMP_SET_MODE_FILTER, 0, prog)), 'seccomp');
  },
  fcntlSetCloexec(fd, on) {
    const c = load();
    const flags = check(c, c.fcntl(fd, F_GETFD, 0), 'fcntl');
    check(c, c.fcntl(fd, F_SETFD, on ? flags | FD_CLOEXEC : flags & ~FD_CLOEXEC), 'fcntl');
  },
  execve(path, argv, envp) {
    const c = load();
    // execve(2): argv and envp are NULL-terminated arrays; koffi passes JS arrays as given.
    c.execve(path, [...argv, null], [...envp, null]);
    throw new SyscallError('execve', c.koffi.errno(), path);
  },
  getpid() {
    return load().getpid();
  },
  kill(pid, signal) {
    const c = load();
    check(c, c.kill(pid, signal), 'kill');
  },
  waitpid(pid, options) {
    const c = load();
    const status = [0];
    const r = check(c, c.waitpid(pid, status, options), 'waitpid');
    // waitpid(2): with WNOHANG, 0 means children exist but none has changed state.
    return r === 0 ? undefined : { pid: r, status: status[0] ?? 0 };
  },
  setpgid(pid, pgid) {
    const c = load();
    check(c, c.setpgid(pid, pgid), 'setpgid');
  },
  ioctlSetCtty(fd, steal) {
    const c = load();
    check(c, c.ioctl(fd, TIOCSCTTY, steal ? 1 : 0), 'ioctl TIOCSCTTY');
  },
  tcsetpgrp(fd, pgrp) {
    const c = load();
    check(c, c.tcsetpgrp(fd, pgrp), 'tcsetpgrp');
  },
  pthreadSigmask(how, signals) {
    const c = load();
    // sigset_t: bit (signo - 1) of an array of little-endian unsigned longs (x86_64, aarch64).
    const set = Buffer.alloc(128);
    set.writeBigUInt64LE(signals.reduce((mask, signo) => mask | (1n << BigInt(signo - 1)), 0n), 0);
    // pthread_sigmask returns the error number instead of setting errno.
    const error = Number(c.pthreadSigmask(how, set, null));
    if (error !== 0) throw new SyscallError('pthread_sigmask', error);
  },
  socket(domain, type, protocol) {
    const c = load();
    return check(c, c.socket(domain, type, protocol), 'socket');
  },
  close(fd) {
    const c = load();
    check(c, c.close(fd), 'close');
  },
  ioctlIfreq(fd, request, ifreq) {
    const c = load();
    // netdevice(7): the kernel copies sizeof(struct ifreq) bytes in (and out for a get).
    if (ifreq.length < IFREQ_SIZE) throw new RangeError(`ioctl: struct ifreq needs ${IFREQ_SIZE} bytes, not ${ifreq.length}`);
    const name = ifreq.subarray(0, IFNAMSIZ).toString('latin1').replace(/\0.*$/s, '');
    check(c, c.ioctlPtr(fd, request, ifreq), `ioctl ${IFREQ_REQUEST_NAMES[request] ?? `0x${request.toString(16)}`}`, name);
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
