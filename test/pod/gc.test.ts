// gc's mark and sweep (grace period from the ctime of the mark, expired prepares, concurrent gc),
// rm (refuses running pods), the mount check before deleting, and `tspod rm` / `tspod gc`.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';

import { gcPods, mountsBelow, removePod, removePodDir, type PodCleanup } from '../../src/pod/gc.js';
import { findPod, readPod } from '../../src/pod/state.js';
import { libcSyscalls as sys } from '../../src/sys/index.js';
import { TspodEnv } from '../support/cli.js';
import { fabricatePod, holdPodLock, type LockHolder } from '../support/pods.js';

let dir: string;
const holders: LockHolder[] = [];
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tspod-pod-gc-'));
});
afterEach(async () => {
  for (const h of holders.splice(0)) await h.kill();
  fs.rmSync(dir, { recursive: true, force: true });
});

const MINUTE = 60_000;
/** A cleanup that records what it was asked to clean (the real one unmounts; nothing is mounted here). */
function recordingCleanup(): { cleanup: PodCleanup; cleaned: string[] } {
  const cleaned: string[] = [];
  return {
    cleaned,
    cleanup: async (podDir, pod) => {
      expect(fs.existsSync(podDir)).toBe(true);
      expect(['deleting', 'exited deleting']).toContain(pod.state);
      cleaned.push(pod.uuid);
    },
  };
}

describe('gcPods', () => {
  it('marks exited pods, keeps them for the grace period (counted from the mark), then deletes them', async () => {
    const exited = fabricatePod(dir, { state: 'exited', created: new Date(Date.now() - 48 * 60 * MINUTE) });
    const { cleanup, cleaned } = recordingCleanup();
    const first = await gcPods(dir, sys, { cleanup, gracePeriodMs: 30 * MINUTE });
    expect(first.marked).toEqual([exited.uuid]);
    expect(first.removed).toEqual([]);
    expect(first.kept).toEqual([{ uuid: exited.uuid, reason: expect.stringMatching(/^grace period: \d+s left$/) }]);
    expect(readPod(dir, sys, exited.uuid).state).toBe('exited garbage');
    // ctime cannot be faked: move the clock instead.
    const later = await gcPods(dir, sys, { cleanup, gracePeriodMs: 30 * MINUTE, now: () => Date.now() + 31 * MINUTE });
    expect(later.removed).toEqual([exited.uuid]);
    expect(cleaned).toEqual([exited.uuid]);
    expect(findPod(dir, exited.uuid)).toBeUndefined();
  });

  it('with --grace-period=0 marks and deletes in one run', async () => {
    const exited = fabricatePod(dir, { state: 'exited' });
    const report = await gcPods(dir, sys, { gracePeriodMs: 0, cleanup: recordingCleanup().cleanup });
    expect(report.marked).toEqual([exited.uuid]);
    expect(report.removed).toEqual([exited.uuid]);
  });

  it('leaves running pods, pods being prepared and fresh prepared pods alone', async () => {
    const running = fabricatePod(dir, { state: 'running' });
    const preparing = fabricatePod(dir, { state: 'preparing' });
    holders.push(await holdPodLock(running.path), await holdPodLock(preparing.path));
    const prepared = fabricatePod(dir, { state: 'prepared' });
    const report = await gcPods(dir, sys, { gracePeriodMs: 0, cleanup: recordingCleanup().cleanup });
    expect(report).toMatchObject({ marked: [], discarded: [], removed: [] });
    expect([running, preparing, prepared].map((p) => readPod(dir, sys, p.uuid).state)).toEqual(['running', 'preparing', 'prepared']);
  });

  it('discards aborted prepares and abandoned embryos at once, prepared pods after --expire-prepared', async () => {
    const aborted = fabricatePod(dir, { state: 'aborted prepare' });
    const embryo = fabricatePod(dir, { state: 'embryo' });
    const prepared = fabricatePod(dir, { state: 'prepared' });
    const { cleanup, cleaned } = recordingCleanup();
    const first = await gcPods(dir, sys, { cleanup, expirePreparedMs: 24 * 60 * MINUTE });
    expect(first.discarded.sort()).toEqual([aborted.uuid, embryo.uuid].sort());
    expect(first.removed.sort()).toEqual([aborted.uuid, embryo.uuid].sort());
    expect(readPod(dir, sys, prepared.uuid).state).toBe('prepared');
    const nextDay = await gcPods(dir, sys, { cleanup, expirePreparedMs: 24 * 60 * MINUTE, now: () => Date.now() + 25 * 60 * MINUTE });
    expect(nextDay.discarded).toEqual([prepared.uuid]);
    expect(nextDay.removed).toEqual([prepared.uuid]);
    expect(cleaned).toHaveLength(3);
  });

  it('--mark-only marks and deletes nothing', async () => {
    const exited = fabricatePod(dir, { state: 'exited' });
    const garbage = fabricatePod(dir, { state: 'garbage' });
    const report = await gcPods(dir, sys, { gracePeriodMs: 0, markOnly: true, cleanup: recordingCleanup().cleanup });
    expect(report).toMatchObject({ marked: [exited.uuid], removed: [] });
    expect(readPod(dir, sys, garbage.uuid).state).toBe('garbage');
  });

  it('skips pods another gc is deleting (locked), and reports a failing cleanup but goes on', async () => {
    const deleting = fabricatePod(dir, { state: 'deleting' });
    holders.push(await holdPodLock(deleting.path));
    const broken = fabricatePod(dir, { state: 'garbage', uuid: '00000000-0000-4000-8000-000000000001' });
    const fine = fabricatePod(dir, { state: 'garbage', uuid: 'ffffffff-0000-4000-8000-000000000002' });
    const report = await gcPods(dir, sys, {
      cleanup: async (_podDir, pod) => {
        if (pod.uuid === broken.uuid) throw new Error('umount: target is busy');
      },
    });
    expect(report.kept).toEqual([{ uuid: deleting.uuid, reason: 'being deleted by another process' }]);
    expect(report.failed).toEqual([{ uuid: broken.uuid, error: 'umount: target is busy' }]);
    expect(report.removed).toEqual([fine.uuid]);
    expect(readPod(dir, sys, broken.uuid).state).toBe('garbage');
  });

  it('concurrent gc runs delete every pod exactly once and do not fail (ENOENT ignored)', async () => {
    const pods = Array.from({ length: 40 }, (_, i) => fabricatePod(dir, { state: i % 2 === 0 ? 'exited' : 'garbage', apps: [{ name: 'a', started: true, exitCode: 0 }] }));
    const cleaned: string[] = [];
    const cleanup: PodCleanup = async (_podDir, pod) => {
      cleaned.push(pod.uuid);
      await new Promise((r) => setTimeout(r, 1));
    };
    const reports = await Promise.all(Array.from({ length: 4 }, () => gcPods(dir, sys, { gracePeriodMs: 0, cleanup })));
    const removed = reports.flatMap((r) => r.removed);
    expect(reports.flatMap((r) => r.failed)).toEqual([]);
    expect(new Set(removed).size).toBe(removed.length);
    expect(removed.sort()).toEqual(pods.map((p) => p.uuid).sort());
    expect(cleaned.sort()).toEqual(removed);
    for (const p of pods) expect(findPod(dir, p.uuid)).toBeUndefined();
  });
});

describe('removePod', () => {
  it('removes exited, prepared and garbage pods at once', async () => {
    const { cleanup, cleaned } = recordingCleanup();
    for (const state of ['exited', 'prepared', 'exited garbage', 'aborted prepare'] as const) {
      const fake = fabricatePod(dir, { state });
      const removal = await removePod(dir, sys, fake.uuid, { cleanup });
      expect(removal).toEqual({ uuid: fake.uuid, state });
      expect(findPod(dir, fake.uuid)).toBeUndefined();
    }
    expect(cleaned).toHaveLength(4);
  });

  it('refuses a running pod and suggests tspod stop', async () => {
    const running = fabricatePod(dir, { state: 'running' });
    holders.push(await holdPodLock(running.path));
    const err = (await removePod(dir, sys, running.uuid).then(
      () => undefined,
      (e: unknown) => e,
    )) as { message: string; suggestions: string[] };
    expect(err.message).toBe(`remove pod ${running.uuid}: the pod is running`);
    expect(err.suggestions[0]).toBe(`tspod stop ${running.uuid}`);
    expect(readPod(dir, sys, running.uuid).state).toBe('running');
  });

  it('refuses a pod being prepared or deleted by another process', async () => {
    const preparing = fabricatePod(dir, { state: 'preparing' });
    holders.push(await holdPodLock(preparing.path));
    await expect(removePod(dir, sys, preparing.uuid)).rejects.toThrow(/being prepared by another process/);
  });
});

describe('mounts below a pod directory', () => {
  it('parses /proc/self/mountinfo (octal escapes), deepest first', () => {
    const info = path.join(dir, 'mountinfo');
    const podDir = path.join(dir, 'pod');
    fs.mkdirSync(podDir);
    const root = fs.realpathSync(podDir);
    fs.writeFileSync(
      info,
      [
        `22 1 8:1 / / rw - ext4 /dev/vda rw`,
        `30 22 0:5 / ${root}/root rw - overlay overlay rw`,
        `31 30 0:6 / ${root}/root/apps/a/rootfs/my\\040dir rw - tmpfs tmpfs rw`,
        `32 22 0:7 / ${root}-other rw - tmpfs tmpfs rw`,
      ].join('\n'),
    );
    expect(mountsBelow(podDir, info)).toEqual([`${root}/root/apps/a/rootfs/my dir`, `${root}/root`]);
  });

  it('refuses to delete a directory with a mount below it', () => {
    // The real mount table: /proc is mounted; nothing is mounted under our temp dir.
    expect(mountsBelow('/proc').length).toBeGreaterThan(0);
    expect(() => removePodDir('/proc')).toThrow(/still mounted/);
    const podDir = path.join(dir, 'pod');
    fs.mkdirSync(podDir);
    removePodDir(podDir);
    expect(fs.existsSync(podDir)).toBe(false);
  });
});

describe('tspod rm and tspod gc', () => {
  let env: TspodEnv;
  beforeAll(() => {
    env = new TspodEnv();
  });
  afterAll(() => env.cleanup());
  beforeEach(() => fs.rmSync(env.dir, { recursive: true, force: true }));

  it('rm removes pods by prefix and refuses a running one with exit 254', async () => {
    const exited = fabricatePod(env.dir, { state: 'exited' });
    const running = fabricatePod(env.dir, { state: 'running' });
    holders.push(await holdPodLock(running.path));
    expect(env.ok(['rm', exited.uuid.slice(0, 8)])).toBe(`removed pod ${exited.uuid}\n`);
    const refused = env.run(['rm', running.uuid]);
    expect(refused.status).toBe(254);
    expect(refused.stderr).toContain(`remove pod ${running.uuid}: the pod is running`);
    expect(refused.stderr).toContain(`try: tspod stop ${running.uuid}`);
  });

  it('rm removes the others when one of several fails, then exits 254', async () => {
    const a = fabricatePod(env.dir, { state: 'exited' });
    const b = fabricatePod(env.dir, { state: 'running' });
    holders.push(await holdPodLock(b.path));
    const result = env.run(['rm', a.uuid, b.uuid]);
    expect(result.status).toBe(254);
    expect(result.stdout).toBe(`removed pod ${a.uuid}\n`);
    expect(result.stderr).toContain('rm: 1 of 2 pods not removed');
  });

  it('gc --grace-period=0 removes exited pods; --json reports what it did', () => {
    const exited = fabricatePod(env.dir, { state: 'exited' });
    const prepared = fabricatePod(env.dir, { state: 'prepared' });
    expect(env.ok(['gc', '--mark-only'])).toBe(`marked pod ${exited.uuid} as exited garbage\n`);
    const report = env.json<{ removed: string[] }>(['gc', '--grace-period=0']);
    expect(report.removed).toEqual([exited.uuid]);
    expect(env.json<unknown[]>(['list']).length).toBe(1);
    expect(env.ok(['gc', '--expire-prepared=0'])).toContain(`moved pod ${prepared.uuid} to garbage`);
    const bad = env.run(['gc', '--grace-period=soon']);
    expect(bad.status).toBe(254);
    expect(bad.stderr).toContain('--grace-period: invalid duration');
  });
});
