import os from 'node:os';

import { describe, expect, it } from 'vitest';

import { DEFAULT_BLACKLIST, DEFAULT_WHITELIST, NOT_ON_X86_64, RETAIN_IMPLICIT } from '../../stage1/seccomp-groups.js';
import {
  AUDIT_ARCH_X86_64,
  SECCOMP_RET_ALLOW,
  SECCOMP_RET_KILL_PROCESS,
  SYSCALLS_X86_64,
  X32_SYSCALL_BIT,
  buildSeccompFilter,
  runFilter,
  seccompForApp,
  syscallNumber,
} from '../../stage1/seccomp.js';

const EPERM = os.constants.errno.EPERM;
const ENOSYS = os.constants.errno.ENOSYS;
const AUDIT_ARCH_I386 = 0x40000003;
const run = (program: Buffer, name: string) => runFilter(program, { nr: syscallNumber(name), arch: AUDIT_ARCH_X86_64 });

/** Every jt/jf of a program, to check they stay in range and inside the program. */
function jumps(program: Buffer): { pc: number; target: number }[] {
  const out: { pc: number; target: number }[] = [];
  for (let pc = 0; pc < program.length / 8; pc++) {
    const code = program.readUInt16LE(pc * 8);
    if ((code & 0x07) !== 0x05) continue;
    if ((code & 0xf0) === 0x00) out.push({ pc, target: pc + 1 + program.readUInt32LE(pc * 8 + 4) });
    else out.push({ pc, target: pc + 1 + program.readUInt8(pc * 8 + 2) }, { pc, target: pc + 1 + program.readUInt8(pc * 8 + 3) });
  }
  return out;
}

describe('syscall table', () => {
  it('comes from asm/unistd_64.h: read is 0, execve 59, AUDIT_ARCH_X86_64 is 0xc000003e', () => {
    expect(SYSCALLS_X86_64.read).toBe(0);
    expect(SYSCALLS_X86_64.execve).toBe(59);
    expect(AUDIT_ARCH_X86_64).toBe(0xc000003e);
    expect(X32_SYSCALL_BIT).toBe(0x40000000);
  });

  it('knows every group member, or lists it as another architecture\'s call', () => {
    for (const name of [...DEFAULT_WHITELIST, ...DEFAULT_BLACKLIST, ...RETAIN_IMPLICIT]) {
      expect(Object.hasOwn(SYSCALLS_X86_64, name) || NOT_ON_X86_64.includes(name), name).toBe(true);
    }
  });

  it('keeps the default whitelist and blacklist disjoint', () => {
    const white = new Set(DEFAULT_WHITELIST);
    expect(DEFAULT_BLACKLIST.filter((s) => white.has(s))).toEqual([]);
    expect(DEFAULT_WHITELIST.length).toBeGreaterThan(280);
  });
});

describe('buildSeccompFilter', () => {
  it('retain mode allows listed calls and denies others with the errno', () => {
    const f = buildSeccompFilter({ mode: 'retain', syscalls: ['read', 'write'], errno: 'EPERM', arch: 'x86_64' });
    expect(run(f.program, 'write')).toMatchObject({ action: 'allow' });
    expect(run(f.program, 'execve')).toMatchObject({ action: 'allow' }); // implicit set
    expect(run(f.program, 'mount')).toMatchObject({ action: 'errno', errno: EPERM });
    expect(f.defaultAction).toBe((0x00050000 | EPERM) >>> 0);
  });

  it('retain mode with an empty errno kills the process (SECCOMP_RET_KILL_PROCESS)', () => {
    const f = buildSeccompFilter({ mode: 'retain', syscalls: ['read'], errno: '', arch: 'x86_64' });
    expect(run(f.program, 'socket')).toMatchObject({ action: 'kill_process' });
    expect(f.defaultAction).toBe(SECCOMP_RET_KILL_PROCESS);
  });

  it('remove mode blocks listed calls with ENOSYS and allows the rest', () => {
    const f = buildSeccompFilter({ mode: 'remove', syscalls: ['@docker/default-blacklist'], errno: 'ENOSYS', arch: 'x86_64' });
    expect(run(f.program, 'mount')).toMatchObject({ action: 'errno', errno: ENOSYS });
    expect(run(f.program, 'ptrace')).toMatchObject({ action: 'errno', errno: ENOSYS });
    expect(run(f.program, 'read')).toMatchObject({ action: 'allow' });
    expect(f.defaultAction).toBe(SECCOMP_RET_ALLOW);
    expect(f.skipped).toContain('stime');
  });

  it('kills a call made with a foreign architecture (i386 int 0x80)', () => {
    const f = buildSeccompFilter({ mode: 'remove', syscalls: ['mount'], errno: 'EPERM', arch: 'x86_64' });
    expect(runFilter(f.program, { nr: 3, arch: AUDIT_ARCH_I386 })).toMatchObject({ action: 'kill_process' });
  });

  it('kills an x32 call (nr with __X32_SYSCALL_BIT) even in remove mode', () => {
    const f = buildSeccompFilter({ mode: 'remove', syscalls: ['mount'], errno: 'EPERM', arch: 'x86_64' });
    expect(runFilter(f.program, { nr: X32_SYSCALL_BIT + 0, arch: AUDIT_ARCH_X86_64 })).toMatchObject({ action: 'kill_process' });
    expect(runFilter(f.program, { nr: X32_SYSCALL_BIT + 165, arch: AUDIT_ARCH_X86_64 })).toMatchObject({ action: 'kill_process' });
  });

  it('builds a valid program for a 300+ syscall whitelist: every jump in range, every call decided right', () => {
    const all = Object.keys(SYSCALLS_X86_64);
    const listed = all.filter((n) => n !== 'mount' && n !== 'reboot');
    expect(listed.length).toBeGreaterThan(300);
    const f = buildSeccompFilter({ mode: 'retain', syscalls: listed, errno: 'EPERM', arch: 'x86_64' });
    const count = f.program.length / 8;
    for (const j of jumps(f.program)) expect(j.target, `jump at ${j.pc}`).toBeLessThan(count);
    for (const n of listed) expect(run(f.program, n).action, n).toBe('allow');
    expect(run(f.program, 'mount')).toMatchObject({ action: 'errno', errno: EPERM });
    expect(run(f.program, 'reboot')).toMatchObject({ action: 'errno', errno: EPERM });
    expect(runFilter(f.program, { nr: 9999, arch: AUDIT_ARCH_X86_64 })).toMatchObject({ action: 'errno' });
  });

  it('splits long lists into blocks with ja trampolines (small maxJump)', () => {
    const listed = Object.keys(SYSCALLS_X86_64).slice(0, 50);
    const f = buildSeccompFilter({ mode: 'remove', syscalls: listed, errno: 'EACCES', arch: 'x86_64', maxJump: 7 });
    for (const n of listed) expect(run(f.program, n).action, n).toBe('errno');
    for (const n of Object.keys(SYSCALLS_X86_64).slice(50)) expect(run(f.program, n).action, n).toBe('allow');
    for (const j of jumps(f.program)) expect(j.target).toBeLessThan(f.program.length / 8);
  });

  it('rejects unknown syscall names and names all of them', () => {
    expect(() => buildSeccompFilter({ mode: 'retain', syscalls: ['read', 'frobnicate', 'stime'], arch: 'x86_64' })).toThrow(/frobnicate, stime.*stime exist only on other architectures/);
    expect(() => buildSeccompFilter({ mode: 'retain', syscalls: ['@nope/group'], arch: 'x86_64' })).toThrow(/@nope\/group/);
  });

  it('rejects an unknown errno', () => {
    expect(() => buildSeccompFilter({ mode: 'retain', syscalls: ['read'], errno: 'EWHAT', arch: 'x86_64' })).toThrow(/unknown errno "EWHAT"/);
  });
});

describe('seccompForApp', () => {
  it('uses rkt\'s default whitelist with EPERM when the app has no seccomp isolator', () => {
    const c = seccompForApp([]);
    expect(c).toMatchObject({ source: 'default', mode: 'retain', errno: 'EPERM' });
    const p = c.filter?.program ?? Buffer.alloc(0);
    expect(run(p, 'read').action).toBe('allow');
    expect(run(p, 'clone3').action).toBe('allow');
    expect(run(p, 'mount')).toMatchObject({ action: 'errno', errno: EPERM });
    expect(run(p, 'kexec_load')).toMatchObject({ action: 'errno', errno: EPERM });
  });

  it('gives no filter for retain @appc.io/all', () => {
    expect(seccompForApp([{ name: 'os/linux/seccomp-retain-set', value: { set: ['@appc.io/all'] } }]).filter).toBeUndefined();
  });

  it('treats remove @appc.io/empty as the default whitelist', () => {
    const c = seccompForApp([{ name: 'os/linux/seccomp-remove-set', value: { set: ['@appc.io/empty'] } }]);
    expect(c.mode).toBe('retain');
    expect(run(c.filter?.program ?? Buffer.alloc(8), 'mount').action).toBe('errno');
  });

  it('uses a remove-set without errno as kill', () => {
    const c = seccompForApp([{ name: 'os/linux/seccomp-remove-set', value: { set: ['chmod'] } }]);
    expect(run(c.filter?.program ?? Buffer.alloc(8), 'chmod').action).toBe('kill_process');
    expect(run(c.filter?.program ?? Buffer.alloc(8), 'mount').action).toBe('allow');
  });

  it('rejects retain and remove together', () => {
    expect(() =>
      seccompForApp(
        [
          { name: 'os/linux/seccomp-retain-set', value: { set: ['read'] } },
          { name: 'os/linux/seccomp-remove-set', value: { set: ['mount'] } },
        ],
        'web',
      ),
    ).toThrow(/app web: only one/);
  });
});
