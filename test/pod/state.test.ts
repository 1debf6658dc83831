// Pod states on disk: transitions (flock + rename + fsync), the state derived from (directory,
// lock), races between two starters, readPod's times and app statuses, and UUIDs.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { AmbiguousError, NotFoundError, UsageError } from '../../src/errors.js';
import {
  beginPrepare,
  beginRun,
  createEmbryo,
  finishPrepare,
  markExited,
  moveToGarbage,
  POD_STATES,
  POD_TRANSITIONS,
  podPath,
  PodStateError,
  readPod,
  STATE_PLACES,
  stateOf,
} from '../../src/pod/state.js';
import { isPodUuid, newPodUuid, parsePodUuid, podUuidsFromArgs, readUuidFile, resolvePodUuid } from '../../src/pod/uuid.js';
import { libcSyscalls as sys, type Syscalls } from '../../src/sys/index.js';
import { fabricatePod, holdPodLock, type LockHolder } from '../support/pods.js';

/** The real syscalls, with renames and directory fsyncs written down in order. */
function createRecordingSyscalls(real: Syscalls): { sys: Syscalls; calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    sys: {
      ...real,
      flock: (fd, op) => real.flock(fd, op),
      renameat2: (from, to, flags) => {
        calls.push(`renameat2 ${from} ${to}`);
        real.renameat2(from, to, flags);
      },
      fsyncPath: (p) => {
        calls.push(`fsync ${p}`);
        real.fsyncPath(p);
      },
    },
  };
}

let dir: string;
const holders: LockHolder[] = [];
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tspod-pod-state-'));
});
afterEach(async () => {
  for (const h of holders.splice(0)) await h.kill();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('the state table', () => {
  it('maps every (directory, lock) pair to exactly one state, and back', () => {
    for (const state of POD_STATES) {
      const { dir: location, locked } = STATE_PLACES[state];
      expect(stateOf(location, locked ?? false)).toBe(state);
      if (locked === undefined) expect(stateOf(location, true)).toBe(state);
    }
    expect(stateOf('run', true)).toBe('running');
    expect(stateOf('run', false)).toBe('exited');
    expect(stateOf('prepare', false)).toBe('aborted prepare');
    expect(stateOf('exited-garbage', true)).toBe('exited deleting');
  });

  it('only moves pods forward, into the next state directories', () => {
    const order = ['embryo', 'prepare', 'prepared', 'run', 'exited-garbage', 'garbage'];
    for (const { from, to } of Object.values(POD_TRANSITIONS)) {
      for (const f of from) expect(order.indexOf(to), `${f} -> ${to}`).toBeGreaterThan(order.indexOf(f));
    }
  });
});

describe('transitions', () => {
  it('embryo -> prepare -> prepared -> run keeps the lock while preparing and hands it to run', async () => {
    const pod = createEmbryo(dir, sys);
    expect(isPodUuid(pod.uuid)).toBe(true);
    expect(fs.existsSync(path.join(podPath(dir, 'embryo', pod.uuid), 'pod-created'))).toBe(true);
    expect(readPod(dir, sys, pod.uuid).state).toBe('embryo');
    beginPrepare(dir, sys, pod);
    expect(readPod(dir, sys, pod.uuid).state).toBe('preparing');
    finishPrepare(dir, sys, pod);
    expect(pod.lock).toBeUndefined();
    expect(readPod(dir, sys, pod.uuid).state).toBe('prepared');
    const running = await beginRun(dir, sys, pod.uuid);
    expect(running.lock?.descriptor).toBeGreaterThan(2);
    expect(readPod(dir, sys, pod.uuid).state).toBe('running');
    running.lock?.release();
    expect(readPod(dir, sys, pod.uuid).state).toBe('exited');
    markExited(dir, sys, pod.uuid);
    expect(readPod(dir, sys, pod.uuid).state).toBe('exited garbage');
  });

  it('embryo -> run directly (tspod run) with the creator lock', async () => {
    const pod = createEmbryo(dir, sys);
    await beginRun(dir, sys, pod);
    expect(pod.location).toBe('run');
    expect(readPod(dir, sys, pod.uuid).state).toBe('running');
    pod.lock?.release();
  });

  it('fsyncs both parent directories on every rename', async () => {
    const recording = createRecordingSyscalls(sys);
    const pod = createEmbryo(dir, recording.sys);
    recording.calls.length = 0;
    beginPrepare(dir, recording.sys, pod);
    expect(recording.calls).toEqual([
      `renameat2 ${podPath(dir, 'embryo', pod.uuid)} ${podPath(dir, 'prepare', pod.uuid)}`,
      `fsync ${path.join(dir, 'pods', 'prepare')}`,
      `fsync ${path.join(dir, 'pods', 'embryo')}`,
    ]);
    pod.lock?.release();
  });

  it('refuses a transition not in the table (prepared pod marked exited)', () => {
    const pod = createEmbryo(dir, sys);
    beginPrepare(dir, sys, pod);
    finishPrepare(dir, sys, pod);
    expect(() => beginPrepare(dir, sys, { ...pod, lock: undefined })).toThrow(PodStateError);
    expect(() => markExited(dir, sys, pod.uuid)).toThrow(/ENOENT|no longer/);
  });

  it('refuses to create a pod whose uuid exists in any state (EEXIST)', () => {
    const { uuid } = fabricatePod(dir, { state: 'exited' });
    expect(() => createEmbryo(dir, sys, uuid)).toThrow(/already exists/);
  });

  it('two concurrent run-prepared of one pod: exactly one wins', async () => {
    const pod = createEmbryo(dir, sys);
    beginPrepare(dir, sys, pod);
    finishPrepare(dir, sys, pod);
    const results = await Promise.allSettled([beginRun(dir, sys, pod.uuid, { lockWaitMs: 50 }), beginRun(dir, sys, pod.uuid, { lockWaitMs: 50 })]);
    const won = results.filter((r) => r.status === 'fulfilled');
    const lost = results.filter((r) => r.status === 'rejected');
    expect(won).toHaveLength(1);
    expect(lost).toHaveLength(1);
    expect(String((lost[0] as PromiseRejectedResult).reason)).toMatch(/not prepared|locked by another process/);
    (won[0] as PromiseFulfilledResult<{ lock?: { release(): void } }>).value.lock?.release();
  });

  it('run-prepared loses cleanly when another process holds the prepared pod (EWOULDBLOCK)', async () => {
    const fake = fabricatePod(dir, { state: 'prepared', apps: [{ name: 'a' }] });
    holders.push(await holdPodLock(fake.path));
    await expect(beginRun(dir, sys, fake.uuid, { lockWaitMs: 50 })).rejects.toThrow(/locked by another process/);
    expect(readPod(dir, sys, fake.uuid).location).toBe('prepared');
  });

  it('run-prepared of a pod that is already running says so', async () => {
    const fake = fabricatePod(dir, { state: 'exited', apps: [{ name: 'a' }] });
    await expect(beginRun(dir, sys, fake.uuid)).rejects.toThrow(/not prepared \(in run/);
    await expect(beginRun(dir, sys, newPodUuid())).rejects.toThrow(NotFoundError);
  });

  it('moveToGarbage refuses a prepare another process holds, takes an aborted one', async () => {
    const preparing = fabricatePod(dir, { state: 'preparing' });
    holders.push(await holdPodLock(preparing.path));
    expect(() => moveToGarbage(dir, sys, preparing.uuid)).toThrow(/being prepared/);
    const aborted = fabricatePod(dir, { state: 'aborted prepare' });
    moveToGarbage(dir, sys, aborted.uuid);
    expect(readPod(dir, sys, aborted.uuid).state).toBe('garbage');
  });
});

describe('state from the lock of a real process', () => {
  it('a run dir locked by `flock -o -x DIR sleep` is running; after SIGKILL it is exited', async () => {
    const fake = fabricatePod(dir, { state: 'running', apps: [{ name: 'web', created: true, started: true }] });
    const holder = await holdPodLock(fake.path);
    let pod = readPod(dir, sys, fake.uuid);
    expect(pod.state).toBe('running');
    expect(pod.apps[0]!.state).toBe('running');
    expect(() => markExited(dir, sys, fake.uuid)).toThrow(/is running/);
    await holder.kill();
    pod = readPod(dir, sys, fake.uuid);
    expect(pod.state).toBe('exited');
    // Killed as a whole: no status file, but the app is not running any more.
    expect(pod.apps[0]!.state).toBe('exited');
    expect(pod.apps[0]!.exitCode).toBeUndefined();
  });

  it('a shared lock held by a reader does not make an exited pod look running', async () => {
    const fake = fabricatePod(dir, { state: 'exited' });
    const { tryLockPodDir } = await import('../../src/pod/state.js');
    const reader = tryLockPodDir(sys, fake.path, 'shared');
    expect(readPod(dir, sys, fake.uuid).state).toBe('exited');
    reader?.release();
  });
});

describe('readPod', () => {
  it('reads created, started, pid, ready, per-app times and exit codes from the pod files', () => {
    const created = new Date('2026-01-02T03:04:05.000Z');
    const started = new Date('2026-01-02T03:04:06.500Z');
    const finished = new Date('2026-01-02T03:05:00.000Z');
    const fake = fabricatePod(dir, {
      state: 'exited',
      created,
      started,
      pid: 4321,
      ready: true,
      apps: [
        { name: 'a', version: '1.0', created: true, started: true, exitCode: 0, finished },
        { name: 'b', created: true, started: true, exitCode: 3, finished },
        { name: 'c', created: true },
      ],
      userLabels: { team: 'x' },
    });
    const pod = readPod(dir, sys, fake.uuid);
    expect(pod).toMatchObject({ state: 'exited', createdAt: created, startedAt: started, pid: 4321, ready: true, userLabels: { team: 'x' } });
    expect(pod.apps.map((a) => [a.name, a.state, a.exitCode])).toEqual([
      ['a', 'exited', 0],
      ['b', 'exited', 3],
      ['c', 'exited', undefined],
    ]);
    expect(pod.apps[0]).toMatchObject({ imageName: 'example.com/a', imageVersion: '1.0', createdAt: started, startedAt: started, finishedAt: finished });
    expect(pod.apps[0]!.imageId).toMatch(/^sha512-[0-9a-f]{128}$/);
  });

  it('gives the gc-marked time from the ctime of the exited-garbage directory', () => {
    const before = Date.now() - 1000;
    const fake = fabricatePod(dir, { state: 'exited' });
    markExited(dir, sys, fake.uuid);
    const pod = readPod(dir, sys, fake.uuid);
    expect(pod.gcMarkedAt!.getTime()).toBeGreaterThanOrEqual(before);
  });

  it('reports a manifest that is not JSON instead of failing', () => {
    const fake = fabricatePod(dir, { state: 'prepared', manifest: '{nope' });
    const pod = readPod(dir, sys, fake.uuid);
    expect(pod.apps).toEqual([]);
    expect(pod.manifestError).toMatch(/^pod: /);
  });

  it('apps of a prepared pod are unknown, a started app of a running pod is running', async () => {
    const prepared = fabricatePod(dir, { state: 'prepared', apps: [{ name: 'a' }] });
    expect(readPod(dir, sys, prepared.uuid).apps[0]!.state).toBe('unknown');
    const running = fabricatePod(dir, { state: 'running', apps: [{ name: 'a', created: true }, { name: 'b', created: true, started: true }] });
    holders.push(await holdPodLock(running.path));
    expect(readPod(dir, sys, running.uuid).apps.map((a) => a.state)).toEqual(['created', 'running']);
  });

  it('throws NotFoundError for an unknown pod', () => {
    expect(() => readPod(dir, sys, newPodUuid())).toThrow(NotFoundError);
  });
});

describe('uuids', () => {
  it('parses upper case and the 32-digit form, rejects garbage', () => {
    const uuid = newPodUuid();
    expect(uuid).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(parsePodUuid(uuid.toUpperCase())).toBe(uuid);
    expect(parsePodUuid(uuid.replace(/-/g, ''))).toBe(uuid);
    expect(() => parsePodUuid('not-a-uuid')).toThrow(UsageError);
  });

  it('resolves a unique prefix across every state directory', () => {
    const a = fabricatePod(dir, { state: 'exited', uuid: 'aaaa1111-0000-4000-8000-000000000001' });
    fabricatePod(dir, { state: 'prepared', uuid: 'aaaa2222-0000-4000-8000-000000000002' });
    fabricatePod(dir, { state: 'garbage', uuid: 'bbbb0000-0000-4000-8000-000000000003' });
    expect(resolvePodUuid(dir, 'aaaa1')).toBe(a.uuid);
    expect(resolvePodUuid(dir, 'AAAA1111-00')).toBe(a.uuid);
    expect(resolvePodUuid(dir, 'bbbb')).toBe('bbbb0000-0000-4000-8000-000000000003');
    expect(() => resolvePodUuid(dir, 'aaaa')).toThrow(AmbiguousError);
    expect(() => resolvePodUuid(dir, 'aaaa')).toThrow(/aaaa1111-.*aaaa2222-/);
    expect(() => resolvePodUuid(dir, 'cccc')).toThrow(NotFoundError);
    expect(() => resolvePodUuid(dir, 'zz')).toThrow(UsageError);
  });

  it('reads --uuid-file, and refuses it together with positionals', () => {
    const uuid = newPodUuid();
    const file = path.join(dir, 'uuid');
    fs.writeFileSync(file, `${uuid}\n`);
    expect(readUuidFile(file)).toBe(uuid);
    expect(podUuidsFromArgs(dir, [], file)).toEqual([uuid]);
    expect(() => podUuidsFromArgs(dir, ['abc'], file)).toThrow(/not both/);
    expect(() => readUuidFile(path.join(dir, 'missing'))).toThrow(/no such file/);
    fs.writeFileSync(file, 'hello');
    expect(() => readUuidFile(file)).toThrow(/does not hold a pod uuid/);
  });
});
