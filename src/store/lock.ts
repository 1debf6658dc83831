// File locks with flock(2): shared or exclusive, on a lock file or a directory. A lock belongs
// to the open file description, so it is released when the process dies (kill -9 included) and
// never outlives its holder. Waiting polls with LOCK_NB so the event loop keeps running.
import fs from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

import { StoreError } from '../errors.js';
import { LOCK_EX, LOCK_NB, LOCK_SH, LOCK_UN, SyscallError, type Syscalls } from '../sys/types.js';

export type LockMode = 'shared' | 'exclusive';

export class FileLock {
  private fd: number | undefined;
  constructor(
    private readonly sys: Syscalls,
    readonly path: string,
    fd: number,
    readonly mode: LockMode,
  ) {
    this.fd = fd;
  }

  /** The fd holding the lock (to hand to a child process that keeps the lock alive). */
  get descriptor(): number {
    if (this.fd === undefined) throw new StoreError(`lock ${this.path} was released`);
    return this.fd;
  }

  release(): void {
    if (this.fd === undefined) return;
    try {
      this.sys.flock(this.fd, LOCK_UN);
    } finally {
      fs.closeSync(this.fd);
      this.fd = undefined;
    }
  }
}

function openLockFile(file: string): number {
  try {
    // A directory can be locked too (pods lock their own directory, as rkt does).
    if (fs.statSync(file).isDirectory()) return fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  return fs.openSync(file, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o644);
}

function isWouldBlock(err: unknown): boolean {
  return err instanceof SyscallError && (err.code === 'EWOULDBLOCK' || err.code === 'EAGAIN');
}

/** Tries to take the lock without waiting; undefined when another process holds it. */
export function tryLock(sys: Syscalls, file: string, mode: LockMode): FileLock | undefined {
  const fd = openLockFile(file);
  try {
    sys.flock(fd, (mode === 'exclusive' ? LOCK_EX : LOCK_SH) | LOCK_NB);
  } catch (err) {
    fs.closeSync(fd);
    if (isWouldBlock(err)) return undefined;
    throw err;
  }
  return new FileLock(sys, file, fd, mode);
}

/** Takes the lock, waiting for it (polling with backoff) up to `timeoutMs` (default: forever). */
export async function lock(sys: Syscalls, file: string, mode: LockMode, timeoutMs = Infinity): Promise<FileLock> {
  const started = Date.now();
  let delay = 2;
  for (;;) {
    const held = tryLock(sys, file, mode);
    if (held !== undefined) return held;
    if (Date.now() - started > timeoutMs) {
      throw new StoreError(`lock ${file}: still held by another tspod process after ${timeoutMs} ms`);
    }
    await sleep(delay);
    delay = Math.min(delay * 2, 50);
  }
}

/** Runs `fn` while holding the lock. */
export async function withLock<T>(sys: Syscalls, file: string, mode: LockMode, fn: () => Promise<T> | T): Promise<T> {
  const held = await lock(sys, file, mode);
  try {
    return await fn();
  } finally {
    held.release();
  }
}
