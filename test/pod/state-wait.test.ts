// waitPod: `status --wait` (until the pod's lock is free) and `--wait-ready` (until `ready`
// exists), polling, with time limits.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { markExited } from '../../src/pod/state.js';
import { waitPod, WaitTimeoutError } from '../../src/pod/wait.js';
import { libcSyscalls as sys } from '../../src/sys/index.js';
import { fabricatePod, holdPodLock, type LockHolder } from '../support/pods.js';

let dir: string;
const holders: LockHolder[] = [];
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tspod-pod-wait-'));
});
afterEach(async () => {
  for (const h of holders.splice(0)) await h.kill();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('waitPod', () => {
  it('returns at once for an exited pod', async () => {
    const fake = fabricatePod(dir, { state: 'exited' });
    const pod = await waitPod(dir, sys, fake.uuid, { timeoutMs: 0, ready: false });
    expect(pod?.state).toBe('exited');
  });

  it('waits for a running pod until its lock holder dies (SIGKILL)', async () => {
    const fake = fabricatePod(dir, { state: 'running', apps: [{ name: 'a', started: true }] });
    const holder = await holdPodLock(fake.path);
    holders.push(holder);
    const started = Date.now();
    setTimeout(() => void holder.kill(), 300);
    const pod = await waitPod(dir, sys, fake.uuid, { timeoutMs: 10_000, ready: false, pollMs: 20 });
    expect(pod?.state).toBe('exited');
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
  });

  it('times out on a running pod with a clear error', async () => {
    const fake = fabricatePod(dir, { state: 'running' });
    holders.push(await holdPodLock(fake.path));
    const started = Date.now();
    const wait = waitPod(dir, sys, fake.uuid, { timeoutMs: 250, ready: false });
    await expect(wait).rejects.toThrow(WaitTimeoutError);
    await expect(waitPod(dir, sys, fake.uuid, { timeoutMs: 250, ready: false })).rejects.toThrow(
      `wait for pod ${fake.uuid} to finish: timed out after 250ms (state: running)`,
    );
    expect(Date.now() - started).toBeLessThan(3000);
  });

  it('follows a pod that gc moves to exited-garbage, and returns when it is removed', async () => {
    const fake = fabricatePod(dir, { state: 'exited' });
    markExited(dir, sys, fake.uuid);
    expect((await waitPod(dir, sys, fake.uuid, { timeoutMs: 0, ready: false }))?.state).toBe('exited garbage');
    fs.rmSync(path.join(dir, 'pods', 'exited-garbage', fake.uuid), { recursive: true });
    expect(await waitPod(dir, sys, fake.uuid, { timeoutMs: 0, ready: false })).toBeUndefined();
  });

  it('--wait-ready returns once `ready` appears', async () => {
    const fake = fabricatePod(dir, { state: 'running', apps: [{ name: 'a', started: true }] });
    holders.push(await holdPodLock(fake.path));
    setTimeout(() => fs.writeFileSync(path.join(fake.path, 'ready'), ''), 200);
    const pod = await waitPod(dir, sys, fake.uuid, { timeoutMs: 10_000, ready: true, pollMs: 20 });
    expect(pod?.ready).toBe(true);
    expect(pod?.state).toBe('running');
  });

  it('--wait-ready times out when the pod never gets ready', async () => {
    const fake = fabricatePod(dir, { state: 'running' });
    holders.push(await holdPodLock(fake.path));
    await expect(waitPod(dir, sys, fake.uuid, { timeoutMs: 200, ready: true })).rejects.toThrow(/to become ready: timed out after 200ms/);
  });

  it('--wait-ready fails at once for a pod that exited without becoming ready', async () => {
    const fake = fabricatePod(dir, { state: 'exited' });
    await expect(waitPod(dir, sys, fake.uuid, { timeoutMs: 60_000, ready: true })).rejects.toThrow(/is exited and never became ready/);
  });

  it('keeps waiting on a prepared pod (it has not run yet)', async () => {
    const fake = fabricatePod(dir, { state: 'prepared' });
    await expect(waitPod(dir, sys, fake.uuid, { timeoutMs: 150, ready: false })).rejects.toThrow(/state: prepared/);
  });
});
