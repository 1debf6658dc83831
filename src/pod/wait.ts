// Waiting on a pod for `status --wait` and `--wait-ready`, as rkt's pkg/pod/wait.go: poll every
// 100 ms. "Finished" means the pod's lock is free in a state that will not start again on its own
// (run unlocked = exited, or later), or the pod is gone; "ready" means stage1 created `ready`.
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import { TspodError } from '../errors.js';
import type { Syscalls } from '../sys/types.js';
import { STAGE1_FILES } from '../../stage1/contract.js';
import { findPod, FINISHED_STATES, isPodGone, isPodLocked, podPath, readPodAt, type PodInfo } from './state.js';

export const WAIT_POLL_MS = 100;

/** `status --wait` / `--wait-ready` ran out of time. */
export class WaitTimeoutError extends TspodError {}

export interface WaitOptions {
  /** Give up after this long (Infinity: wait forever). */
  timeoutMs: number;
  /** Wait until the pod is ready (`ready` exists) instead of until it has finished. */
  ready: boolean;
  /** Poll interval, 100 ms unless a test asks otherwise. */
  pollMs?: number;
  /** Aborts the wait (Ctrl-C handling in callers, tests). */
  signal?: AbortSignal;
}

function describeWait(ready: boolean): string {
  return ready ? 'to become ready' : 'to finish';
}

function formatMs(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}

/**
 * Waits until the pod has finished (or is ready), then returns its state as read at that moment.
 * A pod that finishes without becoming ready fails a ready-wait at once instead of timing out.
 */
export async function waitPod(dir: string, sys: Syscalls, uuid: string, options: WaitOptions): Promise<PodInfo | undefined> {
  const started = Date.now();
  const pollMs = options.pollMs ?? WAIT_POLL_MS;
  for (;;) {
    options.signal?.throwIfAborted();
    const location = findPod(dir, uuid);
    if (location === undefined) {
      if (options.ready) throw new TspodError(`wait for pod ${uuid} ${describeWait(true)}: the pod was removed`);
      return undefined;
    }
    let info: PodInfo | undefined;
    try {
      if (options.ready) {
        // The cheap check first: one stat per poll until the marker appears.
        if (fs.existsSync(path.join(podPath(dir, location, uuid), STAGE1_FILES.ready))) return readPodAt(dir, sys, location, uuid);
      }
      info = readPodAt(dir, sys, location, uuid);
    } catch (err) {
      if (!isPodGone(err)) throw err;
    }
    if (info !== undefined) {
      const finished = FINISHED_STATES.includes(info.state) || (info.state === 'embryo' && !isLockedEmbryo(sys, info));
      if (options.ready) {
        if (info.ready) return info;
        if (finished) throw new TspodError(`wait for pod ${uuid} ${describeWait(true)}: the pod is ${info.state} and never became ready`);
      } else if (finished) {
        return info;
      }
    }
    const elapsed = Date.now() - started;
    if (elapsed >= options.timeoutMs) {
      throw new WaitTimeoutError(`wait for pod ${uuid} ${describeWait(options.ready)}: timed out after ${formatMs(options.timeoutMs)} (state: ${info?.state ?? 'moving'})`, {
        suggestions: [`tspod status ${uuid}`],
      });
    }
    await sleep(Math.min(pollMs, options.timeoutMs - elapsed), undefined, { signal: options.signal });
  }
}

/** An embryo nobody holds was abandoned by a crashed creator: it will never run. */
function isLockedEmbryo(sys: Syscalls, info: PodInfo): boolean {
  try {
    return isPodLocked(sys, info.path);
  } catch (err) {
    if (isPodGone(err)) return true; // moved on: it is alive
    throw err;
  }
}
