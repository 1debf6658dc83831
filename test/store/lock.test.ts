import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { lock, tryLock } from '../../src/store/lock.js';
import { libcSyscalls } from '../../src/sys/index.js';

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tspod-lock-'));
});
afterEach(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('file locks', () => {
  it('shared locks coexist; an exclusive lock waits for them', async () => {
    const file = path.join(dir, 'l.lock');
    const a = tryLock(libcSyscalls, file, 'shared');
    const b = tryLock(libcSyscalls, file, 'shared');
    expect(a).toBeDefined();
    expect(b).toBeDefined();
    expect(tryLock(libcSyscalls, file, 'exclusive')).toBeUndefined();
    a?.release();
    b?.release();
    const c = await lock(libcSyscalls, file, 'exclusive', 1000);
    c.release();
  });

  it('a lock can be taken on a directory', () => {
    const held = tryLock(libcSyscalls, dir, 'exclusive');
    expect(held).toBeDefined();
    expect(tryLock(libcSyscalls, dir, 'shared')).toBeUndefined();
    held?.release();
  });

  it('gives up after the timeout with a message naming the lock file', async () => {
    const file = path.join(dir, 'busy.lock');
    const held = tryLock(libcSyscalls, file, 'exclusive');
    await expect(lock(libcSyscalls, file, 'shared', 50)).rejects.toThrow(/busy\.lock: still held by another tspod process/);
    held?.release();
  });

  it('a lock held by a process killed with SIGKILL is free again', async () => {
    const file = path.join(dir, 'k.lock');
    // flock(1) -o: only the flock process holds the lock (its fd is closed before sleep runs).
    const child = spawn('flock', ['-o', '-x', file, 'sleep', '30'], { stdio: 'ignore' });
    await waitFor(() => {
      const held = tryLock(libcSyscalls, file, 'shared');
      held?.release();
      return held === undefined;
    });
    child.kill('SIGKILL');
    await new Promise((r) => child.on('exit', r));
    await waitFor(() => {
      const held = tryLock(libcSyscalls, file, 'exclusive');
      held?.release();
      return held !== undefined;
    });
  });
});

async function waitFor(check: () => boolean, timeoutMs = 5000): Promise<void> {
  const start = Date.now();
  while (!check()) {
    if (Date.now() - start > timeoutMs) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}
