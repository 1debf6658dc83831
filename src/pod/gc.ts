// Pod garbage collection and removal, rkt's mark and sweep (rkt/gc.go, rkt-notes.md §2.5):
// mark moves exited pods (run, lock free) to exited-garbage, and aborted, abandoned or expired
// prepares to garbage; sweep deletes exited-garbage entries whose grace period has passed
// (counted from the ctime the rename into exited-garbage set) and every garbage entry. Each pod
// is deleted under its exclusive lock: `cleanup` (stage1's gc: unmounts, cgroups) runs first,
// then the directory is removed, never while a mount is left below it. Concurrent gc and rm are
// expected: a pod another process holds is skipped, one that vanished (ENOENT) is ignored.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import fs from 'node:fs';
import path from 'node:path';

import { STAGE1_ENTRYPOINTS } from '../../stage1/contract.js';
import { TspodError } from '../errors.js';
import type { FileLock } from '../store/lock.js';
import { mountsBelow } from '../sys/mountinfo.js';
import type { Syscalls } from '../sys/types.js';
import {
  applyTransition,
  findPod,
  isPodGone,
  podPath,
  PodStateError,
  readPodAt,
  stateOf,
  tryLockPodDir,
  type Pod,
  type PodDir,
  type PodInfo,
  type PodState,
  type PodTransition,
} from './state.js';
import { readStateDir } from './uuid.js';

/** Stage1's part of deleting a pod (unmount, cgroup removal); called with the pod locked. */
export type PodCleanup = (podDir: string, pod: PodInfo) => Promise<void>;

export const DEFAULT_GRACE_PERIOD_MS = 30 * 60_000;
export const DEFAULT_EXPIRE_PREPARED_MS = 24 * 3_600_000;
/** Hidden embryo directories (creation in progress) older than this are leftovers of a crash. */
const EMBRYO_LEFTOVER_MS = 3_600_000;

export interface PodGcOptions {
  /** Exited pods stay in exited-garbage this long after being marked (default 30 min). */
  gracePeriodMs?: number;
  /** Prepared pods not run for this long are moved to garbage (default 24 h). */
  expirePreparedMs?: number;
  /** Only mark: move pods to exited-garbage/garbage, delete nothing (records the finish time). */
  markOnly?: boolean;
  cleanup?: PodCleanup;
  /** Current time in ms (tests: ctime cannot be faked, so time is moved instead). */
  now?: () => number;
}

export interface PodGcReport {
  /** Exited pods moved to exited-garbage. */
  marked: string[];
  /** Aborted, abandoned or expired prepares moved to garbage. */
  discarded: string[];
  /** Pods deleted. */
  removed: string[];
  /** Pods left alone this time, and why (grace period, held by another process). */
  kept: { uuid: string; reason: string }[];
  /** Pods whose deletion failed (cleanup error, mount left behind); gc goes on with the others. */
  failed: { uuid: string; error: string }[];
}

export { mountsBelow };

// dist/src/pod/gc.js -> dist/stage1/gc.js
const STAGE1_GC = fileURLToPath(new URL(`../../stage1/${STAGE1_ENTRYPOINTS.gc}`, import.meta.url));

function run(command: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`${command} ${args.join(' ')}: exit ${code}: ${stderr.trim()}`))));
  });
}

/**
 * The cleanup `tspod gc`/`rm` use: stage1's gc entry point (stage1/contract.ts), run as a child
 * process, detaches every mount left below the pod directory and removes the pod's cgroups.
 * Then what the pod's networks left on the host (src/net/pod-network.ts): firewall rules, CNI
 * state, the veth and the leases, from the pod's `net-info.json`; normally the pod's exit path
 * removed them, but not after kill -9 of `tspod run`.
 */
export const stage1Cleanup: PodCleanup = async (podDir) => {
  await run(process.execPath, [STAGE1_GC, podDir]);
  // pods/<state>/<uuid> -> the data dir, whose networks/ holds the leases.
  const { removePodNetworks } = await import('../net/pod-network.js');
  const { libcSyscalls } = await import('../sys/libc.js');
  await removePodNetworks(podDir, { dataDir: path.resolve(podDir, '..', '..', '..'), sys: libcSyscalls });
};

/**
 * Deletes a pod directory. Refuses when a mount is still below it: a recursive delete would
 * descend into a bind-mounted volume and delete the host's files.
 */
export function removePodDir(podDir: string): void {
  const left = mountsBelow(podDir);
  if (left.length > 0) throw new TspodError(`remove pod ${podDir}: still mounted: ${left.join(', ')}`);
  fs.rmSync(podDir, { recursive: true, force: true });
}

// -------------------------------------------------------------------------------------------------
// Deleting one locked pod

/** Whether the directory at `podDir` is still the one our lock's fd refers to. */
function isSameDir(lock: FileLock, podDir: string): boolean {
  const held = fs.fstatSync(lock.descriptor);
  const now = fs.statSync(podDir, { throwIfNoEntry: false });
  return now !== undefined && now.ino === held.ino && now.dev === held.dev;
}

/** Cleanup + removal of a pod this process has locked exclusively; releases the lock. */
async function deleteLocked(dir: string, sys: Syscalls, pod: Pod, cleanup: PodCleanup): Promise<void> {
  const lock = pod.lock!;
  try {
    const podDir = podPath(dir, pod.location, pod.uuid);
    // Another gc may have deleted it between our readdir and our lock: nothing left to do.
    if (!isSameDir(lock, podDir)) return;
    const info = readPodAt(dir, sys, pod.location, pod.uuid);
    await cleanup(podDir, info);
    removePodDir(podDir);
    sys.fsyncPath(path.dirname(podDir));
  } finally {
    lock.release();
    pod.lock = undefined;
  }
}

/** Takes a pod's exclusive lock without waiting: the Pod, 'held' (another process), or 'gone'. */
function lockPod(dir: string, sys: Syscalls, location: PodDir, uuid: string): Pod | 'held' | 'gone' {
  try {
    const lock = tryLockPodDir(sys, podPath(dir, location, uuid), 'exclusive');
    return lock === undefined ? 'held' : { uuid, location, lock };
  } catch (err) {
    if (isPodGone(err)) return 'gone';
    throw err;
  }
}

/** Moves a locked pod; false when it vanished meanwhile. The lock is released unless `keepLock`. */
function moveLocked(dir: string, sys: Syscalls, pod: Pod, transition: PodTransition, keepLock = false): boolean {
  try {
    applyTransition(dir, sys, pod, transition, { keepLock });
    return true;
  } catch (err) {
    pod.lock?.release();
    pod.lock = undefined;
    if (isPodGone(err)) return false;
    throw err;
  }
}

// -------------------------------------------------------------------------------------------------
// gc

/** `tspod gc`: mark, then (unless markOnly) sweep. */
export async function gcPods(dir: string, sys: Syscalls, options: PodGcOptions = {}): Promise<PodGcReport> {
  const now = options.now ?? Date.now;
  const gracePeriodMs = options.gracePeriodMs ?? DEFAULT_GRACE_PERIOD_MS;
  const expirePreparedMs = options.expirePreparedMs ?? DEFAULT_EXPIRE_PREPARED_MS;
  const cleanup = options.cleanup ?? stage1Cleanup;
  const report: PodGcReport = { marked: [], discarded: [], removed: [], kept: [], failed: [] };

  // Mark: exited pods (run, lock free) -> exited-garbage; the grace period starts with this rename.
  for (const uuid of readStateDir(dir, 'run')) {
    const pod = lockPod(dir, sys, 'run', uuid);
    if (pod === 'held' || pod === 'gone') continue; // running, or moved on
    if (moveLocked(dir, sys, pod, 'markExited')) report.marked.push(uuid);
  }

  // Aborted prepares (prepare, lock free) and abandoned embryos -> garbage.
  for (const location of ['embryo', 'prepare'] as const) {
    for (const uuid of readStateDir(dir, location)) {
      const pod = lockPod(dir, sys, location, uuid);
      if (pod === 'held' || pod === 'gone') continue; // being created or prepared
      if (moveLocked(dir, sys, pod, 'moveToGarbage')) report.discarded.push(uuid);
    }
  }
  removeEmbryoLeftovers(dir, sys, now());

  // Expired prepared pods -> garbage: ctime of the rename into prepared, as rkt.
  for (const uuid of readStateDir(dir, 'prepared')) {
    const stat = fs.statSync(podPath(dir, 'prepared', uuid), { throwIfNoEntry: false });
    if (stat === undefined || now() - stat.ctimeMs < expirePreparedMs) continue;
    const pod = lockPod(dir, sys, 'prepared', uuid);
    if (pod === 'held') {
      report.kept.push({ uuid, reason: 'being started' });
      continue;
    }
    if (pod === 'gone') continue;
    if (moveLocked(dir, sys, pod, 'moveToGarbage')) report.discarded.push(uuid);
  }

  if (options.markOnly === true) return report;

  // Sweep.
  for (const location of ['exited-garbage', 'garbage'] as const) {
    for (const uuid of readStateDir(dir, location)) {
      if (location === 'exited-garbage') {
        const stat = fs.statSync(podPath(dir, location, uuid), { throwIfNoEntry: false });
        if (stat === undefined) continue;
        const age = now() - stat.ctimeMs;
        if (age < gracePeriodMs) {
          report.kept.push({ uuid, reason: `grace period: ${Math.ceil((gracePeriodMs - age) / 1000)}s left` });
          continue;
        }
      }
      const pod = lockPod(dir, sys, location, uuid);
      if (pod === 'gone') continue;
      if (pod === 'held') {
        report.kept.push({ uuid, reason: 'being deleted by another process' });
        continue;
      }
      try {
        await deleteLocked(dir, sys, pod, cleanup);
        report.removed.push(uuid);
      } catch (err) {
        if (isPodGone(err)) continue;
        report.failed.push({ uuid, error: err instanceof Error ? err.message : String(err) });
      }
    }
  }
  // Pod networks: leases whose pod is gone altogether (a power loss, a pod directory removed by
  // hand); a pod's own leases were released with it above (src/net/ipam.ts).
  const { sweepStaleLeases } = await import('../net/ipam.js');
  sweepStaleLeases(dir, (uuid) => findPod(dir, uuid) !== undefined);
  return report;
}

/** Hidden `embryo/.<uuid>.tmp-*` directories of creations that crashed before the rename. */
function removeEmbryoLeftovers(dir: string, sys: Syscalls, nowMs: number): void {
  const embryoDir = path.join(dir, 'pods', 'embryo');
  let names: string[];
  try {
    names = fs.readdirSync(embryoDir).filter((n) => n.startsWith('.') && n.includes('.tmp-'));
  } catch (err) {
    if (isPodGone(err)) return;
    throw err;
  }
  for (const name of names) {
    const leftover = path.join(embryoDir, name);
    const stat = fs.statSync(leftover, { throwIfNoEntry: false });
    if (stat === undefined || nowMs - stat.mtimeMs < EMBRYO_LEFTOVER_MS) continue;
    try {
      const lock = tryLockPodDir(sys, leftover, 'exclusive');
      if (lock === undefined) continue;
      try {
        removePodDir(leftover);
      } finally {
        lock.release();
      }
    } catch (err) {
      if (!isPodGone(err)) throw err;
    }
  }
}

// -------------------------------------------------------------------------------------------------
// rm

export interface PodRemoval {
  uuid: string;
  /** The state the pod was in when removal began. */
  state: PodState;
}

const IN_USE: Partial<Record<PodDir, string>> = {
  embryo: 'being created',
  prepare: 'being prepared',
  prepared: 'being started',
  'exited-garbage': 'being deleted',
  garbage: 'being deleted',
};

/**
 * `tspod rm`: deletes one pod now, whatever the grace period. Refuses a running pod (use
 * `tspod stop` first) and any pod another process holds. The lock is held from the first move
 * until the directory is gone, so a concurrent gc skips it.
 */
export async function removePod(dir: string, sys: Syscalls, uuid: string, options: { cleanup?: PodCleanup } = {}): Promise<PodRemoval> {
  const cleanup = options.cleanup ?? stage1Cleanup;
  const location = findPod(dir, uuid);
  if (location === undefined) throw new PodStateError(`remove pod ${uuid}: no such pod`, { suggestions: ['tspod list'] });
  const pod = lockPod(dir, sys, location, uuid);
  if (pod === 'gone') throw new PodStateError(`remove pod ${uuid}: moved or removed by another process meanwhile`, { suggestions: ['tspod list'] });
  if (pod === 'held') {
    if (location === 'run') {
      throw new PodStateError(`remove pod ${uuid}: the pod is running`, { suggestions: [`tspod stop ${uuid}`, `tspod rm ${uuid}`] });
    }
    throw new PodStateError(`remove pod ${uuid}: ${IN_USE[location] ?? 'in use'} by another process`);
  }
  const state = stateOf(location, false);
  const transition: PodTransition | undefined = location === 'run' ? 'markExited' : location === 'exited-garbage' || location === 'garbage' ? undefined : 'moveToGarbage';
  if (transition !== undefined && !moveLocked(dir, sys, pod, transition, true)) {
    throw new PodStateError(`remove pod ${uuid}: moved or removed by another process meanwhile`);
  }
  await deleteLocked(dir, sys, pod, cleanup);
  return { uuid, state };
}
