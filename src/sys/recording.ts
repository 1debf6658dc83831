// A recording fake of Syscalls for unit tests of logic: every call is appended to `calls`;
// behaviour per call can be scripted with `fail` (throw a SyscallError with an errno).
import { SyscallError, type Syscalls } from './types.js';

export interface RecordedCall {
  syscall: keyof Syscalls;
  args: unknown[];
}

export class RecordingSyscalls implements Syscalls {
  readonly calls: RecordedCall[] = [];
  private readonly failures = new Map<string, number>();
  private readonly xattrs = new Map<string, Buffer>();

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
  renameat2(oldPath: string, newPath: string, flags: number): void {
    this.record('renameat2', [oldPath, newPath, flags], newPath);
  }
  fsyncPath(path: string): void {
    this.record('fsyncPath', [path], path);
  }
}
