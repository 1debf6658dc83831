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
import { AF_UNIX, CLOSE_RANGE_CLOEXEC, MSG_CMSG_CLOEXEC, MSG_CTRUNC, MSG_NOSIGNAL, MSG_TRUNC, SCM_CREDENTIALS, SCM_RIGHTS, SOL_SOCKET, UNIX_PATH_MAX, type PollFd, type UnixMessage } from './types.js';

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
  llistxattr: Fn;
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
  send: Fn;
  recv: Fn;
  // AF_UNIX sockets, fd passing, pipes, poll (sd_notify, socket activation)
  pipe2: Fn;
  dup2: Fn;
  setsockopt: Fn;
  bind: Fn;
  sendmsg: Fn;
  recvmsg: Fn;
  /** poll(2), also called through `.async` on koffi's worker threads (pollAsync). */
  poll: Fn & { async: (...args: unknown[]) => void };
  closeRange: Fn;
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
    llistxattr: lib.func('intptr_t llistxattr(const char *path, void *list, size_t size)') as Fn,
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
    send: lib.func('intptr_t send(int fd, const void *buf, size_t len, int flags)') as Fn,
    recv: lib.func('intptr_t recv(int fd, void *buf, size_t len, int flags)') as Fn,
    pipe2: lib.func('int pipe2(_Out_ int *fds, int flags)') as Fn,
    dup2: lib.func('int dup2(int oldfd, int newfd)') as Fn,
    setsockopt: lib.func('int setsockopt(int fd, int level, int name, const void *value, uint32_t len)') as Fn,
    bind: lib.func('int bind(int fd, const void *addr, uint32_t len)') as Fn,
    // The struct msghdr is built by hand in a Buffer (msghdr() below), its pointers from koffi.address.
    sendmsg: lib.func('intptr_t sendmsg(int fd, const void *msg, int flags)') as Fn,
    recvmsg: lib.func('intptr_t recvmsg(int fd, void *msg, int flags)') as Fn,
    poll: lib.func('int poll(void *fds, unsigned long nfds, int timeout)') as Libc['poll'],
    closeRange: lib.func('int close_range(unsigned int first, unsigned int last, int flags)') as Fn,
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

// --- AF_UNIX sockets: C layouts of LP64 Linux (x86_64 and aarch64 alike) ---------------------
/** unix(7) `struct sockaddr_un` and its length: a path is NUL-terminated, an `@name` is abstract (leading NUL, exact length). */
function sockaddrUn(address: string): { addr: Buffer; length: number } {
  const abstract = address.startsWith('@');
  const name = Buffer.from(abstract ? address.slice(1) : address);
  const pathBytes = abstract ? 1 + name.length : name.length + 1;
  if (name.length === 0 || pathBytes > UNIX_PATH_MAX) throw new RangeError(`sockaddr_un: address ${JSON.stringify(address)} must be 1..${UNIX_PATH_MAX - 1} bytes`);
  const addr = Buffer.alloc(2 + UNIX_PATH_MAX);
  addr.writeUInt16LE(AF_UNIX, 0);
  name.copy(addr, abstract ? 3 : 2);
  return { addr, length: 2 + pathBytes };
}

/** cmsg(3): CMSG_ALIGN to sizeof(size_t); the header `struct cmsghdr { size_t len; int level; int type; }` is 16 bytes. */
const CMSG_HEADER = 16;
const cmsgAlign = (n: number) => (n + 7) & ~7;
/** Room for one message's control data: SCM_RIGHTS of up to 253 fds (SCM_MAX_FD) plus a `struct ucred`. */
const CONTROL_BYTES = 2048;

/**
 * `struct msghdr` (56 bytes: name, namelen, iov, iovlen, control, controllen, flags) over one
 * `struct iovec`, pointing into the given Buffers; they must stay referenced until the call returns.
 */
function msghdr(c: Libc, parts: { name?: { addr: Buffer; length: number }; data: Buffer; control?: Buffer }): { msg: Buffer; keep: unknown[] } {
  const address = (buffer: Buffer) => (buffer.length === 0 ? 0n : BigInt(c.koffi.address(buffer)));
  const iov = Buffer.alloc(16);
  iov.writeBigUInt64LE(address(parts.data), 0);
  iov.writeBigUInt64LE(BigInt(parts.data.length), 8);
  const msg = Buffer.alloc(56);
  if (parts.name !== undefined) {
    msg.writeBigUInt64LE(address(parts.name.addr), 0);
    msg.writeUInt32LE(parts.name.length, 8);
  }
  msg.writeBigUInt64LE(address(iov), 16);
  msg.writeBigUInt64LE(1n, 24);
  if (parts.control !== undefined && parts.control.length > 0) {
    msg.writeBigUInt64LE(address(parts.control), 32);
    msg.writeBigUInt64LE(BigInt(parts.control.length), 40);
  }
  return { msg, keep: [iov, parts.data, parts.name?.addr, parts.control] };
}

/** One SCM_RIGHTS control message carrying `fds` (CMSG_SPACE bytes). */
function rightsControl(fds: readonly number[]): Buffer {
  const control = Buffer.alloc(CMSG_HEADER + cmsgAlign(4 * fds.length));
  control.writeBigUInt64LE(BigInt(CMSG_HEADER + 4 * fds.length), 0); // CMSG_LEN
  control.writeInt32LE(SOL_SOCKET, 8);
  control.writeInt32LE(SCM_RIGHTS, 12);
  fds.forEach((fd, i) => control.writeInt32LE(fd, CMSG_HEADER + 4 * i));
  return control;
}

/** Walks the control messages a recvmsg returned (CMSG_FIRSTHDR/CMSG_NXTHDR). */
function parseControl(control: Buffer, length: number): Pick<UnixMessage, 'fds' | 'credentials'> {
  const fds: number[] = [];
  let credentials: UnixMessage['credentials'];
  for (let offset = 0; offset + CMSG_HEADER <= length; ) {
    const cmsgLen = Number(control.readBigUInt64LE(offset));
    if (cmsgLen < CMSG_HEADER || offset + cmsgLen > length) break;
    const level = control.readInt32LE(offset + 8);
    const type = control.readInt32LE(offset + 12);
    const data = control.subarray(offset + CMSG_HEADER, offset + cmsgLen);
    if (level === SOL_SOCKET && type === SCM_RIGHTS) for (let i = 0; i + 4 <= data.length; i += 4) fds.push(data.readInt32LE(i));
    // unix(7) `struct ucred { pid_t pid; uid_t uid; gid_t gid; }`
    if (level === SOL_SOCKET && type === SCM_CREDENTIALS && data.length >= 12) credentials = { pid: data.readInt32LE(0), uid: data.readUInt32LE(4), gid: data.readUInt32LE(8) };
    offset += cmsgAlign(cmsgLen);
  }
  return { fds, ...(credentials === undefined ? {} : { credentials }) };
}

/** `struct pollfd { int fd; short events; short revents; }` array. */
function pollfds(fds: readonly PollFd[]): Buffer {
  const buffer = Buffer.alloc(8 * fds.length);
  fds.forEach((p, i) => {
    buffer.writeInt32LE(p.fd, 8 * i);
    buffer.writeInt16LE(p.events, 8 * i + 4);
  });
  return buffer;
}
const revents = (buffer: Buffer, count: number) => Array.from({ length: count }, (_, i) => buffer.readUInt16LE(8 * i + 6));
const EAGAIN = 11;
// --- end of AF_UNIX socket layouts ------------------------------------------------------------

const ENODATA = 61;
const ERANGE = 34;
const ENOTSUP = 95; // EOPNOTSUPP on Linux
/** Kernel spellings of the ifreq requests, for error messages. */
const IFREQ_REQUEST_NAMES: Record<number, string> = { [SIOCGIFFLAGS]: 'SIOCGIFFLAGS', [SIOCSIFFLAGS]: 'SIOCSIFFLAGS' };

/**
 * A call that fills a buffer and returns its length (the xattr calls): retried with a buffer 16
 * times larger on ERANGE, up to 1 MiB. The bytes filled; undefined for `absent`; other errnos throw.
 */
function growingBuffer(c: Libc, syscall: string, path: string, initial: number, absent: number, call: (buf: Buffer) => unknown): Buffer | undefined {
  for (let size = initial; ; size *= 16) {
    const buf = Buffer.alloc(size);
    const n = Number(call(buf));
    if (n >= 0) return buf.subarray(0, n);
    const errno = c.koffi.errno();
    if (errno === absent) return undefined;
    if (errno !== ERANGE || size >= 1 << 20) throw new SyscallError(syscall, errno, path);
  }
}

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
    return growingBuffer(c, 'lgetxattr', path, 256, ENODATA, (buf) => c.lgetxattr(path, name, buf, buf.length));
  },
  llistxattr(path) {
    const c = load();
    // ENOTSUP: a filesystem without xattrs has none to list.
    const list = growingBuffer(c, 'llistxattr', path, 1024, ENOTSUP, (buf) => c.llistxattr(path, buf, buf.length));
    return list === undefined ? [] : list.toString('utf8').split('\0').filter((name) => name !== '');
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
  send(fd, data) {
    const c = load();
    return check(c, Number(c.send(fd, data, data.length, 0)), 'send');
  },
  recv(fd, buffer) {
    const c = load();
    return check(c, Number(c.recv(fd, buffer, buffer.length, 0)), 'recv');
  },
  // --- AF_UNIX datagram sockets, fd passing, pipes and poll (sd_notify, socket activation) -----
  pipe2(flags) {
    const c = load();
    const fds = [0, 0];
    check(c, c.pipe2(fds, flags), 'pipe2');
    return [fds[0]!, fds[1]!];
  },
  dup2(oldFd, newFd) {
    const c = load();
    check(c, c.dup2(oldFd, newFd), 'dup2');
  },
  setsockoptInt(fd, level, name, value) {
    const c = load();
    const option = Buffer.alloc(4);
    option.writeInt32LE(value, 0);
    check(c, c.setsockopt(fd, level, name, option, 4), 'setsockopt');
  },
  bindUnix(fd, address) {
    const c = load();
    const { addr, length } = sockaddrUn(address);
    check(c, c.bind(fd, addr, length), 'bind', address);
  },
  sendmsgUnix(fd, data, options = {}) {
    const c = load();
    const name = options.address === undefined ? undefined : sockaddrUn(options.address);
    const control = options.fds === undefined || options.fds.length === 0 ? undefined : rightsControl(options.fds);
    const { msg, keep } = msghdr(c, { name, data, control });
    const sent = Number(c.sendmsg(fd, msg, (options.flags ?? 0) | MSG_NOSIGNAL));
    void keep; // referenced until here: the kernel has read the message
    return check(c, sent, 'sendmsg', options.address);
  },
  recvmsgUnix(fd, maxBytes, flags = 0) {
    const c = load();
    const data = Buffer.alloc(maxBytes);
    const control = Buffer.alloc(CONTROL_BYTES);
    const { msg } = msghdr(c, { data, control });
    // MSG_CMSG_CLOEXEC: fds received with SCM_RIGHTS are close-on-exec from the start (recvmsg(2)).
    const n = Number(c.recvmsg(fd, msg, flags | MSG_CMSG_CLOEXEC));
    if (n === -1) {
      const errno = c.koffi.errno();
      if (errno === EAGAIN) return undefined;
      throw new SyscallError('recvmsg', errno);
    }
    const msgFlags = msg.readInt32LE(48);
    const received = parseControl(control, Number(msg.readBigUInt64LE(40)));
    // MSG_CTRUNC: the kernel dropped fds that did not fit; those that arrived are returned for the caller to close.
    return { data: data.subarray(0, Math.min(n, maxBytes)), ...received, truncated: (msgFlags & (MSG_TRUNC | MSG_CTRUNC)) !== 0 };
  },
  poll(fds, timeoutMs) {
    const c = load();
    const buffer = pollfds(fds);
    check(c, c.poll(buffer, fds.length, timeoutMs), 'poll');
    return revents(buffer, fds.length);
  },
  pollAsync(fds, timeoutMs) {
    const c = load();
    const buffer = pollfds(fds);
    return new Promise((resolve, reject) => {
      // The worker thread writes `revents` into `buffer`, which this closure keeps alive.
      c.poll.async(buffer, fds.length, timeoutMs, (err: unknown, result: number) => {
        if (err !== null && err !== undefined) reject(err instanceof Error ? err : new Error(String(err)));
        // errno of a worker thread is not readable from here (koffi.errno is per thread): EINTR is the usual cause.
        else if (result === -1) reject(new SyscallError('poll', 4 /* EINTR */));
        else resolve(revents(buffer, fds.length));
      });
    });
  },
  closeRangeCloexec(first) {
    const c = load();
    check(c, c.closeRange(first, 0xffffffff, CLOSE_RANGE_CLOEXEC), 'close_range');
  },
  // --- end of AF_UNIX sockets ------------------------------------------------------------------
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
