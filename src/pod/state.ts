// Pod state on disk, rkt's model (rkt-notes.md §2.5): a pod is a directory
// `$dir/pods/<state-dir>/<uuid>`, and its state is (that directory, whether its flock is held).
// This module owns the one enumeration of states, the transition table, the transitions
// themselves (flock + rename(2) + fsync of both parent directories) and `readPod`, which derives a
// pod's state and times from the files stage0 and stage1 leave in its directory
// (stage1/contract.ts) without any daemon, the way rkt's refreshState does.
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import type { PodManifest } from '../appc/types.js';
import { NotFoundError, TspodError } from '../errors.js';
import { FileLock, type LockMode } from '../store/lock.js';
import { LOCK_EX, LOCK_NB, LOCK_SH, RENAME_NOREPLACE, SyscallError, type Syscalls } from '../sys/types.js';
import { POD_FILES, STAGE1_FILES } from '../../stage1/contract.js';
import { newPodUuid, parsePodUuid, POD_DIRS, type PodDir } from './uuid.js';

export { POD_DIRS, type PodDir } from './uuid.js';

/** Every state a pod can be in, with rkt's spellings (api/v1 and `rkt list` print these). */
export const POD_STATES = [
  'embryo',
  'preparing',
  'aborted prepare',
  'prepared',
  'running',
  'exited',
  'exited garbage',
  'exited deleting',
  'garbage',
  'deleting',
] as const;
export type PodState = (typeof POD_STATES)[number];

/**
 * Where each state lives: its directory and whether the pod directory's flock is held
 * (`undefined`: the lock does not matter there). `stateOf` is derived from this table.
 */
export const STATE_PLACES: Readonly<Record<PodState, { dir: PodDir; locked?: boolean }>> = {
  embryo: { dir: 'embryo' },
  preparing: { dir: 'prepare', locked: true },
  'aborted prepare': { dir: 'prepare', locked: false },
  prepared: { dir: 'prepared' },
  running: { dir: 'run', locked: true },
  exited: { dir: 'run', locked: false },
  'exited garbage': { dir: 'exited-garbage', locked: false },
  'exited deleting': { dir: 'exited-garbage', locked: true },
  garbage: { dir: 'garbage', locked: false },
  deleting: { dir: 'garbage', locked: true },
};

/**
 * The transitions: which directories a pod may move from, where it goes, and what happens to the
 * lock. Each is one rename(2) made while holding the pod's exclusive flock.
 */
export const POD_TRANSITIONS = {
  /** `prepare`: the creator keeps its exclusive lock while it writes the manifest and trees. */
  beginPrepare: { from: ['embryo'], to: 'prepare', lock: 'kept' },
  /** The prepare finished: the lock is released, the pod waits for `run-prepared`. */
  finishPrepare: { from: ['prepare'], to: 'prepared', lock: 'released' },
  /** `run`/`run-prepared`: the lock is kept and inherited by stage1 for the pod's lifetime. */
  beginRun: { from: ['embryo', 'prepare', 'prepared'], to: 'run', lock: 'kept' },
  /** gc (or rm) of a pod whose stage1 is gone (lock free): the grace period starts now (ctime). */
  markExited: { from: ['run'], to: 'exited-garbage', lock: 'released' },
  /** Failed, aborted or expired prepares, and pods removed before they ran. */
  moveToGarbage: { from: ['embryo', 'prepare', 'prepared'], to: 'garbage', lock: 'released' },
} as const satisfies Record<string, { from: readonly PodDir[]; to: PodDir; lock: 'kept' | 'released' }>;
export type PodTransition = keyof typeof POD_TRANSITIONS;

/** States that come after the pod ran (or will never run): `status` prints `exited=true`. */
export const FINISHED_STATES: readonly PodState[] = ['exited', 'exited garbage', 'exited deleting', 'garbage', 'deleting', 'aborted prepare'];

/** The state of a pod found in `location` with its lock held or not. */
export function stateOf(location: PodDir, locked: boolean): PodState {
  for (const state of POD_STATES) {
    const place = STATE_PLACES[state];
    if (place.dir === location && (place.locked === undefined || place.locked === locked)) return state;
  }
  throw new Error(`no pod state for ${location} (locked: ${locked})`);
}

/** Whether the lock decides the state of pods in this directory (else readers need not probe it). */
export function isLockSignificant(location: PodDir): boolean {
  return POD_STATES.some((s) => STATE_PLACES[s].dir === location && STATE_PLACES[s].locked !== undefined);
}

/** A pod's state does not allow the operation (running pod removed, prepared pod started twice). */
export class PodStateError extends TspodError {}

/** A pod directory as seen by the process that is moving it. */
export interface Pod {
  readonly uuid: string;
  location: PodDir;
  /** The exclusive flock on the pod directory when this process holds it (it follows renames). */
  lock: FileLock | undefined;
}

export function podsDir(dir: string): string {
  return path.join(dir, 'pods');
}

export function podPath(dir: string, location: PodDir, uuid: string): string {
  return path.join(dir, 'pods', location, uuid);
}

/** Creates `$dir/pods/<state-dir>` for every state (mode 0750, as rkt's tmpfiles.d minus the group). */
export function ensurePodDirs(dir: string): void {
  for (const location of POD_DIRS) fs.mkdirSync(path.join(dir, 'pods', location), { recursive: true, mode: 0o750 });
}

/** The directory a pod is in now, or undefined when there is no such pod. */
export function findPod(dir: string, uuid: string): PodDir | undefined {
  for (const location of POD_DIRS) {
    if (fs.existsSync(podPath(dir, location, uuid))) return location;
  }
  return undefined;
}

function isErrno(err: unknown, ...codes: string[]): boolean {
  const code = err instanceof SyscallError ? err.code : (err as NodeJS.ErrnoException | undefined)?.code;
  return code !== undefined && codes.includes(code);
}

/** Whether an error means the pod directory went away (another process moved or removed it). */
export function isPodGone(err: unknown): boolean {
  return isErrno(err, 'ENOENT') || err instanceof PodGoneError;
}

class PodGoneError extends NotFoundError {}

/**
 * Tries to flock a pod directory without waiting. Unlike store/lock.ts's tryLock it never creates
 * anything: a directory that has gone away throws (ENOENT) instead of leaving a stray lock file.
 * Returns undefined when another process holds a conflicting lock.
 */
export function tryLockPodDir(sys: Syscalls, podDir: string, mode: LockMode): FileLock | undefined {
  const fd = fs.openSync(podDir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
  try {
    sys.flock(fd, (mode === 'exclusive' ? LOCK_EX : LOCK_SH) | LOCK_NB);
  } catch (err) {
    fs.closeSync(fd);
    if (isErrno(err, 'EWOULDBLOCK', 'EAGAIN')) return undefined;
    throw err;
  }
  return new FileLock(sys, podDir, fd, mode);
}

/**
 * Whether some process holds an exclusive lock on the pod directory: a shared non-blocking probe,
 * as rkt's refreshState (a reader holding a shared lock does not count, so concurrent `list`s do
 * not see each other's probes).
 */
export function isPodLocked(sys: Syscalls, podDir: string): boolean {
  return probePodLock(sys, podDir, false).locked;
}

/**
 * The lock probe, and (when asked) the directory's identity read from the probe's fd: inode number
 * and ctime, which a rename or any change of its entries moves on. `list` keys its cache on it.
 */
export function probePodLock(sys: Syscalls, podDir: string, withIdentity = true): { locked: boolean; identity: string } {
  const fd = fs.openSync(podDir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
  try {
    let identity = '';
    if (withIdentity) {
      const st = fs.fstatSync(fd);
      identity = `${st.ino}:${st.ctimeMs}`;
    }
    try {
      // No LOCK_UN: close(2) releases the probe's lock (one system call less per pod in `list`).
      sys.flock(fd, LOCK_SH | LOCK_NB);
      return { locked: false, identity };
    } catch (err) {
      if (isErrno(err, 'EWOULDBLOCK', 'EAGAIN')) return { locked: true, identity };
      throw err;
    }
  } finally {
    fs.closeSync(fd);
  }
}

/** rename(2) of a pod directory between state directories, durable: both parents are fsynced. */
function movePodDir(dir: string, sys: Syscalls, uuid: string, from: PodDir, to: PodDir): void {
  const source = podPath(dir, from, uuid);
  const target = podPath(dir, to, uuid);
  try {
    // RENAME_NOREPLACE: a UUID is in one state directory at a time; never merge two pods.
    sys.renameat2(source, target, RENAME_NOREPLACE);
  } catch (err) {
    if (isErrno(err, 'ENOENT')) throw new PodGoneError(`pod ${uuid}: no longer in ${from} (moved or removed by another process)`, { cause: err });
    throw err;
  }
  sys.fsyncPath(path.dirname(target));
  sys.fsyncPath(path.dirname(source));
}

function checkTransition(pod: Pod, transition: PodTransition): void {
  const { from } = POD_TRANSITIONS[transition];
  if (!(from as readonly PodDir[]).includes(pod.location)) {
    throw new PodStateError(`pod ${pod.uuid}: cannot ${transition} from ${pod.location} (allowed from ${from.join(', ')})`);
  }
  if (pod.lock === undefined) throw new PodStateError(`pod ${pod.uuid}: ${transition} needs the pod's lock`);
}

/**
 * Applies a transition to a pod whose lock this process holds. `keepLock` keeps a lock the table
 * would release (rm and gc hold it from the move until the directory is deleted).
 */
export function applyTransition(dir: string, sys: Syscalls, pod: Pod, transition: PodTransition, options: { keepLock?: boolean } = {}): Pod {
  checkTransition(pod, transition);
  const { to, lock } = POD_TRANSITIONS[transition];
  movePodDir(dir, sys, pod.uuid, pod.location, to);
  pod.location = to;
  if (lock === 'released' && options.keepLock !== true) {
    pod.lock?.release();
    pod.lock = undefined;
  }
  return pod;
}

/**
 * Makes `embryo/<uuid>` with `pod-created` (its mtime is the creation time) and returns it with an
 * exclusive lock held. The directory is built under a hidden name and renamed into place already
 * locked, so an unlocked embryo is always an abandoned one.
 */
export function createEmbryo(dir: string, sys: Syscalls, uuid: string = newPodUuid()): Pod {
  const id = parsePodUuid(uuid);
  ensurePodDirs(dir);
  const existing = findPod(dir, id);
  if (existing !== undefined) throw new PodStateError(`pod ${id}: already exists (in ${existing})`);
  const embryoDir = path.join(dir, 'pods', 'embryo');
  const tmp = fs.mkdtempSync(path.join(embryoDir, `.${id}.tmp-`));
  let lock: FileLock | undefined;
  try {
    fs.chmodSync(tmp, 0o750);
    lock = tryLockPodDir(sys, tmp, 'exclusive');
    if (lock === undefined) throw new PodStateError(`pod ${id}: embryo directory locked by another process`);
    const fd = fs.openSync(path.join(tmp, POD_FILES.created), fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o640);
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    sys.fsyncPath(tmp);
    sys.renameat2(tmp, path.join(embryoDir, id), RENAME_NOREPLACE);
    sys.fsyncPath(embryoDir);
  } catch (err) {
    lock?.release();
    fs.rmSync(tmp, { recursive: true, force: true });
    if (isErrno(err, 'EEXIST', 'ENOTEMPTY')) throw new PodStateError(`pod ${id}: already exists`, { cause: err });
    throw err;
  }
  return { uuid: id, location: 'embryo', lock };
}

/** embryo -> prepare (locked: "preparing"). */
export function beginPrepare(dir: string, sys: Syscalls, pod: Pod): Pod {
  return applyTransition(dir, sys, pod, 'beginPrepare');
}

/** prepare -> prepared, releasing the lock. */
export function finishPrepare(dir: string, sys: Syscalls, pod: Pod): Pod {
  return applyTransition(dir, sys, pod, 'finishPrepare');
}

/**
 * -> run, returning the pod with its exclusive lock held: stage1 inherits `pod.lock.descriptor`
 * (stage1/contract.ts ENV_LOCK_FD), so the pod is "running" exactly as long as that lock lives.
 * Given a Pod this process holds (embryo or prepare), it moves it. Given a UUID, it starts a
 * prepared pod (`run-prepared`): of two processes starting the same pod exactly one wins; the
 * other gets a PodStateError, either because the lock is held or because the rename finds the
 * directory gone (ENOENT).
 */
export async function beginRun(dir: string, sys: Syscalls, podOrUuid: Pod | string, options: { lockWaitMs?: number } = {}): Promise<Pod> {
  if (typeof podOrUuid !== 'string') return applyTransition(dir, sys, podOrUuid, 'beginRun');
  const uuid = parsePodUuid(podOrUuid);
  const preparedDir = podPath(dir, 'prepared', uuid);
  const notPrepared = (cause?: unknown): TspodError => {
    const where = findPod(dir, uuid);
    if (where === undefined) return new NotFoundError(`pod ${uuid}: no such pod`, { cause, suggestions: ['tspod list'] });
    return new PodStateError(`pod ${uuid}: cannot run, it is not prepared (in ${where}${where === 'run' ? ': started by another process' : ''})`, {
      cause,
    });
  };
  // Readers (`list`, `status`) hold a shared lock for microseconds: wait them out briefly. A
  // competing run-prepared holds it for the pod's lifetime, so the wait ends with "in use".
  const deadline = Date.now() + (options.lockWaitMs ?? 1000);
  let lock: FileLock | undefined;
  for (;;) {
    try {
      lock = tryLockPodDir(sys, preparedDir, 'exclusive');
    } catch (err) {
      if (isErrno(err, 'ENOENT')) throw notPrepared(err);
      throw err;
    }
    if (lock !== undefined) break;
    if (Date.now() > deadline) throw new PodStateError(`pod ${uuid}: locked by another process (being started or removed)`);
    await sleep(10);
  }
  const pod: Pod = { uuid, location: 'prepared', lock };
  try {
    return applyTransition(dir, sys, pod, 'beginRun');
  } catch (err) {
    lock.release();
    if (isPodGone(err)) throw notPrepared(err);
    throw err;
  }
}

/**
 * run (unlocked: "exited") -> exited-garbage. Refuses a running pod (lock held). The rename sets
 * the directory's ctime, from which gc counts the grace period.
 */
export function markExited(dir: string, sys: Syscalls, uuid: string): Pod {
  const runDir = podPath(dir, 'run', uuid);
  const lock = tryLockPodDir(sys, runDir, 'exclusive');
  if (lock === undefined) {
    throw new PodStateError(`pod ${uuid}: is running`, { suggestions: [`tspod stop ${uuid}`] });
  }
  const pod: Pod = { uuid, location: 'run', lock };
  try {
    return applyTransition(dir, sys, pod, 'markExited');
  } finally {
    lock.release();
  }
}

/** rkt's name for markExited. */
export const moveToExitedGarbage = markExited;

/**
 * embryo | prepare | prepared -> garbage (failed, aborted or expired prepares; `rm` of a pod that
 * never ran). Given a Pod this process holds, it moves it and releases the lock; given a UUID it
 * takes the lock first and refuses a pod another process is working on.
 */
export function moveToGarbage(dir: string, sys: Syscalls, podOrUuid: Pod | string): Pod {
  if (typeof podOrUuid !== 'string') return applyTransition(dir, sys, podOrUuid, 'moveToGarbage');
  const uuid = podOrUuid;
  const location = POD_TRANSITIONS.moveToGarbage.from.find((d) => fs.existsSync(podPath(dir, d, uuid)));
  if (location === undefined) throw new PodGoneError(`pod ${uuid}: not in ${POD_TRANSITIONS.moveToGarbage.from.join(', ')}`);
  const lock = tryLockPodDir(sys, podPath(dir, location, uuid), 'exclusive');
  if (lock === undefined) throw new PodStateError(`pod ${uuid}: in use by another process (${location === 'prepared' ? 'being started' : 'being prepared'})`);
  return applyTransition(dir, sys, { uuid, location, lock }, 'moveToGarbage');
}

// -------------------------------------------------------------------------------------------------
// Reading a pod's state

export const APP_STATES = ['unknown', 'created', 'running', 'exited'] as const;
export type AppState = (typeof APP_STATES)[number];

export interface AppInfo {
  name: string;
  imageId: string;
  imageName: string | undefined;
  /** The image's `version` label, when the manifest names one. */
  imageVersion: string | undefined;
  state: AppState;
  /** From `status/<app>` (stage1 writes 128+N for a signal). */
  exitCode: number | undefined;
  createdAt: Date | undefined;
  startedAt: Date | undefined;
  finishedAt: Date | undefined;
}

export interface PodInfo {
  uuid: string;
  state: PodState;
  location: PodDir;
  path: string;
  /** The pod manifest (`pod`), unvalidated; undefined before prepare wrote it or when unreadable. */
  manifest: PodManifest | undefined;
  /** Why the manifest could not be read, when it exists but does not parse. */
  manifestError: string | undefined;
  apps: AppInfo[];
  createdAt: Date | undefined;
  startedAt: Date | undefined;
  pid: number | undefined;
  ready: boolean;
  /** When gc marked the pod (ctime of its exited-garbage directory). */
  gcMarkedAt: Date | undefined;
  userAnnotations: Record<string, string>;
  userLabels: Record<string, string>;
}

function statOrUndefined(file: string): fs.Stats | undefined {
  return fs.statSync(file, { throwIfNoEntry: false });
}

// One buffer for the small files a listing reads (manifests, status files, pid): open + read +
// close, no second read to find EOF (`list` reads thousands of them; rkt-notes.md §2.7).
let readBuffer = Buffer.allocUnsafe(64 * 1024);

/** A small file's content (and its mtime when asked), or undefined when it does not exist. */
function readSmallFile(file: string, withMtime: false): string | undefined;
function readSmallFile(file: string, withMtime: true): { text: string; mtime: Date } | undefined;
function readSmallFile(file: string, withMtime: boolean): string | { text: string; mtime: Date } | undefined {
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY);
  } catch (err) {
    if (isErrno(err, 'ENOENT', 'ENOTDIR')) return undefined;
    throw err;
  }
  try {
    let mtime: Date | undefined;
    if (withMtime) mtime = fs.fstatSync(fd).mtime;
    let length = 0;
    for (;;) {
      const n = fs.readSync(fd, readBuffer, length, readBuffer.length - length, null);
      length += n;
      if (n === 0 || length < readBuffer.length) break;
      // A large manifest: grow and keep reading.
      const bigger = Buffer.allocUnsafe(readBuffer.length * 2);
      readBuffer.copy(bigger, 0, 0, length);
      readBuffer = bigger;
    }
    const text = readBuffer.toString('utf8', 0, length);
    return withMtime ? { text, mtime: mtime! } : text;
  } finally {
    fs.closeSync(fd);
  }
}

function readOrUndefined(file: string): string | undefined {
  return readSmallFile(file, false);
}

function parseDecimal(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const trimmed = text.trim();
  return /^-?\d+$/.test(trimmed) ? Number(trimmed) : undefined;
}

export function appState(podState: PodState, exitCode: number | undefined, created: boolean, started: boolean): AppState {
  if (exitCode !== undefined) return 'exited';
  // A pod killed as a whole (kill -9 of its supervisor) leaves started apps with no status file.
  if (FINISHED_STATES.includes(podState) && (started || created)) return 'exited';
  if (started) return 'running';
  if (created) return 'created';
  return 'unknown';
}

export interface ReadPodOptions {
  /**
   * Also read what `status` shows beyond the api/v1 Pod: `pid`, readiness, gc-marked time
   * (default true; `list` passes false and saves a third of its system calls).
   */
  details?: boolean;
  /** The lock state when the caller has probed it already. */
  locked?: boolean;
}

/** Reads a pod found in `location`; throws ENOENT errors when the pod moves away meanwhile. */
export function readPodAt(dir: string, sys: Syscalls, location: PodDir, uuid: string, options: ReadPodOptions = {}): PodInfo {
  const details = options.details ?? true;
  const podDir = podPath(dir, location, uuid);
  const locked = options.locked ?? (isLockSignificant(location) ? isPodLocked(sys, podDir) : false);
  const state = stateOf(location, locked);

  let manifest: PodManifest | undefined;
  let manifestError: string | undefined;
  // String concatenation, not path.join: `list` builds ~10 paths per pod and the names are plain.
  const manifestText = readOrUndefined(`${podDir}/${POD_FILES.manifest}`);
  if (manifestText !== undefined) {
    try {
      manifest = JSON.parse(manifestText) as PodManifest;
    } catch (err) {
      manifestError = `${POD_FILES.manifest}: ${(err as Error).message}`;
    }
  }

  // Before the pod ran there is no status directory: skip the app files' lookups altogether.
  const statusDir = `${podDir}/${STAGE1_FILES.statusDir}`;
  const ran = location !== 'embryo' && location !== 'prepare' && location !== 'prepared';
  const hasStatus = ran || fs.existsSync(statusDir);
  const mtimeOf = (name: string): Date | undefined => (hasStatus ? statOrUndefined(`${statusDir}/${name}`)?.mtime : undefined);

  const apps: AppInfo[] = [];
  for (const app of Array.isArray(manifest?.apps) ? manifest.apps : []) {
    if (typeof app?.name !== 'string') continue;
    const createdAt = mtimeOf(`${app.name}.created`);
    const startedAt = mtimeOf(`${app.name}.started`);
    let exitCode: number | undefined;
    let finishedAt: Date | undefined;
    const status = hasStatus ? readSmallFile(`${statusDir}/${app.name}`, true) : undefined;
    if (status !== undefined) {
      exitCode = parseDecimal(status.text);
      if (exitCode !== undefined) finishedAt = status.mtime;
    }
    const labels = Array.isArray(app.image?.labels) ? app.image.labels : [];
    apps.push({
      name: app.name,
      imageId: typeof app.image?.id === 'string' ? app.image.id : '',
      imageName: typeof app.image?.name === 'string' ? app.image.name : undefined,
      imageVersion: labels.find((l) => l?.name === 'version')?.value,
      state: appState(state, exitCode, createdAt !== undefined, startedAt !== undefined),
      exitCode,
      createdAt,
      startedAt,
      finishedAt,
    });
  }

  const createdAt = statOrUndefined(`${podDir}/${POD_FILES.created}`)?.mtime;
  let startedAt: Date | undefined;
  let pid: number | undefined;
  let ready = false;
  let gcMarkedAt: Date | undefined;
  if (details || ran) {
    const pidFile = details ? readSmallFile(`${podDir}/${STAGE1_FILES.pid}`, true) : undefined;
    startedAt = details ? pidFile?.mtime : statOrUndefined(`${podDir}/${STAGE1_FILES.pid}`)?.mtime;
    pid = parseDecimal(pidFile?.text);
  }
  if (details) {
    ready = fs.existsSync(path.join(podDir, STAGE1_FILES.ready));
    const podStat = statOrUndefined(podDir);
    // Moved away while we read it: the files above may be missing; let the caller look again.
    if (podStat === undefined) throw new PodGoneError(`pod ${uuid}: moved while being read`);
    if (location === 'exited-garbage') gcMarkedAt = podStat.ctime;
  } else if (createdAt === undefined && !fs.existsSync(podDir)) {
    throw new PodGoneError(`pod ${uuid}: moved while being read`);
  }
  return {
    uuid,
    state,
    location,
    path: podDir,
    manifest,
    manifestError,
    apps,
    createdAt,
    startedAt,
    pid,
    ready,
    gcMarkedAt,
    userAnnotations: isStringMap(manifest?.userAnnotations) ? manifest.userAnnotations : {},
    userLabels: isStringMap(manifest?.userLabels) ? manifest.userLabels : {},
  };
}

function isStringMap(value: unknown): value is Record<string, string> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && Object.values(value).every((v) => typeof v === 'string');
}

/**
 * Reads one pod wherever it is. A pod that moves while being read (a transition, gc) is looked up
 * again; NotFoundError when it no longer exists.
 */
export function readPod(dir: string, sys: Syscalls, uuid: string, options: ReadPodOptions = {}): PodInfo {
  for (let attempt = 0; attempt < 5; attempt++) {
    const location = findPod(dir, uuid);
    if (location === undefined) break;
    try {
      return readPodAt(dir, sys, location, uuid, options);
    } catch (err) {
      if (!isPodGone(err)) throw err;
    }
  }
  throw new NotFoundError(`pod ${uuid}: no such pod`, { suggestions: ['tspod list'] });
}
