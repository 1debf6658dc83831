// `tspod run` as the main process of units of a real systemd manager (issue 7 item 6): this
// machine's PID 1 is not systemd, so the installed systemd runs as a user manager of root in a
// mount namespace and cgroup of its own (test/support/systemd-manager.ts), which is all a unit
// needs: Type=notify with NotifyAccess=main (READY=1 only once every app has started), MainPID,
// STATUS=, KillMode=mixed (`systemctl stop` SIGTERMs tspod only), the exit status of the failing
// app as the unit's, tspod's stop timeout ahead of TimeoutStopSec=, and the units `tspod generate
// systemd --files` writes. Each unit's ExecStopPost= records what systemd saw ($SERVICE_RESULT,
// $EXIT_CODE, $EXIT_STATUS), since a unit that stopped cleanly is unloaded with its state.
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { unifiedCgroupOf } from '../../src/systemd/delegation.js';
import { execLine } from '../../src/systemd/unit.js';
import { BIN } from '../support/cli.js';
import { canRunPods, usePodSuite, type PodSuite } from '../support/pod-env.js';
import { SYSTEMD_BINARY, SystemdUserManager, systemdManagerMissing, type ManagerOptions } from '../support/systemd-manager.js';

const missing = canRunPods ? systemdManagerMissing() : 'needs root and actool (real pods)';

/** The command line of a live process, or undefined once it is gone. */
function cmdline(pid: number): string[] | undefined {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter((w) => w !== '');
  } catch {
    return undefined;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Units of one manager, with what a test reads back: output, the outcome ExecStopPost= recorded. */
function unitHelpers(suite: PodSuite, m: () => SystemdUserManager, imageId: () => string, units: string[]) {
  const files = (unit: string) => ({ out: path.join(suite.env.base, `${unit}.out`), result: path.join(suite.env.base, `${unit}.result`) });
  const output = (unit: string) => (fs.existsSync(files(unit).out) ? fs.readFileSync(files(unit).out, 'utf8') : '');
  /** Output to a file (no journal here) and ExecStopPost= recording what the manager saw. */
  const observed = (unit: string) => {
    const { out, result } = files(unit);
    return [`StandardOutput=append:${out}`, `StandardError=append:${out}`, `ExecStopPost=/bin/sh -c 'echo "$$SERVICE_RESULT $$EXIT_CODE $$EXIT_STATUS" > ${result}'`];
  };
  const podManifest = (name: string, apps: object[]) => {
    const file = path.join(suite.env.base, `${name}.pod.json`);
    fs.writeFileSync(file, JSON.stringify({ acKind: 'PodManifest', acVersion: '0.8.11', apps }));
    return file;
  };
  return {
    output,
    observed,
    podManifest,
    /** `node bin/run.js --dir ... ARGS` as an ExecStart= line. */
    tspodLine: (args: string[]) => execLine([process.execPath, ...suite.env.argv(args)]),
    writeService: (unit: string, service: string[]) => {
      units.push(unit);
      m().writeUnit(unit, ['[Unit]', `Description=tspod test ${unit}`, '', '[Service]', ...service, ...observed(unit), ''].join('\n'));
    },
    /** SERVICE_RESULT EXIT_CODE EXIT_STATUS, once ExecStopPost= has run. */
    outcome: async (unit: string): Promise<string> => {
      const { result } = files(unit);
      for (let i = 0; i < 300 && !fs.existsSync(result); i++) await sleep(50);
      if (!fs.existsSync(result)) throw new Error(`${unit}: ExecStopPost= never ran; output:\n${output(unit)}`);
      return fs.readFileSync(result, 'utf8').trim();
    },
    /** MainPID is `tspod run` itself (node bin/run.js ... run), a child of the manager. */
    expectTspodRunIsMain: (mainPid: string) => {
      const pid = Number(mainPid);
      expect(pid).toBeGreaterThan(0);
      const argv = cmdline(pid)!;
      expect(argv.slice(0, 2)).toEqual([process.execPath, BIN]);
      expect(argv).toContain('run');
      const ppid = Number(fs.readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /s, '').split(' ')[1]);
      expect(cmdline(ppid)?.[0]).toBe(SYSTEMD_BINARY);
    },
    app: (name: string, exec: string[], extra: object = {}) => ({ name, image: { id: imageId() }, app: { exec, user: '0', group: '0', ...extra } }),
  };
}

/** A manager (hybrid, or unified with `options.unified`) for one describe block, the demo image fetched; stopped with its units after it. */
function useManager(suite: PodSuite, options: ManagerOptions = {}) {
  let manager: SystemdUserManager | undefined;
  let imageId = '';
  const units: string[] = [];
  beforeAll(async () => {
    manager = await SystemdUserManager.start(options);
    suite.env.ok(['fetch', '--insecure-options=image', suite.demo]);
    imageId = suite.env.json<{ id: string }[]>(['image', 'list'])[0]!.id;
  });
  // Runs before usePodSuite's afterAll (hooks unwind in reverse): units stopped while the store exists.
  afterAll(async () => {
    if (manager !== undefined) {
      for (const unit of units) manager.systemctl(['stop', unit]);
      await manager.stop();
    }
    // Pods the manager had to kill (a failed test): their cgroups and mounts go with gc.
    suite.env.run(['gc', '--grace-period=0']);
  });
  const m = () => manager!;
  return { m, units, ...unitHelpers(suite, m, () => imageId, units) };
}

describe.skipIf(missing !== undefined)(`tspod run under a real systemd manager${missing === undefined ? '' : ` (skipped: ${missing})`}`, () => {
  const suite = usePodSuite();
  const { m, units, output, observed, podManifest, tspodLine, writeService, outcome, expectTspodRunIsMain, app } = useManager(suite);

  it('Type=notify with a 2-app pod: active only once both apps have started, MainPID is tspod run, `systemctl stop` ends it gracefully and the apps are gone', async () => {
    const unit = 'pod-notify.service';
    // b starts 1 s after a: its pre-start handler sleeps first (spec/aci.md eventHandlers).
    const manifest = podManifest('notify', [
      app('a', ['/bin/sleep', '60']),
      app('b', ['/bin/sleep', '60'], { eventHandlers: [{ name: 'pre-start', exec: ['/bin/sleep', '1'] }] }),
    ]);
    const uuidFile = path.join(suite.env.base, 'notify.uuid');
    writeService(unit, [
      'Type=notify',
      'NotifyAccess=main',
      'KillMode=mixed',
      'TimeoutStartSec=30',
      'TimeoutStopSec=20',
      `ExecStart=${tspodLine(['run', '--net=none', `--uuid-file-save=${uuidFile}`, `--pod-manifest=${manifest}`])}`,
    ]);
    m().ok(['start', '--no-block', unit]);
    const startedFile = (appName: string) => {
      if (!fs.existsSync(uuidFile)) return false;
      const uuid = fs.readFileSync(uuidFile, 'utf8').trim();
      return fs.existsSync(path.join(suite.env.dir, 'pods', 'run', uuid, 'status', `${appName}.started`));
    };
    const states: string[] = [];
    let active: Record<string, string> | undefined;
    for (let i = 0; i < 600 && active === undefined; i++) {
      const values = m().show(unit, ['ActiveState', 'MainPID', 'StatusText', 'ControlGroup']);
      if (states.at(-1) !== values.ActiveState) states.push(values.ActiveState!);
      if (values.ActiveState === 'active') {
        // Read after the state: READY=1 came after both .started files were written.
        expect(startedFile('a'), 'active before app a had started').toBe(true);
        expect(startedFile('b'), 'active before app b had started').toBe(true);
        active = values;
      } else if (values.ActiveState !== 'activating' && values.ActiveState !== 'inactive') {
        throw new Error(`${unit} is ${values.ActiveState}; output:\n${output(unit)}`);
      }
      await sleep(50);
    }
    expect(active, `never active; states ${states.join(' ')}; output:\n${output(unit)}`).toBeDefined();
    // Activating for the second b waited for: not active at once.
    expect(states).toContain('activating');
    expect(active!.StatusText).toBe('running: a, b');
    expectTspodRunIsMain(active!.MainPID!);
    // Everything of the pod is in the unit's cgroup: tspod run, the pod's init, the apps.
    // READY=1 comes once each app's exec step has execve'd the app's own program.
    const pids = m().pidsOf(active!.ControlGroup!);
    expect(pids.filter((pid) => cmdline(pid)?.join(' ') === '/bin/sleep 60'), `pids ${pids.join(' ')}`).toHaveLength(2);

    m().ok(['stop', unit]);
    // tspod run stopped the apps on systemd's SIGTERM and exited 0 by itself.
    expect(await outcome(unit)).toBe('success exited 0');
    expect(m().show(unit, ['ActiveState']).ActiveState).toBe('inactive');
    expect(pids.filter(alive)).toEqual([]);
    expect(m().pidsOf(active!.ControlGroup!)).toEqual([]);
  });

  it('Type=simple: an app that exits 3 makes the unit fail with ExecMainStatus=3 (Result=exit-code)', async () => {
    const unit = 'pod-fails.service';
    writeService(unit, [
      'Type=simple',
      'KillMode=mixed',
      'TimeoutStopSec=20',
      `ExecStart=${tspodLine(['run', '--insecure-options=image', '--net=none', suite.demo, '--name', 'ok', '--exec', '/bin/sleep', '--', '60', '---', suite.demo, '--name', 'bad', '--exec', '/bin/sh', '--', '-c', 'sleep 0.5; echo failing; exit 3'])}`,
    ]);
    m().ok(['start', unit]);
    const { ControlGroup } = m().show(unit, ['ControlGroup']);
    expect(ControlGroup).toMatch(/\/pod-fails\.service$/);
    const values = await m().waitFor(unit, ['ActiveState', 'Result', 'ExecMainStatus', 'ExecMainCode'], (v) => v.ActiveState === 'failed' || v.ActiveState === 'inactive');
    expect(values.ActiveState, output(unit)).toBe('failed');
    expect(values.Result).toBe('exit-code');
    expect(values.ExecMainStatus).toBe('3');
    expect(values.ExecMainCode).toBe('1'); // CLD_EXITED: tspod run exited, it was not killed
    expect(await outcome(unit)).toBe('exit-code exited 3');
    expect(output(unit)).toContain('[bad] failing');
    // The other app was stopped by tspod: nothing is left in the unit.
    expect(m().pidsOf(ControlGroup!)).toEqual([]);
    m().ok(['reset-failed', unit]);
  });

  it('an app that ignores SIGTERM is killed by tspod after --stop-timeout, well before TimeoutStopSec=: systemd needs no SIGKILL (Result=exit-code, not timeout)', async () => {
    const unit = 'pod-stubborn.service';
    writeService(unit, [
      'Type=notify',
      'NotifyAccess=main',
      'KillMode=mixed',
      'TimeoutStopSec=8',
      // SIG_IGN survives exec: the app's sleep ignores SIGTERM and has no child left behind.
      `ExecStart=${tspodLine(['run', '--insecure-options=image', '--net=none', '--stop-timeout=1s', suite.demo, '--name', 'stubborn', '--exec', '/bin/sh', '--', '-c', "trap '' TERM; echo trapped; exec sleep 60", '---', suite.demo, '--name', 'polite', '--exec', '/bin/sleep', '--', '60'])}`,
    ]);
    m().ok(['start', unit]);
    const { ControlGroup } = m().show(unit, ['ControlGroup']);
    for (let i = 0; i < 200 && !output(unit).includes('[stubborn] trapped'); i++) await sleep(50);
    expect(output(unit)).toContain('[stubborn] trapped');
    const pids = m().pidsOf(ControlGroup!);
    const began = Date.now();
    m().ok(['stop', '--no-block', unit]);
    // What the manager shows while tspod stops the pod: tspod's STATUS= lines.
    const seen = new Set<string>();
    const values = await m().waitFor(
      unit,
      ['ActiveState', 'StatusText', 'Result', 'ExecMainStatus', 'ExecMainCode'],
      (v) => {
        seen.add(`${v.ActiveState}: ${v.StatusText}`);
        return v.ActiveState === 'failed' || v.ActiveState === 'inactive';
      },
      15_000,
    );
    const took = Date.now() - began;
    expect([...seen]).toContain('deactivating: stopping');
    // tspod's 1 s stop timeout was waited for; systemd's 8 s were not reached (Result is not `timeout`).
    expect(took).toBeGreaterThanOrEqual(1000);
    // tspod run exited by itself with the killed app's 137; systemd did not kill it.
    expect(values).toEqual({ ActiveState: 'failed', StatusText: 'exited with status 137', Result: 'exit-code', ExecMainStatus: '137', ExecMainCode: '1' });
    expect(await outcome(unit)).toBe('exit-code exited 137');
    expect(pids.filter(alive)).toEqual([]);
    m().ok(['reset-failed', unit]);
  });

  it('the unit of `tspod generate systemd UUID --files` runs as written: active with MainPID tspod run in machine.slice, stopped cleanly', async () => {
    const uuid = suite.env.ok(['prepare', '--insecure-options=image', '--net=none', '--stop-timeout=2s', suite.demo, '--name', 'web', '--exec', '/bin/sleep', '--', '60']).trim();
    suite.env.ok(['generate', 'systemd', uuid, '--name', 'web', '--files', `--output-dir=${m().unitDir}`]);
    const unit = 'tspod-web.service';
    units.push(unit);
    const unitFile = path.join(m().unitDir, unit);
    const content = fs.readFileSync(unitFile, 'utf8');
    for (const line of ['Type=notify', 'NotifyAccess=main', 'KillMode=mixed', 'TimeoutStopSec=12', 'Slice=machine.slice']) expect(content).toContain(`\n${line}\n`);
    // Only output and the outcome are added, in a drop-in: the unit itself is as generated.
    m().writeUnit(`${unit}.d/test.conf`, ['[Service]', ...observed(unit), ''].join('\n'));
    m().ok(['start', unit]);
    const values = m().show(unit, ['ActiveState', 'MainPID', 'StatusText', 'ControlGroup', 'FragmentPath', 'NotifyAccess']);
    expect(values.ActiveState, output(unit)).toBe('active');
    expect(values.FragmentPath).toBe(unitFile);
    expect(values.StatusText).toBe('running: web');
    expect(values.ControlGroup).toMatch(/\/machine\.slice\/tspod-web\.service$/);
    expectTspodRunIsMain(values.MainPID!);
    expect(cmdline(Number(values.MainPID))).toContain(`--pod-manifest=${path.join(m().unitDir, 'tspod-web.pod-manifest.json')}`);
    const pids = m().pidsOf(values.ControlGroup!);
    m().ok(['stop', unit]);
    expect(await outcome(unit)).toBe('success exited 0');
    expect(m().show(unit, ['ActiveState']).ActiveState).toBe('inactive');
    expect(pids.filter(alive)).toEqual([]);
  });

  it('the unit `tspod generate systemd IMAGE --files` writes for a pod that ends by itself: READY=1, then inactive with success', async () => {
    suite.env.ok(['generate', 'systemd', '--insecure-options=image', '--net=none', suite.demo, '--name', 'hello', '--files', `--output-dir=${m().unitDir}`]);
    const unit = 'tspod-hello.service';
    units.push(unit);
    m().writeUnit(`${unit}.d/test.conf`, ['[Service]', ...observed(unit), ''].join('\n'));
    // The demo app prints and exits 0: `start` returns once READY=1 came, the unit then ends.
    m().ok(['start', unit]);
    expect(await outcome(unit)).toBe('success exited 0');
    expect(output(unit)).toContain('hello from a tspod pod');
    const values = await m().waitFor(unit, ['ActiveState'], (v) => v.ActiveState !== 'active' && v.ActiveState !== 'deactivating');
    expect(values.ActiveState).toBe('inactive');
  });
});

/** The cgroup v2 path of a live process, with its leading `/` as in ControlGroup=. */
function unifiedCgroupOfPid(pid: number): string {
  return `/${unifiedCgroupOf(fs.readFileSync(`/proc/${pid}/cgroup`, 'utf8'))}`;
}

const missingUnified = canRunPods ? systemdManagerMissing({ unified: true }) : 'needs root and actool (real pods)';

describe.skipIf(missingUnified !== undefined)(
  `tspod run in a unit's delegated cgroup, under a manager in systemd's unified mode (cgroup v2)${missingUnified === undefined ? '' : ` (skipped: ${missingUnified})`}`,
  () => {
    const suite = usePodSuite();
    const { m, output, podManifest, tspodLine, writeService, outcome, expectTspodRunIsMain, app } = useManager(suite, { unified: true });
    const podDirOf = (uuidFile: string) => path.join(suite.env.dir, 'pods', 'run', fs.readFileSync(uuidFile, 'utf8').trim());
    /** A Type=notify unit with Delegate=yes running the pod of `manifest`. */
    const delegatedService = (unit: string, uuidFile: string, manifest: string) =>
      writeService(unit, [
        'Type=notify',
        'NotifyAccess=main',
        'KillMode=mixed',
        'Delegate=yes',
        'TimeoutStopSec=20',
        `ExecStart=${tspodLine(['run', '--net=none', `--uuid-file-save=${uuidFile}`, `--pod-manifest=${manifest}`])}`,
      ]);

    it('Delegate=yes: tspod run moves into the unit\'s supervisor leaf, the pod and its apps live below the unit, `tspod enter` joins the app there, and `systemctl stop` leaves no process and no cgroup', async () => {
      const unit = 'pod-delegated.service';
      const uuidFile = path.join(suite.env.base, 'delegated.uuid');
      const manifest = podManifest('delegated', [app('a', ['/bin/sleep', '60']), app('b', ['/bin/sleep', '60'])]);
      delegatedService(unit, uuidFile, manifest);
      m().ok(['start', unit]);
      const values = m().show(unit, ['ActiveState', 'MainPID', 'ControlGroup']);
      expect(values.ActiveState, output(unit)).toBe('active');
      expectTspodRunIsMain(values.MainPID!);
      const unitCgroup = values.ControlGroup!;
      const podDir = podDirOf(uuidFile);
      const uuid = path.basename(podDir);
      expect(unifiedCgroupOfPid(Number(values.MainPID))).toBe(`${unitCgroup}/supervisor`);
      // The pod's init started there too (it is tspod run's child) and stays beside the pod.
      expect(unifiedCgroupOfPid(Number(fs.readFileSync(path.join(podDir, 'pid'), 'utf8')))).toBe(`${unitCgroup}/supervisor`);
      expect(fs.readFileSync(path.join(podDir, 'cgroup'), 'utf8')).toBe(`${unitCgroup.slice(1)}/pod-${uuid}\n`);
      const pids = m().pidsOf(unitCgroup);
      const apps = pids.filter((pid) => cmdline(pid)?.join(' ') === '/bin/sleep 60');
      expect(apps.map(unifiedCgroupOfPid).sort(), `pids ${pids.join(' ')}`).toEqual([`${unitCgroup}/pod-${uuid}/app-a`, `${unitCgroup}/pod-${uuid}/app-b`]);
      // Nothing of the pod outside the unit: every process of the pod's PID namespace is in it.
      expect(suite.env.ok(['enter', '--app', 'b', uuid, 'cat', '/proc/self/cgroup'])).toContain(`0::${unitCgroup}/pod-${uuid}/app-b\n`);

      m().ok(['stop', unit]);
      expect(await outcome(unit)).toBe('success exited 0');
      expect(pids.filter(alive)).toEqual([]);
      // tspod removed the pod's cgroups; systemd removed the unit's with the supervisor leaf.
      expect(fs.existsSync(m().cgroupDir(unitCgroup))).toBe(false);
    });

    it('a memory limit under Delegate=yes: enforced in the app\'s cgroup below the unit when the unit offers the memory controller, else a clear error naming the cgroup and Delegate=', async () => {
      const unit = 'pod-limited.service';
      const uuidFile = path.join(suite.env.base, 'limited.uuid');
      const manifest = podManifest('limited', [app('m', ['/bin/sleep', '60'], { isolators: [{ name: 'resource/memory', value: { limit: '64Mi' } }] })]);
      delegatedService(unit, uuidFile, manifest);
      const started = m().systemctl(['start', unit]);
      const unitCgroup = `${m().controlGroup}/app.slice/${unit}`;
      if (started.status === 0) {
        // A host whose v2 hierarchy has the memory controller, which the unit was given.
        const uuid = path.basename(podDirOf(uuidFile));
        expect(fs.readFileSync(path.join(m().cgroupDir(unitCgroup), `pod-${uuid}`, 'app-m', 'memory.max'), 'utf8').trim()).toBe(String(64 * 2 ** 20));
        m().ok(['stop', unit]);
        expect(await outcome(unit)).toBe('success exited 0');
      } else {
        // This machine kind: memory is bound to its v1 hierarchy, so the unit cannot be given it.
        expect(await outcome(unit)).toBe('exit-code exited 254');
        expect(output(unit)).toContain(`cgroup ${unitCgroup}: the pod's limits need the memory controller, which it does not offer (cgroup.controllers: none); let the unit delegate it (Delegate=yes)`);
        m().ok(['reset-failed', unit]);
      }
    });
  },
);
