// `tspod enter` on real pods, as root: a two-app pod runs in the background (busybox-static
// images built by actool, app `a` from an image with a marker file and a non-root user), and
// commands entered into app `a` must see exactly what `a` sees: its rootfs, the pod's hostname
// and processes, its five namespaces, uid/gid/groups, capability sets, no_new_privs, seccomp and
// cgroups, read back from /proc and compared with the app's own process. Then exit statuses,
// stdin, signal forwarding, the refusals (exited, unknown, ambiguous pod), and the cleanup.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { assembleCase, buildFixtures } from '../../fixtures/build-fixtures.js';
import { TspodEnv } from '../support/cli.js';
import { hasCommand } from '../support/tools.js';

const isRoot = process.geteuid?.() === 0;
const canRun = isRoot && hasCommand('actool', ['version']);

const MARKER = '/etc/enter-marker-a';
const NAMESPACES = ['ipc', 'uts', 'net', 'pid', 'mnt'] as const;
/** The /proc/PID/status fields that make an app's privileges. */
const PRIVILEGE_FIELDS = ['Uid', 'Gid', 'Groups', 'CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb', 'NoNewPrivs', 'Seccomp'];

/** The host pid of the process whose argv is exactly `argv` (the apps' sleeps), if any. */
function hostPidOf(argv: string[]): number | undefined {
  const wanted = `${argv.join('\0')}\0`;
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8') === wanted) return Number(entry);
    } catch {
      // exited meanwhile
    }
  }
  return undefined;
}

/** `Field:\tvalue` lines of a /proc/PID/status text, for the fields asked. */
function statusFields(text: string, fields: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const [key, ...value] = line.split(':');
    if (key !== undefined && fields.includes(key)) out[key] = value.join(':').trim();
  }
  return out;
}

/** The text between `BEGIN name` and `END name` lines of a script's output. */
function section(out: string, name: string): string {
  const match = new RegExp(`^BEGIN ${name}\\n([\\s\\S]*?)^END ${name}$`, 'm').exec(out);
  if (match === null) throw new Error(`no section ${name} in:\n${out}`);
  return match[1]!;
}

/** Builds the demo image under another name with a marker file only it has. */
function buildImageA(base: string): string {
  const dir = assembleCase('demo', path.join(base, 'enter-a'));
  const manifestFile = path.join(dir, 'manifest');
  const manifest = JSON.parse(fs.readFileSync(manifestFile, 'utf8')) as { name: string };
  manifest.name = 'tspod.dev/test/enter-a';
  fs.writeFileSync(manifestFile, JSON.stringify(manifest));
  fs.writeFileSync(path.join(dir, 'rootfs', MARKER.slice(1)), 'only in image a\n');
  const out = path.join(base, 'enter-a.aci');
  execFileSync('actool', ['build', '--overwrite', '--owner-root', dir, out], { stdio: 'ignore' });
  return out;
}

describe.skipIf(!canRun)('tspod enter: real pods (needs root and actool)', () => {
  let env: TspodEnv;
  let demo: string;
  let pod: ChildProcess;
  let podExit: Promise<number | null>;
  let uuid: string;
  let appPid: number;
  let hostSleeper: ChildProcess;
  const A_ARGV = ['/bin/sleep', '3601'];
  const B_ARGV = ['/bin/sleep', '3602'];

  const enter = (args: string[], input?: string) => env.run(['enter', ...args], input === undefined ? {} : { input });
  const hostMountsOfPods = () => fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => l.includes(env.dir)).length;

  beforeAll(async () => {
    env = new TspodEnv();
    const acis = path.join(env.base, 'acis');
    demo = (await buildFixtures(acis, { cases: ['demo'] })).demo!;
    const imageA = buildImageA(acis);
    // A host process the pod must not see.
    hostSleeper = spawn('sleep', ['3603'], { stdio: 'ignore' });
    const uuidFile = path.join(env.base, 'pod.uuid');
    pod = env.spawn([
      'run',
      '--insecure-options=image',
      '--hostname=enter-pod',
      `--uuid-file-save=${uuidFile}`,
      imageA,
      '--name=a',
      '--user=1000',
      '--group=1000',
      '--supplementary-gids=3000',
      '--exec',
      A_ARGV[0]!,
      '--',
      ...A_ARGV.slice(1),
      '---',
      demo,
      '--name=b',
      '--exec',
      B_ARGV[0]!,
      '--',
      ...B_ARGV.slice(1),
    ]);
    let stderr = '';
    pod.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    podExit = new Promise((resolve) => pod.on('exit', (code) => resolve(code)));
    for (let i = 0; i < 600 && !fs.existsSync(uuidFile); i++) await sleep(50);
    uuid = fs.readFileSync(uuidFile, 'utf8').trim();
    const ready = env.run(['status', '--wait-ready=60s', uuid]);
    expect(ready.status, `${ready.stderr}\n${stderr}`).toBe(0);
    for (let i = 0; i < 100 && hostPidOf(A_ARGV) === undefined; i++) await sleep(50);
    appPid = hostPidOf(A_ARGV)!;
    expect(appPid, 'app a is not running').toBeDefined();
  }, 180_000);

  afterAll(async () => {
    hostSleeper?.kill('SIGKILL');
    if (pod !== undefined && pod.exitCode === null) {
      pod.kill('SIGKILL');
      await podExit;
    }
    // After a failed test: a killed pod leaves its cgroups for gc (as rkt's), not for rm -rf.
    if (env !== undefined) for (let i = 0; i < 2; i++) env.run(['gc', '--grace-period=0']);
    env?.cleanup();
  });

  it("gives the command app a's view: its rootfs, the pod's hostname, the pod's processes only, its five namespaces", () => {
    const script = [
      `cat ${MARKER}`,
      'echo BEGIN hostname; hostname; echo END hostname',
      'echo BEGIN ps; ps; echo END ps',
      `echo BEGIN ns; for n in ${NAMESPACES.join(' ')}; do readlink /proc/$$/ns/$n; done; echo END ns`,
      'echo cwd=$(pwd)',
    ].join('\n');
    const result = enter(['--app', 'a', uuid, '/bin/sh', '-c', script]);
    expect(result.status, result.stderr).toBe(0);
    expect(result.stdout).toContain('only in image a');
    expect(section(result.stdout, 'hostname').trim()).toBe('enter-pod');
    const ps = section(result.stdout, 'ps');
    expect(ps).toContain(A_ARGV.join(' '));
    expect(ps).toContain(B_ARGV.join(' '));
    expect(ps).not.toContain('sleep 3603');
    // The init, two apps, the entered shell and its ps: a handful, not the host's hundreds.
    const processes = ps.trim().split('\n').length - 1;
    expect(processes).toBeGreaterThanOrEqual(4);
    expect(processes).toBeLessThan(10);
    const hostNs = NAMESPACES.map((n) => fs.readlinkSync(`/proc/${appPid}/ns/${n}`));
    expect(section(result.stdout, 'ns').trim().split('\n')).toEqual(hostNs);
    // The pod has its own network namespace: the command is not in ours.
    expect(hostNs[2]).not.toBe(fs.readlinkSync('/proc/self/ns/net'));
    expect(result.stdout).toContain('cwd=/');
  });

  it("does not see another app's rootfs: app b has no marker of image a", () => {
    const result = enter(['--app', 'b', uuid, '/bin/sh', '-c', `test -e ${MARKER} && echo has-marker || echo no-marker; hostname`]);
    expect(result.status, result.stderr).toBe(0);
    expect(result.stdout).toBe('no-marker\nenter-pod\n');
  });

  it("runs with the app's uid, gid, groups, capability sets, no_new_privs and seccomp, read back from /proc", () => {
    const result = enter(['--app', 'a', uuid, 'sh', '-c', 'id; cat /proc/$$/status']);
    expect(result.status, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/^uid=1000 gid=1000 groups=.*3000/m);
    const mine = statusFields(result.stdout, PRIVILEGE_FIELDS);
    const app = statusFields(fs.readFileSync(`/proc/${appPid}/status`, 'utf8'), PRIVILEGE_FIELDS);
    expect(Object.keys(mine).sort()).toEqual([...PRIVILEGE_FIELDS].sort());
    expect(mine).toEqual(app);
    // A non-root app: no effective capability, no_new_privs, a seccomp filter.
    expect(mine).toMatchObject({ CapEff: '0000000000000000', NoNewPrivs: '1', Seccomp: '2' });
  });

  it("is in the app's cgroups (/proc/self/cgroup), the pod's pids hierarchy included", () => {
    const result = enter(['--app', 'a', uuid, 'cat', '/proc/self/cgroup']);
    expect(result.status, result.stderr).toBe(0);
    const app = fs.readFileSync(`/proc/${appPid}/cgroup`, 'utf8');
    expect(result.stdout).toBe(app);
    expect(result.stdout).toContain(`/tspod/pod-${uuid}/app-a`);
  });

  it("passes the command's exit status through (exit 7 -> 7; killed by SIGKILL -> 137)", () => {
    expect(enter(['--app', 'a', uuid, 'sh', '-c', 'exit 7']).status).toBe(7);
    expect(enter(['--app', 'a', uuid, 'sh', '-c', 'kill -9 $$']).status).toBe(137);
  });

  it('runs /bin/sh by default, reading the commands from stdin', () => {
    const result = enter(['--app', 'b', uuid], 'echo from-stdin $(id -u); exit 5\n');
    expect(result.stdout).toBe('from-stdin 0\n');
    expect(result.status).toBe(5);
  });

  it('exits 203 for a command not found in the app, naming it', () => {
    const result = enter(['--app', 'b', uuid, 'no-such-command']);
    expect(result.status).toBe(203);
    expect(result.stderr).toMatch(/tspod enter: execve no-such-command \(not found in PATH/);
  });

  it('forwards SIGTERM to the command and exits 143', async () => {
    const child = env.spawn(['enter', '--app', 'b', uuid, 'sh', '-c', 'echo ready; exec sleep 30']);
    let out = '';
    child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    for (let i = 0; i < 200 && !out.includes('ready'); i++) await sleep(50);
    expect(out).toContain('ready');
    const sent = Date.now();
    child.kill('SIGTERM');
    expect(await exited).toBe(143);
    expect(Date.now() - sent).toBeLessThan(5_000);
  });

  it('refuses a pod of several apps without --app, listing the names (254)', () => {
    const result = enter([uuid, 'true']);
    expect(result.status).toBe(254);
    expect(result.stderr).toMatch(/it has 2 apps \(a, b\); choose one with --app/);
    expect(result.stderr).toContain(`try: tspod enter --app a ${uuid}`);
  });

  it('refuses an unknown app, naming the apps (254)', () => {
    const result = enter(['--app', 'c', uuid]);
    expect(result.status).toBe(254);
    expect(result.stderr).toMatch(/no app named c \(the pod's apps: a, b\)/);
  });

  it('refuses an unknown pod (254)', () => {
    const result = enter(['0123abcd-0000-4000-8000-000000000000']);
    expect(result.status).toBe(254);
    expect(result.stderr).toMatch(/pod 0123abcd-0000-4000-8000-000000000000: no such pod/);
  });

  it('refuses an exited pod (254), saying it is not running', () => {
    const uuidFile = path.join(env.base, 'exited.uuid');
    env.ok(['run', '--insecure-options=image', `--uuid-file-save=${uuidFile}`, demo, '--exec', '/bin/true']);
    const result = enter(['--uuid-file', uuidFile, 'true']);
    expect(result.status).toBe(254);
    expect(result.stderr).toMatch(/enter pod [0-9a-f-]{36}: it is not running \(state exited\)/);
  });

  it('enters a --net=host pod in the host network namespace, the other namespaces being the pod\'s', async () => {
    const uuidFile = path.join(env.base, 'host-net.uuid');
    const child = env.spawn(['run', '--insecure-options=image', '--net=host', `--uuid-file-save=${uuidFile}`, demo, '--exec', '/bin/sleep', '--', '3604']);
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      for (let i = 0; i < 600 && !fs.existsSync(uuidFile); i++) await sleep(50);
      const hostNetUuid = fs.readFileSync(uuidFile, 'utf8').trim();
      expect(env.run(['status', '--wait-ready=60s', hostNetUuid]).status).toBe(0);
      const result = enter([hostNetUuid, 'sh', '-c', 'readlink /proc/$$/ns/net; readlink /proc/$$/ns/pid']);
      expect(result.status, result.stderr).toBe(0);
      const [net, pid] = result.stdout.trim().split('\n');
      expect(net).toBe(fs.readlinkSync('/proc/self/ns/net'));
      expect(pid).not.toBe(fs.readlinkSync('/proc/self/ns/pid'));
      env.ok(['stop', hostNetUuid]);
      expect(await exited).toBe(0);
    } finally {
      if (child.exitCode === null) {
        child.kill('SIGKILL');
        await exited;
      }
    }
  });

  it('stop still ends the pod after enters; no mount, cgroup or pod process is left', async () => {
    env.ok(['stop', uuid]);
    expect(await podExit).toBe(0);
    expect(env.ok(['status', uuid])).toMatch(/^state=exited$/m);
    expect(hostMountsOfPods()).toBe(0);
    const cgroupLeft = fs.readdirSync('/sys/fs/cgroup').filter((c) => fs.existsSync(`/sys/fs/cgroup/${c}/tspod/pod-${uuid}`));
    expect(cgroupLeft).toEqual([]);
    expect(hostPidOf(A_ARGV)).toBeUndefined();
    expect(hostPidOf(B_ARGV)).toBeUndefined();
    // And entering it now is refused.
    expect(enter(['--app', 'a', uuid, 'true']).status).toBe(254);
  });
});
