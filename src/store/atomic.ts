// Atomic disk writes: every file tspod publishes is written to a temporary name in the same
// directory (or the store's tmp area), fsynced, renamed into place, and the directory fsynced,
// so a reader sees the old content or the new, never a half-written file, even after kill -9.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

import type { Syscalls } from '../sys/types.js';

/** A temporary name beside `target`: `.<base>.tmp-<random>` (hidden from listings). */
export function tmpPathFor(target: string): string {
  return path.join(path.dirname(target), `.${path.basename(target)}.tmp-${crypto.randomBytes(6).toString('hex')}`);
}

/** Writes `data` to `target` atomically and durably (tmp + fsync + rename + fsync of the dir). */
export function writeFileAtomic(sys: Syscalls, target: string, data: string | Uint8Array, mode = 0o644): void {
  const tmp = tmpPathFor(target);
  const fd = fs.openSync(tmp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, mode);
  try {
    fs.writeFileSync(fd, data);
    fs.fsyncSync(fd);
  } catch (err) {
    fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw err;
  }
  fs.closeSync(fd);
  try {
    fs.renameSync(tmp, target);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw err;
  }
  sys.fsyncPath(path.dirname(target));
}

/** Writes a JSON document atomically (2-space indented, trailing newline). */
export function writeJsonAtomic(sys: Syscalls, target: string, value: unknown): void {
  writeFileAtomic(sys, target, `${JSON.stringify(value, null, 2)}\n`);
}

/** Moves a finished file or directory into place and makes the rename durable. */
export function publish(sys: Syscalls, from: string, to: string): void {
  fs.renameSync(from, to);
  sys.fsyncPath(path.dirname(to));
}

/** The names in `dir`, or none when it does not exist (yet). */
export function readdirOrEmpty(dir: string): string[] {
  try {
    return fs.readdirSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

/** mkdir -p with the given mode; returns the path. */
export function ensureDir(dir: string, mode = 0o755): string {
  fs.mkdirSync(dir, { recursive: true, mode });
  return dir;
}
