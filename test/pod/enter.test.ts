// `tspod enter` without a real pod: the argument grammar, the choice of the app, which of the
// init's namespaces are joined and in what order (recording Syscalls fake), the plan read from a
// fabricated pod directory, and stage1's enter.js: its argv, the plan it reads, the exec step it
// builds, and its exit status for bad input. The real thing is test/privileged/pod-enter.test.ts.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { NotFoundError, TspodError, UsageError } from '../../src/errors.js';
import {
  DEFAULT_ENTER_COMMAND,
  joinNamespaces,
  parseEnterArgs,
  planEnter,
  planNamespaces,
  selectApp,
  type FlagArity,
  type NamespaceToJoin,
} from '../../src/pod/enter.js';
import { PodStateError } from '../../src/pod/state.js';
import { RecordingSyscalls } from '../../src/sys/recording.js';
import { CLONE_FS, CLONE_NEWIPC, CLONE_NEWNET, CLONE_NEWNS, CLONE_NEWPID, CLONE_NEWUTS, libcSyscalls as sys } from '../../src/sys/index.js';
import { STAGE1_ENTRYPOINTS, STAGE1_FILES } from '../../stage1/contract.js';
import { ENTER_PLAN_VERSION, enterStep, parseEnterArgv, readPodPlan } from '../../stage1/enter.js';
import { EXIT_BAD_STEP } from '../../stage1/exec-app.js';
import { PLAN_VERSION, type AppPlan, type PodPlan } from '../../stage1/plan.js';
import { ROOT } from '../support/cli.js';
import { fabricatePod, holdPodLock, type LockHolder } from '../support/pods.js';

const GLOBALS: Record<string, FlagArity> = { dir: 'value', 'local-config': 'value', 'system-config': 'value', debug: 'switch', 'insecure-options': 'value' };
const UUID = '5f3a2b1c-0000-4000-8000-000000000001';

describe('parseEnterArgs: flags before the pod, everything after it is the command', () => {
  it('passes every word after the uuid to the command, flags included (ls -l --debug)', () => {
    const args = parseEnterArgs(['--app', 'web', UUID, 'ls', '-l', '--debug', '--app', 'x'], GLOBALS);
    expect(args).toEqual({ app: 'web', uuid: UUID, uuidFile: undefined, command: ['ls', '-l', '--debug', '--app', 'x'], otherFlags: [] });
  });

  it('runs /bin/sh when no command is given', () => {
    expect(parseEnterArgs([UUID], GLOBALS).command).toEqual(['/bin/sh']);
    expect(DEFAULT_ENTER_COMMAND).toEqual(['/bin/sh']);
  });

  it('drops one -- right after the uuid, so the command may take --help', () => {
    expect(parseEnterArgs([UUID, '--', 'ls', '--help'], GLOBALS).command).toEqual(['ls', '--help']);
    // Only one: a second -- is the command's.
    expect(parseEnterArgs([UUID, '--', '--', 'x'], GLOBALS).command).toEqual(['--', 'x']);
  });

  it('takes --app=NAME, --uuid-file FILE and global flags before the pod, keeping the globals for the caller', () => {
    const args = parseEnterArgs(['--dir', '/srv/tspod', '--app=db', '--debug', '--insecure-options=image', '--uuid-file', '/run/u', 'cat', '/etc/motd'], GLOBALS);
    expect(args.app).toBe('db');
    expect(args.uuidFile).toBe('/run/u');
    expect(args.uuid).toBeUndefined();
    // With --uuid-file the first word is already the command.
    expect(args.command).toEqual(['cat', '/etc/motd']);
    expect(args.otherFlags).toEqual(['--dir', '/srv/tspod', '--debug', '--insecure-options', 'image']);
  });

  it('-- ends the flags: with --uuid-file, a command starting with a dash', () => {
    expect(parseEnterArgs(['--uuid-file=/run/u', '--', '-weird'], GLOBALS).command).toEqual(['-weird']);
    expect(parseEnterArgs(['--', UUID, 'id'], GLOBALS)).toMatchObject({ uuid: UUID, command: ['id'] });
  });

  it('refuses a missing pod uuid', () => {
    expect(() => parseEnterArgs(['--app', 'web'], GLOBALS)).toThrow(/missing pod uuid/);
    expect(() => parseEnterArgs([], GLOBALS)).toThrow(UsageError);
  });

  it('refuses an unknown flag before the pod, naming it', () => {
    expect(() => parseEnterArgs(['--bogus', UUID], GLOBALS)).toThrow(/unknown flag --bogus/);
    expect(() => parseEnterArgs(['-x', UUID], GLOBALS)).toThrow(UsageError);
  });

  it('refuses --app without a value, or with an empty one', () => {
    expect(() => parseEnterArgs(['--app'], GLOBALS)).toThrow(/--app needs a value/);
    expect(() => parseEnterArgs(['--app=', UUID], GLOBALS)).toThrow(/--app needs an app name/);
  });

  it('refuses --app after the uuid instead of running a command called --app', () => {
    expect(() => parseEnterArgs([UUID, '--app', 'web'], GLOBALS)).toThrow(/flags go before the uuid/);
    expect(() => parseEnterArgs([UUID, '--app=web', 'ls'], GLOBALS)).toThrow(UsageError);
  });
});

describe('selectApp', () => {
  it("chooses a pod's only app without --app", () => {
    expect(selectApp(UUID, ['web'], undefined)).toBe('web');
  });

  it('chooses the app given with --app', () => {
    expect(selectApp(UUID, ['web', 'db'], 'db')).toBe('db');
  });

  it('refuses several apps without --app, listing their names and the commands to use', () => {
    let error: unknown;
    try {
      selectApp(UUID, ['web', 'db'], undefined);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(UsageError);
    expect((error as UsageError).message).toMatch(/2 apps \(web, db\); choose one with --app/);
    expect((error as UsageError).suggestions).toEqual([`tspod enter --app web ${UUID}`, `tspod enter --app db ${UUID}`]);
  });

  it('refuses an unknown app, naming the apps there are', () => {
    expect(() => selectApp(UUID, ['web', 'db'], 'cache')).toThrow(NotFoundError);
    expect(() => selectApp(UUID, ['web', 'db'], 'cache')).toThrow(/no app named cache \(the pod's apps: web, db\)/);
  });
});

/** A fake namespace identity: the init's namespaces differ from ours except those listed as shared. */
function fakeIdentity(shared: string[] = []): (file: string) => string {
  return (file) => {
    const name = path.basename(file);
    return file.startsWith('/proc/self/') || shared.includes(name) ? `host-${name}` : `pod-${name}`;
  };
}

describe('planNamespaces', () => {
  it('joins ipc, uts, net, pid, then mnt of the init, with their CLONE_NEW* types', () => {
    expect(planNamespaces(4242, fakeIdentity())).toEqual([
      { name: 'ipc', nstype: CLONE_NEWIPC, path: '/proc/4242/ns/ipc' },
      { name: 'uts', nstype: CLONE_NEWUTS, path: '/proc/4242/ns/uts' },
      { name: 'net', nstype: CLONE_NEWNET, path: '/proc/4242/ns/net' },
      { name: 'pid', nstype: CLONE_NEWPID, path: '/proc/4242/ns/pid' },
      { name: 'mnt', nstype: CLONE_NEWNS, path: '/proc/4242/ns/mnt' },
    ]);
  });

  it('leaves the network namespace alone when the pod shares the host one (--net=host)', () => {
    expect(planNamespaces(4242, fakeIdentity(['net'])).map((ns) => ns.name)).toEqual(['ipc', 'uts', 'pid', 'mnt']);
  });

  it('refuses a pid that shares our mount namespace: it is not a pod init (a reused pid)', () => {
    expect(() => planNamespaces(4242, fakeIdentity(['mnt']))).toThrow(/shares this process's mnt namespace/);
  });

  it('says the init is gone when /proc/PID/ns does not exist (ENOENT)', () => {
    const gone = (file: string): string => {
      if (file.startsWith('/proc/self/')) return 'x';
      throw Object.assign(new Error('ENOENT'), { code: 'ENOENT' });
    };
    expect(() => planNamespaces(4242, gone, `enter pod ${UUID}`)).toThrow(new RegExp(`enter pod ${UUID}: its init \\(pid 4242\\) is gone`));
  });

  it('compares the real /proc/self/ns files: our own pid shares every namespace with us', () => {
    expect(() => planNamespaces(process.pid)).toThrow(PodStateError);
  });
});

describe('joinNamespaces (recording Syscalls)', () => {
  const namespaces = planNamespaces(4242, fakeIdentity());
  const fds = new Map(namespaces.map((ns, i) => [ns.path, 100 + i]));

  function setup(fake: RecordingSyscalls) {
    const log: string[] = [];
    const closed: number[] = [];
    return {
      log,
      closed,
      options: {
        sys: fake,
        openNamespace: (file: string) => {
          // Every open must come before the kernel call that moves us.
          log.push(`open ${file} after ${fake.calls.length} syscalls`);
          return fds.get(file)!;
        },
        closeNamespace: (fd: number) => closed.push(fd),
      },
    };
  }

  it('opens every namespace first, then unshare(CLONE_FS), then setns each fd with its CLONE_NEW* type, mnt last', () => {
    const fake = new RecordingSyscalls();
    const { log, closed, options } = setup(fake);
    joinNamespaces(namespaces, options);
    expect(log).toEqual(namespaces.map((ns) => `open ${ns.path} after 0 syscalls`));
    expect(fake.calls).toEqual([
      { syscall: 'unshare', args: [CLONE_FS] },
      { syscall: 'setns', args: [100, CLONE_NEWIPC] },
      { syscall: 'setns', args: [101, CLONE_NEWUTS] },
      { syscall: 'setns', args: [102, CLONE_NEWNET] },
      { syscall: 'setns', args: [103, CLONE_NEWPID] },
      { syscall: 'setns', args: [104, CLONE_NEWNS] },
    ]);
    expect(closed.sort()).toEqual([100, 101, 102, 103, 104]);
  });

  it('runs the check after the opens and before any kernel call; a failing check joins nothing', () => {
    const fake = new RecordingSyscalls();
    const { closed, options } = setup(fake);
    const check = () => {
      expect(fake.calls).toEqual([]);
      throw new PodStateError('pod exited');
    };
    expect(() => joinNamespaces(namespaces, { ...options, check })).toThrow('pod exited');
    expect(fake.calls).toEqual([]);
    expect(closed).toHaveLength(5);
  });

  it('names the namespace whose setns fails (EINVAL) and still closes every fd', () => {
    const fake = new RecordingSyscalls();
    fake.fail('setns', 22);
    const { closed, options } = setup(fake);
    expect(() => joinNamespaces(namespaces, options)).toThrow(/cannot join the ipc namespace of \/proc\/4242\/ns\/ipc: setns: EINVAL/);
    expect(fake.calls.filter((c) => c.syscall === 'setns')).toHaveLength(1);
    expect(closed).toHaveLength(5);
  });

  it('closes the fds already open when a later open fails', () => {
    const fake = new RecordingSyscalls();
    const { closed, options } = setup(fake);
    const failing = (ns: NamespaceToJoin[]) =>
      joinNamespaces(ns, {
        ...options,
        openNamespace: (file) => {
          if (file.endsWith('/pid')) throw new Error('EACCES');
          return options.openNamespace(file);
        },
      });
    expect(() => failing(namespaces)).toThrow('EACCES');
    expect(closed.sort()).toEqual([100, 101, 102]);
    expect(fake.calls).toEqual([]);
  });
});

describe('planEnter on pod directories', () => {
  let dir: string;
  const holders: LockHolder[] = [];
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tspod-pod-enter-'));
  });
  afterEach(async () => {
    for (const h of holders.splice(0)) await h.kill();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const twoApps = [
    { name: 'web', created: true, started: true },
    { name: 'db', created: true, started: true },
  ];
  const options = { sys, namespaceIdentity: fakeIdentity() };

  it('plans the namespaces of the pid in `pid` and the argv of stage1 enter.js', async () => {
    const pod = fabricatePod(dir, { state: 'running', apps: twoApps, pid: 4242 });
    holders.push(await holdPodLock(pod.path));
    const plan = planEnter(dir, { uuid: pod.uuid, app: 'db', command: ['ls', '-l'] }, options);
    expect(plan.initPid).toBe(4242);
    expect(plan.app).toBe('db');
    expect(plan.podDir).toBe(pod.path);
    expect(plan.namespaces.map((ns) => ns.path)).toEqual(['ipc', 'uts', 'net', 'pid', 'mnt'].map((n) => `/proc/4242/ns/${n}`));
    expect(plan.stage1Argv.slice(1)).toEqual([pod.path, 'db', '--', 'ls', '-l']);
    // From dist/src/pod/ (or src/pod/ under vitest) to the stage1 folder beside it.
    expect(path.basename(plan.stage1Argv[0]!)).toBe(STAGE1_ENTRYPOINTS.enter);
    expect(path.basename(path.dirname(plan.stage1Argv[0]!))).toBe('stage1');
  });

  it('refuses an exited pod (run/ with its lock free), saying its state', () => {
    const pod = fabricatePod(dir, { state: 'exited', apps: [{ name: 'web', started: true, exitCode: 0 }] });
    expect(() => planEnter(dir, { uuid: pod.uuid }, options)).toThrow(/it is not running \(state exited\)/);
  });

  it('refuses a prepared pod and suggests run-prepared', () => {
    const pod = fabricatePod(dir, { state: 'prepared', apps: [{ name: 'web' }] });
    let error: unknown;
    try {
      planEnter(dir, { uuid: pod.uuid }, options);
    } catch (err) {
      error = err;
    }
    expect((error as TspodError).suggestions).toEqual([`tspod run-prepared ${pod.uuid}`]);
  });

  it('refuses a pod of several apps without --app, listing them', async () => {
    const pod = fabricatePod(dir, { state: 'running', apps: twoApps });
    holders.push(await holdPodLock(pod.path));
    expect(() => planEnter(dir, { uuid: pod.uuid }, options)).toThrow(/2 apps \(web, db\)/);
  });

  it('refuses an app that has not started yet and suggests status --wait-ready', async () => {
    const pod = fabricatePod(dir, { state: 'running', apps: [{ name: 'web', created: true }] });
    holders.push(await holdPodLock(pod.path));
    expect(() => planEnter(dir, { uuid: pod.uuid }, options)).toThrow(/app web has not started yet/);
  });
});

describe('stage1 enter.js', () => {
  const appPlan = (name: string): AppPlan =>
    ({
      name,
      rootfs: `/pods/run/u/root/${name}`,
      cwd: '/srv',
      uid: 1000,
      gid: 1001,
      supplementaryGids: [5],
      capabilities: { bounding: '0xa80425fb', effective: '0x0', permitted: '0x0', inheritable: '0x0', ambient: '0x0', mode: 'default', boundingNames: [] },
      noNewPrivileges: true,
      seccomp: { programBase64: Buffer.alloc(16, 1).toString('base64') },
      exec: { path: '/usr/bin/server', argv: ['server', '--port=80'] },
      env: { PATH: '/usr/bin:/bin', AC_APP_NAME: name },
    }) as unknown as AppPlan;
  const plan = { version: PLAN_VERSION, apps: [appPlan('web'), appPlan('db')] } as unknown as PodPlan;

  it('reads the same plan version as stage1/plan.ts writes', () => {
    expect(ENTER_PLAN_VERSION).toBe(PLAN_VERSION);
  });

  it("builds the app's exec step with the command in place of its exec, and no resolved path", () => {
    const { step } = enterStep(plan, 'db', ['sh', '-c', 'id']);
    expect(step.exec).toEqual(['sh', '-c', 'id']);
    expect(step.path).toBeUndefined();
    expect(step).toMatchObject({
      rootfs: '/pods/run/u/root/db',
      cwd: '/srv',
      uid: 1000,
      gid: 1001,
      supplementaryGids: [5],
      noNewPrivileges: true,
      seccompProgramBase64: Buffer.alloc(16, 1).toString('base64'),
      env: { PATH: '/usr/bin:/bin', AC_APP_NAME: 'db' },
    });
    expect(step.capabilities.bounding).toBe('0xa80425fb');
  });

  it('refuses an app the plan does not have, listing those it has', () => {
    expect(() => enterStep(plan, 'cache', ['sh'])).toThrow(/no app cache in the pod \(apps: web, db\)/);
  });

  it('takes POD_DIR APP -- CMD... and nothing else', () => {
    expect(parseEnterArgv(['/pods/run/u', 'web', '--', 'ls', '-l'])).toEqual({ podDir: '/pods/run/u', app: 'web', command: ['ls', '-l'] });
    expect(() => parseEnterArgv(['/pods/run/u', 'web', 'ls'])).toThrow(/usage/);
    expect(() => parseEnterArgv(['/pods/run/u', 'web', '--'])).toThrow(/usage/);
    expect(() => parseEnterArgv(['pods/run/u', 'web', '--', 'ls'])).toThrow(/absolute/);
  });

  it('refuses a plan of another version, or a pod directory without plan.json', () => {
    const podDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tspod-enter-plan-'));
    try {
      expect(() => readPodPlan(podDir)).toThrow(/cannot read the pod's plan/);
      fs.writeFileSync(path.join(podDir, STAGE1_FILES.plan), JSON.stringify({ ...plan, version: 99 }));
      expect(() => readPodPlan(podDir)).toThrow(/version 99/);
      fs.writeFileSync(path.join(podDir, STAGE1_FILES.plan), JSON.stringify(plan));
      expect(readPodPlan(podDir).apps.map((a) => a.name)).toEqual(['web', 'db']);
    } finally {
      fs.rmSync(podDir, { recursive: true, force: true });
    }
  });

  it('exits 254 with "tspod enter:" on bad argv or a missing plan, before touching any cgroup', () => {
    const script = path.join(ROOT, 'dist', 'stage1', STAGE1_ENTRYPOINTS.enter);
    const bad = spawnSync(process.execPath, [script, '/nonexistent-pod', 'web'], { encoding: 'utf8' });
    expect(bad.status).toBe(EXIT_BAD_STEP);
    expect(bad.stderr).toMatch(/^tspod enter: usage: enter\.js POD_DIR APP -- CMD/);
    const missing = spawnSync(process.execPath, [script, '/nonexistent-pod', 'web', '--', 'sh'], { encoding: 'utf8' });
    expect(missing.status).toBe(254);
    expect(missing.stderr).toMatch(/^tspod enter: cannot read the pod's plan \/nonexistent-pod\/plan\.json/);
  });
});
