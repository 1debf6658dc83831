import os from 'node:os';

import { describe, expect, it } from 'vitest';

import { ValidationError } from '../../src/errors.js';
import { RecordedExecve, RecordingSyscalls } from '../../src/sys/recording.js';
import {
  CLONE_FS,
  PR_CAP_AMBIENT,
  PR_CAP_AMBIENT_CLEAR_ALL,
  PR_CAP_AMBIENT_RAISE,
  PR_CAPBSET_DROP,
  PR_SET_KEEPCAPS,
  PR_SET_NO_NEW_PRIVS,
  SIG_BLOCK,
  SIG_UNBLOCK,
  SIGTTOU,
  SyscallError,
} from '../../src/sys/types.js';
import { capabilitySetsToJson, capDataBuffer, toCapData, type CapabilitySets } from '../../stage1/capabilities.js';
import { execApp, execStepForApp, parseExecStep, resolveExecutable, type ExecStep } from '../../stage1/exec-app.js';

const CAP_CHOWN = 0;
const CAP_NET_BIND_SERVICE = 10;
const CAP_SYS_ADMIN = 21;

function sets(partial: Partial<CapabilitySets>): CapabilitySets {
  return { bounding: 0n, effective: 0n, permitted: 0n, inheritable: 0n, ambient: 0n, ...partial };
}

const FILTER = Buffer.alloc(8 * 3, 1);

function step(over: Partial<ExecStep> = {}): ExecStep {
  return {
    rootfs: '/pod/root/apps/web/rootfs',
    cwd: '/srv',
    uid: 0,
    gid: 0,
    supplementaryGids: [],
    capabilities: capabilitySetsToJson(sets({ bounding: 0b11n, effective: 0b11n, permitted: 0b11n })),
    noNewPrivileges: false,
    exec: ['/bin/server', '--port', '80'],
    env: { PATH: '/bin', HOME: '/root' },
    ...over,
  };
}

function run(s: ExecStep, fake = new RecordingSyscalls(), isTerminal = (_fd: number) => false): { fake: RecordingSyscalls; exec: RecordedExecve | undefined; error: unknown } {
  try {
    execApp(s, fake, { isExecutable: (f) => f === '/bin/server', isTerminal });
  } catch (err) {
    if (err instanceof RecordedExecve) return { fake, exec: err, error: undefined };
    return { fake, exec: undefined, error: err };
  }
  throw new Error('execApp returned');
}

/** The call sequence with the bounding-set drops folded into one entry. */
function sequence(fake: RecordingSyscalls): string[] {
  const out: string[] = [];
  for (const c of fake.calls) {
    const name = c.syscall === 'prctl' ? prctlName(c.args as number[]) : c.syscall;
    if (name !== out.at(-1) || name !== 'PR_CAPBSET_DROP') out.push(name);
  }
  return out;
}

function prctlName([option, arg2]: number[]): string {
  if (option === PR_CAPBSET_DROP) return 'PR_CAPBSET_DROP';
  if (option === PR_SET_KEEPCAPS) return `PR_SET_KEEPCAPS ${arg2}`;
  if (option === PR_SET_NO_NEW_PRIVS) return 'PR_SET_NO_NEW_PRIVS';
  if (option === PR_CAP_AMBIENT && arg2 === PR_CAP_AMBIENT_CLEAR_ALL) return 'PR_CAP_AMBIENT_CLEAR_ALL';
  if (option === PR_CAP_AMBIENT && arg2 === PR_CAP_AMBIENT_RAISE) return 'PR_CAP_AMBIENT_RAISE';
  return `prctl ${option}`;
}

describe('execApp (recording fake)', () => {
  it('--interactive on a terminal: own process group, SIGTTOU blocked around tcsetpgrp, before the credentials', () => {
    const fake = new RecordingSyscalls();
    const { exec } = run(step({ foreground: true }), fake, (fd) => fd === 0);
    expect(exec).toBeDefined();
    const seq = sequence(fake);
    const at = seq.indexOf('setpgid');
    expect(seq.slice(at, at + 5)).toEqual(['setpgid', 'pthreadSigmask', 'getpid', 'tcsetpgrp', 'pthreadSigmask']);
    expect(at).toBeGreaterThan(seq.lastIndexOf('fcntlSetCloexec'));
    expect(at).toBeLessThan(seq.indexOf('setgroups'));
    const masks = fake.calls.filter((c) => c.syscall === 'pthreadSigmask').map((c) => c.args);
    expect(masks).toEqual([[SIG_BLOCK, [SIGTTOU]], [SIG_UNBLOCK, [SIGTTOU]]]);
    expect(fake.calls.find((c) => c.syscall === 'setpgid')?.args).toEqual([0, 0]);
    expect(fake.calls.find((c) => c.syscall === 'tcsetpgrp')?.args[0]).toBe(0);
  });

  it('os/linux/oom-score-adj is written right after unshare(CLONE_FS), before chroot and the credentials', () => {
    const fake = new RecordingSyscalls();
    // The write is not a syscall of the layer: note how many calls had been made when it came.
    const writes: { value: number; after: string[] }[] = [];
    const write = (value: number) => writes.push({ value, after: fake.calls.map((c) => c.syscall) });
    expect(() => execApp(step({ oomScoreAdj: -500 }), fake, { isExecutable: () => true, writeOomScoreAdj: write })).toThrow(RecordedExecve);
    expect(writes).toEqual([{ value: -500, after: ['unshare'] }]);
    expect(fake.calls[1]?.syscall).toBe('chroot');
  });

  it('--interactive without a terminal on stdin, or no --interactive: no process group or terminal calls', () => {
    for (const [foreground, terminal] of [[true, false], [false, true]] as const) {
      const { fake } = run(step({ foreground }), new RecordingSyscalls(), () => terminal);
      expect(fake.calls.filter((c) => ['setpgid', 'tcsetpgrp', 'pthreadSigmask'].includes(c.syscall))).toEqual([]);
    }
  });

  it('root app with no_new_privs and a filter: chroot, fds, ids, bounding, caps, no_new_privs, seccomp last, execve', () => {
    const { fake, exec } = run(step({ noNewPrivileges: true, seccompProgramBase64: FILTER.toString('base64'), supplementaryGids: [10, 20] }));
    expect(sequence(fake)).toEqual([
      'unshare',
      'chroot',
      'chdir',
      'fcntlSetCloexec',
      'fcntlSetCloexec',
      'fcntlSetCloexec',
      'closeRangeCloexec',
      'setgroups',
      'setresgid',
      'PR_CAPBSET_DROP',
      'setresuid',
      'capset',
      'PR_CAP_AMBIENT_CLEAR_ALL',
      'PR_SET_NO_NEW_PRIVS',
      'seccompSetFilter',
      'execve',
    ]);
    expect(fake.calls[0]).toEqual({ syscall: 'unshare', args: [CLONE_FS] });
    expect(fake.calls.find((c) => c.syscall === 'chroot')?.args).toEqual(['/pod/root/apps/web/rootfs']);
    expect(fake.calls.find((c) => c.syscall === 'chdir')?.args).toEqual(['/srv']);
    expect(fake.calls.filter((c) => c.syscall === 'fcntlSetCloexec').map((c) => c.args)).toEqual([[0, false], [1, false], [2, false]]);
    expect(fake.calls.find((c) => c.syscall === 'setgroups')?.args).toEqual([[10, 20]]);
    expect(fake.calls.find((c) => c.syscall === 'seccompSetFilter')?.args).toEqual([FILTER]);
    expect(exec).toMatchObject({ path: '/bin/server', argv: ['/bin/server', '--port', '80'], envp: ['PATH=/bin', 'HOME=/root'] });
  });

  it('drops every capability outside the bounding set, up to the kernel last cap (EINVAL above it ends the loop)', () => {
    const fake = new RecordingSyscalls();
    fake.capLastCap = 40;
    run(step(), fake);
    const dropped = fake.calls.filter((c) => c.syscall === 'prctl' && c.args[0] === PR_CAPBSET_DROP).map((c) => c.args[1]);
    // Bits 0 and 1 are kept; 2..40 dropped; 41 fails with EINVAL and stops the loop.
    expect(dropped).toEqual(Array.from({ length: 40 }, (_, i) => i + 2));
  });

  it('non-root app with capabilities: keepcaps before setresuid, bounding drop while still uid 0, ambient raised after capset', () => {
    const caps = sets({
      bounding: (1n << BigInt(CAP_NET_BIND_SERVICE)) | 1n,
      effective: 1n << BigInt(CAP_NET_BIND_SERVICE),
      permitted: 1n << BigInt(CAP_NET_BIND_SERVICE),
      inheritable: 1n << BigInt(CAP_NET_BIND_SERVICE),
      ambient: 1n << BigInt(CAP_NET_BIND_SERVICE),
    });
    const { fake } = run(step({ uid: 1000, gid: 100, supplementaryGids: [27], capabilities: capabilitySetsToJson(caps), noNewPrivileges: true }));
    expect(sequence(fake)).toEqual([
      'unshare',
      'chroot',
      'chdir',
      'fcntlSetCloexec',
      'fcntlSetCloexec',
      'fcntlSetCloexec',
      'closeRangeCloexec',
      'setgroups',
      'setresgid',
      'PR_CAPBSET_DROP',
      'PR_SET_KEEPCAPS 1',
      'setresuid',
      'capset',
      'PR_CAP_AMBIENT_CLEAR_ALL',
      'PR_CAP_AMBIENT_RAISE',
      'PR_SET_NO_NEW_PRIVS',
      'execve',
    ]);
    expect(fake.calls.find((c) => c.syscall === 'setresgid')?.args).toEqual([100, 100, 100]);
    expect(fake.calls.find((c) => c.syscall === 'setresuid')?.args).toEqual([1000, 1000, 1000]);
    expect(fake.calls.find((c) => c.syscall === 'capset')?.args[0]).toEqual(capDataBuffer(toCapData(caps)));
    expect(fake.calls.find((c) => c.syscall === 'prctl' && c.args[0] === PR_CAP_AMBIENT && c.args[1] === PR_CAP_AMBIENT_RAISE)?.args[2]).toBe(CAP_NET_BIND_SERVICE);
  });

  it('non-root app with only a bounding set (rkt rule): no keepcaps, empty capset', () => {
    const caps = sets({ bounding: 1n << BigInt(CAP_CHOWN) });
    const { fake } = run(step({ uid: 1000, gid: 1000, capabilities: capabilitySetsToJson(caps), noNewPrivileges: true, seccompProgramBase64: FILTER.toString('base64') }));
    const names = sequence(fake);
    expect(names).not.toContain('PR_SET_KEEPCAPS 1');
    expect(names.slice(-4)).toEqual(['PR_CAP_AMBIENT_CLEAR_ALL', 'PR_SET_NO_NEW_PRIVS', 'seccompSetFilter', 'execve']);
    expect(fake.calls.find((c) => c.syscall === 'capset')?.args[0]).toEqual(Buffer.alloc(24));
  });

  it('a filter without no_new_privs goes in before the credentials change (seccomp(2) EACCES otherwise)', () => {
    const { fake } = run(step({ seccompProgramBase64: FILTER.toString('base64') }));
    const names = sequence(fake);
    expect(names.indexOf('seccompSetFilter')).toBe(names.indexOf('setgroups') - 1);
    expect(names).not.toContain('PR_SET_NO_NEW_PRIVS');
  });

  it('a filter without no_new_privs stays last when the app keeps CAP_SYS_ADMIN', () => {
    const all = sets({ bounding: 1n << BigInt(CAP_SYS_ADMIN), effective: 1n << BigInt(CAP_SYS_ADMIN), permitted: 1n << BigInt(CAP_SYS_ADMIN) });
    const { fake } = run(step({ capabilities: capabilitySetsToJson(all), seccompProgramBase64: FILTER.toString('base64') }));
    expect(sequence(fake).slice(-2)).toEqual(['seccompSetFilter', 'execve']);
  });

  it('setresuid failing with EPERM stops the step before capset and execve', () => {
    const fake = new RecordingSyscalls();
    fake.fail('setresuid', os.constants.errno.EPERM);
    const { exec, error } = run(step({ uid: 1000, gid: 1000 }), fake);
    expect(exec).toBeUndefined();
    expect(error).toBeInstanceOf(SyscallError);
    expect(error).toMatchObject({ syscall: 'setresuid', code: 'EPERM' });
    expect(fake.calls.at(-1)?.syscall).toBe('setresuid');
    expect(fake.calls.some((c) => c.syscall === 'execve' || c.syscall === 'capset')).toBe(false);
  });

  it('chroot failing with ENOENT names the rootfs and nothing after it runs', () => {
    const fake = new RecordingSyscalls();
    fake.fail('chroot', os.constants.errno.ENOENT);
    const { error } = run(step(), fake);
    expect(String((error as Error).message)).toBe('chroot /pod/root/apps/web/rootfs: ENOENT (no such file or directory)');
    expect(fake.calls.map((c) => c.syscall)).toEqual(['unshare', 'chroot']);
  });

  it('capset EPERM names the capabilities this process does not hold', () => {
    const fake = new RecordingSyscalls();
    fake.fail('capset', os.constants.errno.EPERM);
    fake.capData = Buffer.alloc(24);
    fake.capData.writeUInt32LE(0b01, 4); // permitted low word: CAP_CHOWN only
    const { error } = run(step(), fake);
    expect((error as Error).message).toMatch(/^capset: EPERM .*CAP_DAC_OVERRIDE not in this process's permitted set/);
  });

  it('a bare exec[0] is looked up in the PATH of the app environment, after chroot', () => {
    const { exec } = run(step({ exec: ['server'], env: { PATH: '/usr/bin:/bin' } }));
    expect(exec).toMatchObject({ path: '/bin/server', argv: ['server'] });
  });

  it('a bare exec[0] not in PATH fails with ENOENT before any credential change', () => {
    const { fake, error } = run(step({ exec: ['missing'] }));
    expect(error).toMatchObject({ syscall: 'execve', code: 'ENOENT' });
    expect((error as Error).message).toContain('missing (not found in PATH /bin)');
    expect(fake.calls.map((c) => c.syscall)).toEqual(['unshare', 'chroot', 'chdir']);
  });
});

describe('resolveExecutable', () => {
  it('uses a name with a slash as is and the default PATH without one', () => {
    expect(resolveExecutable('./run', {}, () => false)).toBe('./run');
    expect(resolveExecutable('sh', {}, (f) => f === '/usr/bin/sh' || f === '/bin/sh')).toBe('/usr/bin/sh');
  });
});

describe('parseExecStep', () => {
  it('accepts a complete step', () => {
    expect(parseExecStep(JSON.parse(JSON.stringify(step())))).toEqual(step());
  });

  it('names every bad field: relative rootfs, negative uid, non-hex mask, seccomp not a sock_filter array, env key with "="', () => {
    const bad = { ...step(), rootfs: 'rel', uid: -1, capabilities: { ...step().capabilities, ambient: 'zz' }, seccompProgramBase64: Buffer.alloc(5).toString('base64'), env: { 'A=B': 'x' } };
    expect(() => parseExecStep(bad)).toThrow(ValidationError);
    try {
      parseExecStep(bad);
    } catch (err) {
      expect((err as ValidationError).problems).toEqual([
        '/rootfs: must be an absolute path',
        '/uid: must be an integer id',
        '/capabilities/ambient: must be a hex mask such as "0xa80425fb"',
        '/seccompProgramBase64: must be base64 of a non-empty struct sock_filter array',
        '/env: must map names (no "=") to strings',
      ]);
    }
  });

  it('refuses an empty exec and a non-object document', () => {
    expect(() => parseExecStep({ ...step(), exec: [] })).toThrow(/\/exec: must be a non-empty array/);
    expect(() => parseExecStep([1])).toThrow(/not a JSON object/);
  });
});

describe('execStepForApp', () => {
  it('takes the resolved exec path, argv, sets and the filter from an app plan', () => {
    const caps = capabilitySetsToJson(sets({ bounding: 3n }));
    const s = execStepForApp({
      rootfs: '/r',
      cwd: '/',
      uid: 5,
      gid: 6,
      supplementaryGids: [7],
      capabilities: { ...caps, mode: 'default', boundingNames: ['CAP_CHOWN', 'CAP_DAC_OVERRIDE'] },
      noNewPrivileges: true,
      seccomp: { source: 'default', mode: 'retain', errno: 'EPERM', programBase64: 'AAAAAAAAAAA=', instructions: 1, defaultAction: '0x0', matchAction: '0x0', syscallCount: 0 },
      exec: { path: '/usr/bin/sh', argv: ['sh', '-c', 'true'] },
      env: { A: '1' },
    });
    expect(s).toEqual({ rootfs: '/r', cwd: '/', uid: 5, gid: 6, supplementaryGids: [7], capabilities: caps, noNewPrivileges: true, seccompProgramBase64: 'AAAAAAAAAAA=', exec: ['sh', '-c', 'true'], path: '/usr/bin/sh', env: { A: '1' } });
    expect(parseExecStep(s)).toEqual(s);
  });
});
