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

// unshare(2), setns(2), clone(2) (linux/sched.h)
export const CLONE_NEWTIME = 0x00000080;
export const CLONE_FS = 0x00000200;
export const CLONE_FILES = 0x00000400;
export const CLONE_NEWNS = 0x00020000;
export const CLONE_SYSVSEM = 0x00040000;
export const CLONE_NEWCGROUP = 0x02000000;
export const CLONE_NEWUTS = 0x04000000;
export const CLONE_NEWIPC = 0x08000000;
export const CLONE_NEWUSER = 0x10000000;
export const CLONE_NEWPID = 0x20000000;
export const CLONE_NEWNET = 0x40000000;

// mount(2) flags (linux/mount.h)
export const MS_RDONLY = 1;
export const MS_NOSUID = 2;
export const MS_NODEV = 4;
export const MS_NOEXEC = 8;
export const MS_SYNCHRONOUS = 16;
export const MS_REMOUNT = 32;
export const MS_MANDLOCK = 64;
export const MS_DIRSYNC = 128;
export const MS_NOSYMFOLLOW = 256;
export const MS_NOATIME = 1024;
export const MS_NODIRATIME = 2048;
export const MS_BIND = 4096;
export const MS_MOVE = 8192;
export const MS_REC = 16384;
export const MS_SILENT = 32768;
export const MS_POSIXACL = 1 << 16;
export const MS_UNBINDABLE = 1 << 17;
export const MS_PRIVATE = 1 << 18;
export const MS_SLAVE = 1 << 19;
export const MS_SHARED = 1 << 20;
export const MS_RELATIME = 1 << 21;
export const MS_STRICTATIME = 1 << 24;
export const MS_LAZYTIME = 1 << 25;

// umount2(2)
export const MNT_FORCE = 1;
export const MNT_DETACH = 2;
export const MNT_EXPIRE = 4;
export const UMOUNT_NOFOLLOW = 8;

// prctl(2) options (linux/prctl.h)
export const PR_SET_PDEATHSIG = 1;
export const PR_GET_PDEATHSIG = 2;
export const PR_GET_KEEPCAPS = 7;
export const PR_SET_KEEPCAPS = 8;
export const PR_SET_NAME = 15;
export const PR_GET_SECCOMP = 21;
export const PR_SET_SECCOMP = 22;
export const PR_CAPBSET_READ = 23;
export const PR_CAPBSET_DROP = 24;
export const PR_SET_CHILD_SUBREAPER = 36;
export const PR_SET_NO_NEW_PRIVS = 38;
export const PR_GET_NO_NEW_PRIVS = 39;
export const PR_CAP_AMBIENT = 47;
export const PR_CAP_AMBIENT_IS_SET = 1;
export const PR_CAP_AMBIENT_RAISE = 2;
export const PR_CAP_AMBIENT_LOWER = 3;
export const PR_CAP_AMBIENT_CLEAR_ALL = 4;

// seccomp(2) (linux/seccomp.h)
export const SECCOMP_MODE_DISABLED = 0;
export const SECCOMP_MODE_STRICT = 1;
export const SECCOMP_MODE_FILTER = 2;
export const SECCOMP_SET_MODE_STRICT = 0;
export const SECCOMP_SET_MODE_FILTER = 1;
export const SECCOMP_FILTER_FLAG_TSYNC = 1;

// capget(2)/capset(2) (linux/capability.h)
export const _LINUX_CAPABILITY_VERSION_3 = 0x20080522;
/** Bytes of the v3 data argument: two `struct __user_cap_data_struct` of three u32 each. */
export const CAP_DATA_V3_SIZE = 24;

// fcntl(2)
export const F_GETFD = 1;
export const F_SETFD = 2;
export const FD_CLOEXEC = 1;

// waitpid(2)
export const WNOHANG = 1;
export const WUNTRACED = 2;
export const WCONTINUED = 8;

// ioctl_tty(2) (asm-generic/ioctls.h, x86_64 and aarch64 alike)
export const TIOCSCTTY = 0x540e;

// pthread_sigmask(3) `how` (asm-generic/signal-defs.h) and the job-control signal that
// tcsetpgrp(3) sends a background caller (signal(7), x86_64 and aarch64 alike)
export const SIG_BLOCK = 0;
export const SIG_UNBLOCK = 1;
export const SIGTTOU = 22;

// socket(2) (linux/socket.h, linux/net.h)
export const AF_INET = 2;
export const SOCK_DGRAM = 2;
export const SOCK_CLOEXEC = 0o2000000;

// netlink(7), rtnetlink(7): the routing socket pod networking talks to (linux/netlink.h)
export const AF_NETLINK = 16;
export const SOCK_RAW = 3;
export const NETLINK_ROUTE = 0;

// --- AF_UNIX datagram sockets, fd passing, pipes and poll (sd_notify, socket activation) -------
// socket(2), unix(7), socket(7), cmsg(3) (linux/socket.h, asm-generic/socket.h)
export const AF_UNIX = 1;
export const SOCK_NONBLOCK = 0o4000;
export const SOL_SOCKET = 1;
export const SO_PASSCRED = 16;
export const SCM_RIGHTS = 1;
export const SCM_CREDENTIALS = 2;
export const MSG_TRUNC = 0x20;
export const MSG_DONTWAIT = 0x40;
export const MSG_NOSIGNAL = 0x4000;
export const MSG_CTRUNC = 0x8;
export const MSG_CMSG_CLOEXEC = 0x40000000;
/** unix(7): bytes of `sun_path` in `struct sockaddr_un`, the terminating NUL of a pathname included. */
export const UNIX_PATH_MAX = 108;
// pipe2(2), open(2) flags (asm-generic/fcntl.h)
export const O_NONBLOCK = 0o4000;
export const O_CLOEXEC = 0o2000000;
// poll(2) events (asm-generic/poll.h)
export const POLLIN = 0x1;
export const POLLERR = 0x8;
export const POLLHUP = 0x10;
export const POLLNVAL = 0x20;
// close_range(2) (linux/close_range.h)
export const CLOSE_RANGE_CLOEXEC = 1 << 2;

/** One datagram received by recvmsgUnix. */
export interface UnixMessage {
  data: Buffer;
  /** fds received with SCM_RIGHTS (already open in this process, O_CLOEXEC set by MSG_CMSG_CLOEXEC). */
  fds: number[];
  /** SCM_CREDENTIALS of the sender, when the socket has SO_PASSCRED: pid as seen from the receiver's PID namespace (0 when the sender is outside it). */
  credentials?: { pid: number; uid: number; gid: number };
  /** MSG_TRUNC or MSG_CTRUNC: the datagram was longer than the buffer, or fds did not fit. */
  truncated: boolean;
}

/** An entry of poll(2)'s `struct pollfd` array. */
export interface PollFd {
  fd: number;
  events: number;
}
// --- end of AF_UNIX sockets -----------------------------------------------------------------

// netdevice(7): interface flags through ioctl(2) on any socket (linux/sockios.h, linux/if.h)
export const SIOCGIFFLAGS = 0x8913;
export const SIOCSIFFLAGS = 0x8914;
/** Bytes of an interface name in `struct ifreq`, the terminating NUL included. */
export const IFNAMSIZ = 16;
/** sizeof(struct ifreq) on 64-bit Linux: the name, then a 24-byte union (`ifr_flags` is its first short). */
export const IFREQ_SIZE = 40;
/** Offset of `ifr_flags` (a short) in `struct ifreq`. */
export const IFREQ_FLAGS_OFFSET = IFNAMSIZ;
export const IFF_UP = 0x1;
export const IFF_LOOPBACK = 0x8;
export const IFF_RUNNING = 0x40;

/** wait(2) status macros, as glibc's bits/waitstatus.h defines them. */
export function WIFEXITED(status: number): boolean {
  return (status & 0x7f) === 0;
}
export function WEXITSTATUS(status: number): number {
  return (status >> 8) & 0xff;
}
export function WIFSIGNALED(status: number): boolean {
  return ((status & 0x7f) + 1) >> 1 > 0 && (status & 0x7f) !== 0x7f;
}
export function WTERMSIG(status: number): number {
  return status & 0x7f;
}
export function WIFSTOPPED(status: number): boolean {
  return (status & 0xff) === 0x7f;
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
  /** llistxattr(2): the names of the attributes of `path` itself (a symlink's own); [] where the filesystem has none (ENOTSUP). */
  llistxattr(path: string): string[];
  /** renameat2(2) relative to the cwd (AT_FDCWD), with RENAME_NOREPLACE / RENAME_EXCHANGE. */
  renameat2(oldPath: string, newPath: string, flags: number): void;
  /** fsync(2) of a file or directory by path (directories make renames in them durable). */
  fsyncPath(path: string): void;

  /** unshare(2) with CLONE_* flags. In Node this moves only the calling thread (docs/linux-from-node.md). */
  unshare(flags: number): void;
  /** setns(2): join the namespace `fd` refers to; `nstype` is a CLONE_NEW* flag or 0. */
  setns(fd: number, nstype: number): void;
  /** mount(2); `source`, `fstype` and `data` may be null (a bind or propagation change). */
  mount(source: string | null, target: string, fstype: string | null, flags: number, data: string | null): void;
  /** umount2(2) with MNT_* flags. */
  umount2(target: string, flags: number): void;
  /** pivot_root(2), through syscall(2): glibc has no wrapper. */
  pivotRoot(newRoot: string, putOld: string): void;
  /** chroot(2): calling thread only once it has its own fs_struct (unshare(CLONE_FS)). */
  chroot(path: string): void;
  /** chdir(2), in the calling thread's fs_struct. */
  chdir(path: string): void;
  /** sethostname(2) in the calling thread's UTS namespace. */
  sethostname(name: string): void;
  /**
   * setresuid(2) as the RAW syscall: the calling thread only. glibc's setresuid() wrapper makes
   * every thread of the process change credentials (nptl's SIGSETXID broadcast, POSIX's
   * process-wide credentials), which in Node would change the libuv and V8 threads too.
   * -1 keeps an id unchanged.
   */
  setresuid(ruid: number, euid: number, suid: number): void;
  /** setresgid(2) as the RAW per-thread syscall (see setresuid for why). */
  setresgid(rgid: number, egid: number, sgid: number): void;
  /** setgroups(2) as the RAW per-thread syscall (glibc's wrapper also broadcasts via SIGSETXID). */
  setgroups(gids: readonly number[]): void;
  /** capget(2), v3, for `pid` (0 = the calling thread): the 24 data bytes (two u32 triples effective, permitted, inheritable). */
  capget(pid: number): Buffer;
  /** capset(2), v3, for the calling thread: `data` is the 24 bytes `capDataBuffer` builds. */
  capset(data: Buffer): void;
  /** prctl(2); returns the call's non-negative result (PR_CAPBSET_READ, PR_GET_*). */
  prctl(option: number, arg2?: number, arg3?: number, arg4?: number, arg5?: number): number;
  /**
   * seccomp(2) SECCOMP_SET_MODE_FILTER with `program` = a `struct sock_filter` array (8 bytes
   * each). Calling thread only (no SECCOMP_FILTER_FLAG_TSYNC). Needs no_new_privs or CAP_SYS_ADMIN.
   */
  seccompSetFilter(program: Buffer): void;
  /** fcntl(2) F_SETFD: set or clear FD_CLOEXEC on `fd`. */
  fcntlSetCloexec(fd: number, on: boolean): void;
  /** execve(2): replaces the process image with the calling thread's attributes; returns only by throwing. */
  execve(path: string, argv: readonly string[], envp: readonly string[]): never;
  /** getpid(2). */
  getpid(): number;
  /** kill(2). */
  kill(pid: number, signal: number): void;
  /** waitpid(2); with WNOHANG, undefined when no child has changed state yet. Decode status with WIFEXITED/WEXITSTATUS/WTERMSIG. */
  waitpid(pid: number, options: number): { pid: number; status: number } | undefined;
  /** setpgid(2). */
  setpgid(pid: number, pgid: number): void;
  /** ioctl(fd, TIOCSCTTY, steal): make the terminal on `fd` the controlling terminal of this session. */
  ioctlSetCtty(fd: number, steal: boolean): void;
  /** tcsetpgrp(3): make `pgrp` the foreground process group of the terminal on `fd`. */
  tcsetpgrp(fd: number, pgrp: number): void;
  /** pthread_sigmask(3) for the calling thread: SIG_BLOCK or SIG_UNBLOCK the given signal numbers. */
  pthreadSigmask(how: number, signals: readonly number[]): void;
  /** socket(2); returns the new fd. Created in the calling thread's network namespace. */
  socket(domain: number, type: number, protocol: number): number;
  /** close(2) of an fd tspod opened through this layer (socket). */
  close(fd: number): void;
  /**
   * ioctl(fd, request, struct ifreq *) for the netdevice(7) requests (SIOCGIFFLAGS, SIOCSIFFLAGS):
   * `ifreq` is IFREQ_SIZE bytes, read and written in place (a get fills it).
   */
  ioctlIfreq(fd: number, request: number, ifreq: Buffer): void;
  /** send(2) of the whole buffer on a socket (a netlink socket: to the kernel); returns the bytes sent. */
  send(fd: number, data: Buffer): number;
  /** recv(2) into `buffer` (blocking); returns the bytes received. */
  recv(fd: number, buffer: Buffer): number;

  // --- AF_UNIX datagram sockets, fd passing, pipes and poll (sd_notify, socket activation) -----
  /** pipe2(2); returns [read end, write end]. */
  pipe2(flags: number): [number, number];
  /** dup2(2): `newFd` becomes a copy of `oldFd` (closed first if open); the copy has FD_CLOEXEC clear. */
  dup2(oldFd: number, newFd: number): void;
  /** setsockopt(2) with an `int` option value (SOL_SOCKET/SO_PASSCRED ...). */
  setsockoptInt(fd: number, level: number, name: number, value: number): void;
  /**
   * bind(2) of an AF_UNIX socket to `address`: a filesystem path, or `@name` for the abstract
   * namespace (unix(7): a leading NUL byte, the name is not NUL-terminated; per network namespace).
   */
  bindUnix(fd: number, address: string): void;
  /**
   * sendmsg(2) of one datagram on an AF_UNIX socket, to `address` (a path or `@name`, as
   * bindUnix) or to the connected peer, with `fds` as SCM_RIGHTS ancillary data (cmsg(3)).
   * MSG_NOSIGNAL is always set. Returns the bytes sent.
   */
  sendmsgUnix(fd: number, data: Buffer, options?: { address?: string; fds?: readonly number[]; flags?: number }): number;
  /**
   * recvmsg(2) of one datagram (at most `maxBytes`) with its SCM_RIGHTS fds and SCM_CREDENTIALS
   * (MSG_CMSG_CLOEXEC). With MSG_DONTWAIT or on an O_NONBLOCK socket, undefined when nothing is
   * queued (EAGAIN).
   */
  recvmsgUnix(fd: number, maxBytes: number, flags?: number): UnixMessage | undefined;
  /** poll(2): the `revents` of each entry, in order; blocks the calling thread up to `timeoutMs` (-1: no limit). */
  poll(fds: readonly PollFd[], timeoutMs: number): number[];
  /**
   * poll(2) on one of koffi's worker threads, so the event loop keeps running: how Node waits on
   * an fd libuv will not wrap (an AF_UNIX datagram socket: uv_guess_handle calls it UNKNOWN).
   */
  pollAsync(fds: readonly PollFd[], timeoutMs: number): Promise<number[]>;
  /** close_range(2) from `first` to the highest fd, with CLOSE_RANGE_CLOEXEC: marks them close-on-exec instead of closing them (Linux 5.11). */
  closeRangeCloexec(first: number): void;
  // --- end of AF_UNIX sockets ------------------------------------------------------------------
}
