// A recording fake of Syscalls for unit tests of logic: every call is appended to `calls`;
// behaviour per call can be scripted with `fail` (throw a SyscallError with an errno). It never
// touches the kernel: execve records the call, then throws RecordedExecve (execve cannot return).
import { CAP_DATA_V3_SIZE, IFF_LOOPBACK, IFNAMSIZ, IFREQ_FLAGS_OFFSET, PR_CAPBSET_DROP, PR_CAPBSET_READ, SIOCGIFFLAGS, SIOCSIFFLAGS, SyscallError, type Syscalls } from './types.js';
import type { PollFd, UnixMessage } from './types.js';

/** Thrown by the fake's execve, in place of the new program image. */
export class RecordedExecve extends Error {
  constructor(
    readonly path: string,
    readonly argv: readonly string[],
    readonly envp: readonly string[],
  ) {
    super(`execve ${path} (recorded)`);
    this.name = 'RecordedExecve';
  }
}

export interface RecordedCall {
  syscall: keyof Syscalls;
  args: unknown[];
}

export class RecordingSyscalls implements Syscalls {
  readonly calls: RecordedCall[] = [];
  private readonly failures = new Map<string, number>();
  private readonly xattrs = new Map<string, Buffer>();
  /** Highest capability number the fake kernel knows: PR_CAPBSET_READ/DROP above it fail with EINVAL, as prctl(2) says. */
  capLastCap = 40;
  /** What capget returns (24 bytes, v3 layout). */
  capData: Buffer = Buffer.alloc(CAP_DATA_V3_SIZE);
  /** Scripted waitpid results, consumed in order; undefined when empty (WNOHANG, nothing to reap). */
  readonly waitResults: { pid: number; status: number }[] = [];
  /** The fake kernel's network interfaces and their flags (SIOCGIFFLAGS/SIOCSIFFLAGS); a new netns has `lo`, down. */
  readonly interfaceFlags = new Map<string, number>([['lo', IFF_LOOPBACK]]);
  /** fds the fake socket() handed out and close() has not closed yet. */
  readonly openFds = new Set<number>();
  private nextFd = 100;
  /** Buffers passed to send(), in order. */
  readonly sent: Buffer[] = [];
  /** Scripted recv() results, consumed in order (a netlink reply each); recv fails with EAGAIN when empty. */
  readonly replies: Buffer[] = [];

  /** Datagrams sendmsgUnix sent, in order. */
  readonly unixSent: { fd: number; data: Buffer; address: string | undefined; fds: number[] }[] = [];
  /** Scripted recvmsgUnix results, consumed in order; undefined (EAGAIN) when empty. */
  readonly unixInbox: UnixMessage[] = [];
  /** Scripted poll/pollAsync results (revents per entry), consumed in order; all zero (timeout) when empty. */
  readonly pollResults: number[][] = [];

  /** The next calls of `syscall` fail with `errno` (until `fail` is called with undefined). */
  fail(syscall: keyof Syscalls, errno: number | undefined): void {
    if (errno === undefined) this.failures.delete(syscall);
    else this.failures.set(syscall, errno);
  }

  private record(syscall: keyof Syscalls, args: unknown[], path?: string): void {
    this.calls.push({ syscall, args });
    const errno = this.failures.get(syscall);
    if (errno !== undefined) throw new SyscallError(syscall, errno, path);
  }

  flock(fd: number, operation: number): void {
    this.record('flock', [fd, operation]);
  }
  mknod(path: string, mode: number, dev: bigint): void {
    this.record('mknod', [path, mode, dev], path);
  }
  lsetxattr(path: string, name: string, value: Buffer): void {
    this.record('lsetxattr', [path, name, value], path);
    this.xattrs.set(`${path}\0${name}`, Buffer.from(value));
  }
  lgetxattr(path: string, name: string): Buffer | undefined {
    this.record('lgetxattr', [path, name], path);
    return this.xattrs.get(`${path}\0${name}`);
  }
  llistxattr(path: string): string[] {
    this.record('llistxattr', [path], path);
    const prefix = `${path}\0`;
    return [...this.xattrs.keys()].filter((k) => k.startsWith(prefix)).map((k) => k.slice(prefix.length));
  }
  renameat2(oldPath: string, newPath: string, flags: number): void {
    this.record('renameat2', [oldPath, newPath, flags], newPath);
  }
  fsyncPath(path: string): void {
    this.record('fsyncPath', [path], path);
  }
  unshare(flags: number): void {
    this.record('unshare', [flags]);
  }
  setns(fd: number, nstype: number): void {
    this.record('setns', [fd, nstype]);
  }
  mount(source: string | null, target: string, fstype: string | null, flags: number, data: string | null): void {
    this.record('mount', [source, target, fstype, flags, data], target);
  }
  umount2(target: string, flags: number): void {
    this.record('umount2', [target, flags], target);
  }
  pivotRoot(newRoot: string, putOld: string): void {
    this.record('pivotRoot', [newRoot, putOld], newRoot);
  }
  chroot(path: string): void {
    this.record('chroot', [path], path);
  }
  chdir(path: string): void {
    this.record('chdir', [path], path);
  }
  sethostname(name: string): void {
    this.record('sethostname', [name]);
  }
  setresuid(ruid: number, euid: number, suid: number): void {
    this.record('setresuid', [ruid, euid, suid]);
  }
  setresgid(rgid: number, egid: number, sgid: number): void {
    this.record('setresgid', [rgid, egid, sgid]);
  }
  setgroups(gids: readonly number[]): void {
    this.record('setgroups', [[...gids]]);
  }
  capget(pid: number): Buffer {
    this.record('capget', [pid]);
    return Buffer.from(this.capData);
  }
  capset(data: Buffer): void {
    this.record('capset', [Buffer.from(data)]);
  }
  prctl(option: number, arg2 = 0, arg3 = 0, arg4 = 0, arg5 = 0): number {
    this.record('prctl', [option, arg2, arg3, arg4, arg5]);
    if ((option === PR_CAPBSET_READ || option === PR_CAPBSET_DROP) && arg2 > this.capLastCap) {
      throw new SyscallError('prctl', 22 /* EINVAL */);
    }
    return option === PR_CAPBSET_READ ? 1 : 0;
  }
  seccompSetFilter(program: Buffer): void {
    this.record('seccompSetFilter', [Buffer.from(program)]);
  }
  fcntlSetCloexec(fd: number, on: boolean): void {
    this.record('fcntlSetCloexec', [fd, on]);
  }
  execve(path: string, argv: readonly string[], envp: readonly string[]): never {
    this.record('execve', [path, [...argv], [...envp]], path);
    throw new RecordedExecve(path, [...argv], [...envp]);
  }
  getpid(): number {
    this.record('getpid', []);
    return process.pid;
  }
  kill(pid: number, signal: number): void {
    this.record('kill', [pid, signal]);
  }
  waitpid(pid: number, options: number): { pid: number; status: number } | undefined {
    this.record('waitpid', [pid, options]);
    return this.waitResults.shift();
  }
  setpgid(pid: number, pgid: number): void {
    this.record('setpgid', [pid, pgid]);
  }
  ioctlSetCtty(fd: number, steal: boolean): void {
    this.record('ioctlSetCtty', [fd, steal]);
  }
  tcsetpgrp(fd: number, pgrp: number): void {
    this.record('tcsetpgrp', [fd, pgrp]);
  }
  pthreadSigmask(how: number, signals: readonly number[]): void {
    this.record('pthreadSigmask', [how, [...signals]]);
  }
  socket(domain: number, type: number, protocol: number): number {
    this.record('socket', [domain, type, protocol]);
    const fd = this.nextFd++;
    this.openFds.add(fd);
    return fd;
  }
  close(fd: number): void {
    this.record('close', [fd]);
    if (!this.openFds.delete(fd)) throw new SyscallError('close', 9 /* EBADF */);
  }
  ioctlIfreq(fd: number, request: number, ifreq: Buffer): void {
    const name = ifreq.subarray(0, IFNAMSIZ).toString('latin1').replace(/\0.*$/s, '');
    this.record('ioctlIfreq', [fd, request, Buffer.from(ifreq)], name);
    if (!this.openFds.has(fd)) throw new SyscallError('ioctlIfreq', 9 /* EBADF */, name);
    const flags = this.interfaceFlags.get(name);
    // netdevice(7): an unknown interface name is ENODEV.
    if (flags === undefined) throw new SyscallError('ioctlIfreq', 19 /* ENODEV */, name);
    if (request === SIOCGIFFLAGS) ifreq.writeUInt16LE(flags, IFREQ_FLAGS_OFFSET);
    else if (request === SIOCSIFFLAGS) this.interfaceFlags.set(name, ifreq.readUInt16LE(IFREQ_FLAGS_OFFSET));
    else throw new SyscallError('ioctlIfreq', 22 /* EINVAL */, name);
  }
  send(fd: number, data: Buffer): number {
    this.record('send', [fd, Buffer.from(data)]);
    if (!this.openFds.has(fd)) throw new SyscallError('send', 9 /* EBADF */);
    this.sent.push(Buffer.from(data));
    return data.length;
  }
  recv(fd: number, buffer: Buffer): number {
    this.record('recv', [fd]);
    if (!this.openFds.has(fd)) throw new SyscallError('recv', 9 /* EBADF */);
    const reply = this.replies.shift();
    if (reply === undefined) throw new SyscallError('recv', 11 /* EAGAIN */);
    return reply.copy(buffer, 0, 0, Math.min(reply.length, buffer.length));
  }

  // --- AF_UNIX datagram sockets, fd passing, pipes and poll ------------------------------------
  closeRangeCloexec(first: number): void {
    this.record('closeRangeCloexec', [first]);
  }
  pipe2(flags: number): [number, number] {
    this.record('pipe2', [flags]);
    const fds: [number, number] = [this.nextFd++, this.nextFd++];
    for (const fd of fds) this.openFds.add(fd);
    return fds;
  }
  dup2(oldFd: number, newFd: number): void {
    this.record('dup2', [oldFd, newFd]);
  }
  setsockoptInt(fd: number, level: number, name: number, value: number): void {
    this.record('setsockoptInt', [fd, level, name, value]);
  }
  bindUnix(fd: number, address: string): void {
    this.record('bindUnix', [fd, address], address);
  }
  sendmsgUnix(fd: number, data: Buffer, options: { address?: string; fds?: readonly number[]; flags?: number } = {}): number {
    this.record('sendmsgUnix', [fd, Buffer.from(data), { ...options, fds: options.fds === undefined ? undefined : [...options.fds] }], options.address);
    this.unixSent.push({ fd, data: Buffer.from(data), address: options.address, fds: [...(options.fds ?? [])] });
    return data.length;
  }
  recvmsgUnix(fd: number, maxBytes: number, flags = 0): UnixMessage | undefined {
    this.record('recvmsgUnix', [fd, maxBytes, flags]);
    return this.unixInbox.shift();
  }
  poll(fds: readonly PollFd[], timeoutMs: number): number[] {
    this.record('poll', [fds.map((p) => ({ ...p })), timeoutMs]);
    return this.pollResults.shift() ?? fds.map(() => 0);
  }
  pollAsync(fds: readonly PollFd[], timeoutMs: number): Promise<number[]> {
    this.record('pollAsync', [fds.map((p) => ({ ...p })), timeoutMs]);
    return Promise.resolve(this.pollResults.shift() ?? fds.map(() => 0));
  }
}
