import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { RecordingSyscalls } from '../../src/sys/recording.js';
import { libcSyscalls, LOCK_EX, LOCK_NB, LOCK_SH, LOCK_UN, makedev, RENAME_NOREPLACE, S_IFCHR, S_IFIFO, SyscallError } from '../../src/sys/index.js';

const isRoot = process.geteuid?.() === 0;
let dir: string;

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tspod-sys-'));
});
afterEach(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('libc syscalls', () => {
  it('flock: a second exclusive lock on another open file description fails with EWOULDBLOCK (EAGAIN)', () => {
    const file = path.join(dir, 'lock');
    fs.writeFileSync(file, '');
    const a = fs.openSync(file, 'r');
    const b = fs.openSync(file, 'r');
    libcSyscalls.flock(a, LOCK_EX | LOCK_NB);
    try {
      libcSyscalls.flock(b, LOCK_SH | LOCK_NB);
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(SyscallError);
      expect(err).toMatchObject({ syscall: 'flock', code: 'EAGAIN', errno: os.constants.errno.EWOULDBLOCK });
    }
    libcSyscalls.flock(a, LOCK_UN);
    libcSyscalls.flock(b, LOCK_SH | LOCK_NB);
    fs.closeSync(a);
    fs.closeSync(b);
  });

  it('flock on a closed fd fails with EBADF', () => {
    expect(() => libcSyscalls.flock(987654, LOCK_EX)).toThrow(/flock: EBADF/);
  });

  it('renameat2 with RENAME_NOREPLACE refuses an existing target with EEXIST and keeps both', () => {
    fs.writeFileSync(path.join(dir, 'a'), 'a');
    fs.writeFileSync(path.join(dir, 'b'), 'b');
    expect(() => libcSyscalls.renameat2(path.join(dir, 'a'), path.join(dir, 'b'), RENAME_NOREPLACE)).toThrow(
      expect.objectContaining({ code: 'EEXIST', path: path.join(dir, 'b') }),
    );
    expect(fs.readFileSync(path.join(dir, 'b'), 'utf8')).toBe('b');
    libcSyscalls.renameat2(path.join(dir, 'a'), path.join(dir, 'c'), RENAME_NOREPLACE);
    expect(fs.readFileSync(path.join(dir, 'c'), 'utf8')).toBe('a');
  });

  it('lsetxattr/lgetxattr round-trip a user.* attribute; an absent one is undefined (ENODATA)', () => {
    const file = path.join(dir, 'x');
    fs.writeFileSync(file, '');
    libcSyscalls.lsetxattr(file, 'user.tspod', Buffer.from('value'));
    expect(libcSyscalls.lgetxattr(file, 'user.tspod')?.toString()).toBe('value');
    expect(libcSyscalls.lgetxattr(file, 'user.absent')).toBeUndefined();
    const big = Buffer.alloc(3000, 7);
    libcSyscalls.lsetxattr(file, 'user.big', big);
    expect(libcSyscalls.lgetxattr(file, 'user.big')).toEqual(big);
  });

  it('llistxattr lists a path\'s own attribute names (a symlink\'s, not its target\'s), past its first buffer', () => {
    const file = path.join(dir, 'listed');
    fs.writeFileSync(file, '');
    fs.symlinkSync(file, path.join(dir, 'listed-link'));
    expect(libcSyscalls.llistxattr(file).filter((n) => n.startsWith('user.'))).toEqual([]);
    const names = Array.from({ length: 60 }, (_, i) => `user.tspod-attribute-${String(i).padStart(2, '0')}`);
    for (const name of names) libcSyscalls.lsetxattr(file, name, Buffer.from('1'));
    expect(libcSyscalls.llistxattr(file).filter((n) => n.startsWith('user.')).sort()).toEqual(names);
    expect(libcSyscalls.llistxattr(path.join(dir, 'listed-link')).filter((n) => n.startsWith('user.'))).toEqual([]);
    expect(() => libcSyscalls.llistxattr(path.join(dir, 'missing'))).toThrow(/llistxattr .*missing: ENOENT/);
  });

  it('lsetxattr on a missing path fails with ENOENT naming the path', () => {
    expect(() => libcSyscalls.lsetxattr(path.join(dir, 'missing'), 'user.a', Buffer.from('1'))).toThrow(/lsetxattr .*missing: ENOENT/);
  });

  it('mknod makes a fifo', () => {
    libcSyscalls.mknod(path.join(dir, 'fifo'), S_IFIFO | 0o600, 0n);
    expect(fs.lstatSync(path.join(dir, 'fifo')).isFIFO()).toBe(true);
  });

  it.skipIf(!isRoot)('mknod makes a character device with the right major/minor (needs root)', () => {
    libcSyscalls.mknod(path.join(dir, 'null'), S_IFCHR | 0o666, makedev(1, 3));
    const st = fs.lstatSync(path.join(dir, 'null'));
    expect(st.isCharacterDevice()).toBe(true);
    expect(st.rdev).toBe(Number(makedev(1, 3)));
  });

  it('makedev encodes large minors as glibc does', () => {
    expect(makedev(8, 1)).toBe(0x801n);
    expect(makedev(259, 65536)).toBe(0x10010300n);
  });

  it('fsyncPath syncs a directory', () => {
    expect(() => libcSyscalls.fsyncPath(dir)).not.toThrow();
  });
});

describe('recording fake', () => {
  it('records calls and fails them with a scripted errno', () => {
    const fake = new RecordingSyscalls();
    fake.flock(3, LOCK_EX);
    fake.fail('renameat2', os.constants.errno.EXDEV);
    expect(() => fake.renameat2('/a', '/b', 0)).toThrow(expect.objectContaining({ code: 'EXDEV', syscall: 'renameat2' }));
    expect(fake.calls.map((c) => c.syscall)).toEqual(['flock', 'renameat2']);
  });
});
