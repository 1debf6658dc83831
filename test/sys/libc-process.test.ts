// The stage1 calls of the libc layer against the real kernel. Calls that change the thread for
// good (setresuid, seccomp, pivot_root, execve) run in a throw-away `node` child that imports the
// compiled layer from dist/ (the vitest global setup builds it); the rest run in-process.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { RecordedExecve, RecordingSyscalls } from '../../src/sys/recording.js';
import {
  CLONE_NEWUSER,
  libcSyscalls,
  MNT_DETACH,
  MS_NODEV,
  MS_NOSUID,
  PR_CAPBSET_READ,
  PR_GET_NO_NEW_PRIVS,
  SyscallError,
  WEXITSTATUS,
  WIFEXITED,
  WIFSIGNALED,
  WIFSTOPPED,
  WNOHANG,
  WTERMSIG,
} from '../../src/sys/index.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const DIST_SYS = path.join(ROOT, 'dist', 'src', 'sys', 'index.js');
const isRoot = process.geteuid?.() === 0;
let dir: string;

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tspod-sys-proc-'));
});
afterEach(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

/** Runs an ESM snippet in a fresh node with `sys` (the compiled src/sys) and `fs` in scope. */
function child(body: string): { status: number | null; stdout: string; stderr: string } {
  if (!fs.existsSync(DIST_SYS)) throw new Error(`${DIST_SYS} is missing: the vitest global setup compiles src/ to dist/`);
  const script = path.join(dir, 'child.mjs');
  fs.writeFileSync(script, `import fs from 'node:fs';\nimport * as sys from ${JSON.stringify(DIST_SYS)};\nconst s = sys.libcSyscalls;\n${body}\n`);
  const r = spawnSync(process.execPath, [script], { encoding: 'utf8', timeout: 30_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function statusField(text: string, field: string): string | undefined {
  return new RegExp(`^${field}:\\s*(.*)$`, 'm').exec(text)?.[1];
}

describe('libc syscalls: process, credentials, namespaces', () => {
  it('unshare(CLONE_NEWUSER) fails with EINVAL in a multi-threaded Node process', () => {
    expect(() => libcSyscalls.unshare(CLONE_NEWUSER)).toThrow(expect.objectContaining({ syscall: 'unshare', code: 'EINVAL' }));
  });

  it('getpid is process.pid; kill(pid, 0) probes, a missing pid fails with ESRCH', () => {
    expect(libcSyscalls.getpid()).toBe(process.pid);
    libcSyscalls.kill(process.pid, 0);
    expect(() => libcSyscalls.kill(0x3ffffff, 0)).toThrow(expect.objectContaining({ syscall: 'kill', code: 'ESRCH' }));
  });

  it('waitpid on a pid that is not a child fails with ECHILD', () => {
    expect(() => libcSyscalls.waitpid(0x3ffffff, WNOHANG)).toThrow(expect.objectContaining({ syscall: 'waitpid', code: 'ECHILD' }));
  });

  it('wait status helpers decode exit 3, SIGKILL and a stop as glibc does', () => {
    expect([WIFEXITED(0x0300), WEXITSTATUS(0x0300), WIFSIGNALED(0x0300)]).toEqual([true, 3, false]);
    expect([WIFEXITED(9), WIFSIGNALED(9), WTERMSIG(9)]).toEqual([false, true, 9]);
    expect([WIFSTOPPED(0x137f), WIFSIGNALED(0x137f), WIFEXITED(0x137f)]).toEqual([true, false, false]);
  });

  it('capget(0) returns the effective and permitted sets /proc shows for this thread', () => {
    const data = libcSyscalls.capget(0);
    expect(data.length).toBe(24);
    const status = fs.readFileSync('/proc/thread-self/status', 'utf8');
    const word = (off: number): string => (BigInt(data.readUInt32LE(off + 12)) << 32n | BigInt(data.readUInt32LE(off))).toString(16).padStart(16, '0');
    expect(word(0)).toBe(statusField(status, 'CapEff'));
    expect(word(4)).toBe(statusField(status, 'CapPrm'));
    expect(word(8)).toBe(statusField(status, 'CapInh'));
  });

  it('prctl returns results (PR_GET_NO_NEW_PRIVS, PR_CAPBSET_READ) and fails with EINVAL past the last capability', () => {
    expect(libcSyscalls.prctl(PR_GET_NO_NEW_PRIVS)).toBe(Number(statusField(fs.readFileSync('/proc/thread-self/status', 'utf8'), 'NoNewPrivs')));
    expect([0, 1]).toContain(libcSyscalls.prctl(PR_CAPBSET_READ, 0));
    expect(() => libcSyscalls.prctl(PR_CAPBSET_READ, 63)).toThrow(expect.objectContaining({ syscall: 'prctl', code: 'EINVAL' }));
  });

  it('fcntlSetCloexec(fd, false) lets a spawned child inherit the fd; true closes it at exec', async () => {
    const file = path.join(dir, 'f');
    fs.writeFileSync(file, '');
    const fd = fs.openSync(file, 'r');
    const probe = async (): Promise<string> =>
      new Promise((resolve, reject) => {
        // Node opens every fd O_CLOEXEC; a child sees this fd only if FD_CLOEXEC was cleared.
        const c = spawn('/bin/sh', ['-c', `if test -e /proc/self/fd/${fd}; then echo inherited; else echo closed; fi`], { stdio: ['ignore', 'pipe', 'inherit'] });
        let out = '';
        c.stdout.on('data', (d: Buffer) => (out += d.toString()));
        c.on('error', reject);
        c.on('close', () => resolve(out.trim()));
      });
    try {
      expect(await probe()).toBe('closed');
      libcSyscalls.fcntlSetCloexec(fd, false);
      expect(await probe()).toBe('inherited');
      libcSyscalls.fcntlSetCloexec(fd, true);
      expect(await probe()).toBe('closed');
    } finally {
      fs.closeSync(fd);
    }
    expect(() => libcSyscalls.fcntlSetCloexec(987654, false)).toThrow(/fcntl: EBADF/);
  });

  it.skipIf(!isRoot)('mount a tmpfs with MS_NOSUID|MS_NODEV and umount2 it with MNT_DETACH (needs root)', () => {
    const target = path.join(dir, 'mnt');
    fs.mkdirSync(target);
    libcSyscalls.mount('tmpfs', target, 'tmpfs', MS_NOSUID | MS_NODEV, 'size=1m,mode=0700');
    try {
      const line = fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').find((l) => l.split(' ')[4] === target);
      expect(line).toMatch(/nosuid,nodev/);
      expect(line).toMatch(/ - tmpfs tmpfs .*size=1024k/);
    } finally {
      libcSyscalls.umount2(target, MNT_DETACH);
    }
    expect(() => libcSyscalls.umount2(target, 0)).toThrow(expect.objectContaining({ syscall: 'umount2', code: 'EINVAL', path: target }));
  });

  it('mount of a missing target fails with ENOENT naming the target', () => {
    expect(() => libcSyscalls.mount('tmpfs', path.join(dir, 'absent'), 'tmpfs', 0, null)).toThrow(
      expect.objectContaining({ syscall: 'mount', path: path.join(dir, 'absent') }),
    );
  });

  it.skipIf(!isRoot)('raw setresuid changes only the calling thread; the other Node threads stay root (needs root)', () => {
    const r = child(`
      s.setgroups([65534]);
      s.setresgid(65534, 65534, 65534);
      s.setresuid(65534, 65534, 65534);
      const uids = fs.readdirSync('/proc/self/task').map((tid) => {
        const st = fs.readFileSync('/proc/self/task/' + tid + '/status', 'utf8');
        return { main: Number(tid) === process.pid, uid: /^Uid:\\s*(\\d+)/m.exec(st)[1], groups: /^Groups:\\s*(.*)$/m.exec(st)[1].trim() };
      });
      console.log(JSON.stringify(uids));
    `);
    expect(r.stderr).toBe('');
    const threads = JSON.parse(r.stdout) as { main: boolean; uid: string; groups: string }[];
    expect(threads.filter((t) => t.main)).toEqual([{ main: true, uid: '65534', groups: '65534' }]);
    expect(threads.length).toBeGreaterThan(1);
    expect(threads.filter((t) => !t.main).every((t) => t.uid === '0')).toBe(true);
  });

  it.skipIf(process.arch !== 'x64')('seccompSetFilter with no_new_privs: a filter returning EACCES for mkdir applies to the main thread only (x86_64 syscall numbers)', () => {
    // ld [nr]; jeq SYS_mkdir(83) ? ret ERRNO|EACCES : ret ALLOW (x86_64 numbers).
    const r = child(`
      const prog = Buffer.alloc(32);
      const put = (i, code, jt, jf, k) => { prog.writeUInt16LE(code, i * 8); prog[i * 8 + 2] = jt; prog[i * 8 + 3] = jf; prog.writeUInt32LE(k >>> 0, i * 8 + 4); };
      put(0, 0x20, 0, 0, 0); put(1, 0x15, 0, 1, 83); put(2, 0x06, 0, 0, 0x00050000 | 13); put(3, 0x06, 0, 0, 0x7fff0000);
      s.prctl(sys.PR_SET_NO_NEW_PRIVS, 1);
      s.seccompSetFilter(prog);
      let main;
      try { fs.mkdirSync(${JSON.stringify(path.join(dir, 'main'))}); main = 'made'; } catch (e) { main = e.code; }
      await fs.promises.mkdir(${JSON.stringify(path.join(dir, 'pool'))});
      console.log(main, fs.readFileSync('/proc/thread-self/status', 'utf8').match(/^Seccomp:\\s*(\\d)/m)[1]);
    `);
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('EACCES 2');
    // The libuv thread pool has no filter: the same mkdir from there worked.
    expect(fs.existsSync(path.join(dir, 'pool'))).toBe(true);
  });

  it('seccompSetFilter without no_new_privs or CAP_SYS_ADMIN fails with EACCES; a bad length is refused before the call', () => {
    expect(() => libcSyscalls.seccompSetFilter(Buffer.alloc(5))).toThrow(RangeError);
    if (isRoot) return;
    expect(() => libcSyscalls.seccompSetFilter(Buffer.alloc(8))).toThrow(expect.objectContaining({ syscall: 'seccomp', code: 'EACCES' }));
  });

  it.skipIf(!isRoot)('unshare(CLONE_FS|CLONE_NEWNS|CLONE_NEWUTS), pivot_root into a new root, sethostname, then execve keeps all of it (needs root)', () => {
    const newRoot = path.join(dir, 'newroot');
    fs.mkdirSync(path.join(newRoot, 'bin'), { recursive: true });
    fs.mkdirSync(path.join(newRoot, 'old'));
    fs.copyFileSync('/bin/busybox', path.join(newRoot, 'bin', 'busybox'));
    fs.chmodSync(path.join(newRoot, 'bin', 'busybox'), 0o755);
    fs.writeFileSync(path.join(newRoot, 'marker'), 'in the new root');
    const r = child(`
      s.unshare(sys.CLONE_FS | sys.CLONE_NEWNS | sys.CLONE_NEWUTS);
      // pivot_root(2): the new root must be a mount point, and no mount may be shared.
      s.mount(null, '/', null, sys.MS_REC | sys.MS_PRIVATE, null);
      s.mount(${JSON.stringify(newRoot)}, ${JSON.stringify(newRoot)}, null, sys.MS_BIND, null);
      s.pivotRoot(${JSON.stringify(newRoot)}, ${JSON.stringify(path.join(newRoot, 'old'))});
      s.chdir('/');
      s.umount2('/old', sys.MNT_DETACH);
      s.sethostname('tspod-test');
      for (const fd of [0, 1, 2]) s.fcntlSetCloexec(fd, false);
      s.execve('/bin/busybox', ['sh', '-c', 'busybox hostname; busybox cat /marker; echo; busybox ls /old | busybox wc -l'], ['PATH=/bin']);
    `);
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('tspod-test\nin the new root\n0\n');
    expect(os.hostname()).not.toBe('tspod-test');
  });

  it('execve of a missing file throws SyscallError ENOENT and the process goes on (in a child)', () => {
    const r = child(`
      try { s.execve('/nonexistent/app', ['app'], []); } catch (e) { console.log(e.constructor.name, e.code, e.path); }
    `);
    expect(r.stdout.trim()).toBe('SyscallError ENOENT /nonexistent/app');
  });

  it('chroot of a missing directory fails with ENOENT naming it; chdir likewise', () => {
    expect(() => libcSyscalls.chroot(path.join(dir, 'absent'))).toThrow(expect.objectContaining({ syscall: 'chroot', code: 'ENOENT' }));
    expect(() => libcSyscalls.chdir(path.join(dir, 'absent'))).toThrow(expect.objectContaining({ syscall: 'chdir', code: 'ENOENT' }));
  });

  it('setns on a closed fd fails with EBADF', () => {
    expect(() => libcSyscalls.setns(987654, 0)).toThrow(expect.objectContaining({ syscall: 'setns', code: 'EBADF' }));
  });
});

describe('recording fake: stage1 calls', () => {
  it('records execve and throws RecordedExecve instead of returning', () => {
    const fake = new RecordingSyscalls();
    expect(() => fake.execve('/bin/sh', ['sh'], ['A=1'])).toThrow(RecordedExecve);
    expect(fake.calls).toEqual([{ syscall: 'execve', args: ['/bin/sh', ['sh'], ['A=1']] }]);
  });

  it('fails PR_CAPBSET_DROP above capLastCap with EINVAL and scripts waitpid results', () => {
    const fake = new RecordingSyscalls();
    fake.capLastCap = 3;
    expect(() => fake.prctl(24, 4)).toThrow(expect.objectContaining({ code: 'EINVAL' }));
    fake.waitResults.push({ pid: 42, status: 0x0100 });
    expect(fake.waitpid(-1, WNOHANG)).toEqual({ pid: 42, status: 0x0100 });
    expect(fake.waitpid(-1, WNOHANG)).toBeUndefined();
  });

  it('a scripted errno fails setresuid with SyscallError', () => {
    const fake = new RecordingSyscalls();
    fake.fail('setresuid', os.constants.errno.EPERM);
    expect(() => fake.setresuid(1, 1, 1)).toThrow(SyscallError);
  });
});
