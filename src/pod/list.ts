// Listing pods and their JSON form. `listPods` walks the six state directories and reads every
// pod with `readPodAt` (one shared trylock probe where the lock matters, a few stats): no daemon,
// no manifest validation. A finished pod (run, exited-garbage or garbage with its lock free) has no
// writer left, so what was read from it once is kept in `pods/.list-cache.json` (derived data,
// rebuilt when missing or unreadable; keyed by UUID and checked against the directory's inode and
// ctime, so a removed and re-created UUID or a move to another state directory is read again) and
// later listings only probe its lock: ~4 system calls per pod instead of ~20, which is what makes
// 1,000 pods list within the CLI's start-up budget (bench/pod-list). `toApiPod` gives rkt's api/v1
// Pod shape (schemas/pod-list.json), with one deliberate difference: times are RFC 3339 strings
// in UTC with millisecond precision (as in every other tspod document) instead of rkt's Unix
// integers. Absent times are omitted, not null.
import fs from 'node:fs';
import path from 'node:path';

import { apiNetworks, readNetInfo } from '../net/record.js';
import type { Syscalls } from '../sys/types.js';
import {
  appState,
  FINISHED_STATES,
  isPodGone,
  podPath,
  probePodLock,
  readPodAt,
  stateOf,
  type AppInfo,
  type AppState,
  type PodDir,
  type PodInfo,
  type PodState,
} from './state.js';
import { POD_DIRS, readStateDir } from './uuid.js';

/** api/v1 App, as `tspod list --json` prints it. */
export interface ApiApp {
  name: string;
  state: AppState;
  exit_code?: number;
  image_id: string;
  /** tspod extension: the image name from the pod manifest (rkt's table showed it, its JSON did not). */
  image_name?: string;
  created_at?: string;
  started_at?: string;
  finished_at?: string;
}

/** api/v1 NetInfo, from the pod's `net-info.json` (src/net/record.ts) while its networks are up. */
export interface ApiNetwork {
  net_name: string;
  iface_name: string;
  ip: string;
}

/** api/v1 Pod: `name` is the UUID, as in rkt. */
export interface ApiPod {
  name: string;
  state: PodState;
  networks: ApiNetwork[];
  apps: ApiApp[];
  created_at?: string;
  started_at?: string;
  user_annotations: Record<string, string>;
  user_labels: Record<string, string>;
}

/** `tspod status --json`: the api/v1 Pod plus what rkt's k=v status printed beyond it. */
export interface ApiPodStatus extends ApiPod {
  pid?: number;
  /** Whether the pod has finished (ran and exited, or will never run). */
  exited: boolean;
  /** Whether stage1 reported every app started (`ready`). */
  ready: boolean;
  gc_marked_at?: string;
}

export function toApiApp(app: AppInfo): ApiApp {
  // Built field by field (absent times left out): this runs for every app of every listed pod.
  const api: ApiApp = { name: app.name, state: app.state, image_id: app.imageId };
  if (app.exitCode !== undefined) api.exit_code = app.exitCode;
  if (app.imageName !== undefined) api.image_name = app.imageName;
  if (app.createdAt !== undefined) api.created_at = app.createdAt.toISOString();
  if (app.startedAt !== undefined) api.started_at = app.startedAt.toISOString();
  if (app.finishedAt !== undefined) api.finished_at = app.finishedAt.toISOString();
  return api;
}

export function toApiPod(pod: PodInfo): ApiPod {
  const api: Partial<ApiPod> = { name: pod.uuid, state: pod.state, networks: podNetworks(pod), apps: pod.apps.map(toApiApp) };
  if (pod.createdAt !== undefined) api.created_at = pod.createdAt.toISOString();
  if (pod.startedAt !== undefined) api.started_at = pod.startedAt.toISOString();
  api.user_annotations = pod.userAnnotations;
  api.user_labels = pod.userLabels;
  return api as ApiPod;
}

/**
 * The pod's networks while they are up: only pods in `run/` can have them (the exit path takes
 * them down; after a kill -9 they stay up until gc), so other pods cost no read.
 */
export function podNetworks(pod: PodInfo): ApiNetwork[] {
  return pod.location === 'run' ? apiNetworks(readNetInfo(pod.path)) : [];
}

export function isPodFinished(pod: PodInfo): boolean {
  return FINISHED_STATES.includes(pod.state);
}

export function toApiPodStatus(pod: PodInfo): ApiPodStatus {
  const api: ApiPodStatus = { ...toApiPod(pod), exited: isPodFinished(pod), ready: pod.ready };
  if (pod.pid !== undefined) api.pid = pod.pid;
  if (pod.gcMarkedAt !== undefined) api.gc_marked_at = pod.gcMarkedAt.toISOString();
  return api;
}

// -------------------------------------------------------------------------------------------------
// The listing cache of finished pods

const CACHE_FILE = '.list-cache.json';
const CACHE_VERSION = 2;
/** Directories whose unlocked pods are finished for good (no stage1, nothing writes there). */
const CACHEABLE: ReadonlySet<PodDir> = new Set(['run', 'exited-garbage', 'garbage']);

interface CachedApp {
  name: string;
  imageId: string;
  imageName?: string;
  imageVersion?: string;
  exitCode?: number;
  createdAt?: number;
  startedAt?: number;
  finishedAt?: number;
}

interface CachedPod {
  /** `<inode>:<ctime ms>` of the pod directory when it was read. */
  id: string;
  createdAt?: number;
  startedAt?: number;
  manifestError?: string;
  apps: CachedApp[];
  userAnnotations: Record<string, string>;
  userLabels: Record<string, string>;
}

const ms = (date: Date | undefined): number | undefined => date?.getTime();
const date = (value: number | undefined): Date | undefined => (value === undefined ? undefined : new Date(value));

function loadCache(file: string): Map<string, CachedPod> {
  try {
    const doc = JSON.parse(fs.readFileSync(file, 'utf8')) as { version?: number; pods?: Record<string, CachedPod> };
    if (doc.version === CACHE_VERSION && typeof doc.pods === 'object' && doc.pods !== null) return new Map(Object.entries(doc.pods));
  } catch {
    // Missing, torn or foreign: it is only a cache, rebuild it.
  }
  return new Map();
}

/** Best effort, not fsynced: a lost or torn cache is rebuilt by the next listing. */
function saveCache(file: string, pods: Map<string, CachedPod>): void {
  const tmp = `${path.dirname(file)}/.list-cache.json.tmp-${process.pid}`;
  try {
    fs.writeFileSync(tmp, JSON.stringify({ version: CACHE_VERSION, pods: Object.fromEntries(pods) }), { mode: 0o640 });
    fs.renameSync(tmp, file);
  } catch {
    // Read-only data dir or a user without write access: list without the cache.
    fs.rmSync(tmp, { force: true });
  }
}

function toCached(info: PodInfo, id: string): CachedPod {
  return {
    id,
    createdAt: ms(info.createdAt),
    startedAt: ms(info.startedAt),
    manifestError: info.manifestError,
    apps: info.apps.map((a) => ({
      name: a.name,
      imageId: a.imageId,
      imageName: a.imageName,
      imageVersion: a.imageVersion,
      exitCode: a.exitCode,
      createdAt: ms(a.createdAt),
      startedAt: ms(a.startedAt),
      finishedAt: ms(a.finishedAt),
    })),
    userAnnotations: info.userAnnotations,
    userLabels: info.userLabels,
  };
}

function fromCached(c: CachedPod, dir: string, location: PodDir, uuid: string, state: PodState): PodInfo {
  return {
    uuid,
    state,
    location,
    path: podPath(dir, location, uuid),
    manifest: undefined,
    manifestError: c.manifestError,
    apps: c.apps.map((a) => ({
      name: a.name,
      imageId: a.imageId,
      imageName: a.imageName,
      imageVersion: a.imageVersion,
      state: appState(state, a.exitCode, a.createdAt !== undefined, a.startedAt !== undefined),
      exitCode: a.exitCode,
      createdAt: date(a.createdAt),
      startedAt: date(a.startedAt),
      finishedAt: date(a.finishedAt),
    })),
    createdAt: date(c.createdAt),
    startedAt: date(c.startedAt),
    pid: undefined,
    ready: false,
    gcMarkedAt: undefined,
    userAnnotations: c.userAnnotations,
    userLabels: c.userLabels,
  };
}

export interface ListPodsOptions {
  /** Use and maintain `pods/.list-cache.json` (default true). */
  cache?: boolean;
}

/**
 * Every pod in every state, oldest first (by creation time, then UUID). A pod that moves while
 * the directories are walked is reported once, in the later state; one removed meanwhile is left
 * out. `manifest`, `pid`, `ready` and `gcMarkedAt` are not read (see readPod for one pod's details).
 */
export function listPods(dir: string, sys: Syscalls, options: ListPodsOptions = {}): PodInfo[] {
  const useCache = options.cache ?? true;
  const cacheFile = path.join(dir, 'pods', CACHE_FILE);
  const cache = useCache ? loadCache(cacheFile) : new Map<string, CachedPod>();
  const fresh = new Map<string, CachedPod>();
  let changed = false;
  const byUuid = new Map<string, PodInfo>();
  for (const location of POD_DIRS) {
    for (const uuid of readStateDir(dir, location)) {
      try {
        if (!CACHEABLE.has(location)) {
          byUuid.set(uuid, readPodAt(dir, sys, location, uuid, { details: false }));
          continue;
        }
        const probe = probePodLock(sys, podPath(dir, location, uuid));
        const state = stateOf(location, probe.locked);
        const cached = probe.locked ? undefined : cache.get(uuid);
        if (cached !== undefined && cached.id === probe.identity) {
          fresh.set(uuid, cached);
          byUuid.set(uuid, fromCached(cached, dir, location, uuid, state));
          continue;
        }
        const info = readPodAt(dir, sys, location, uuid, { details: false, locked: probe.locked });
        if (!probe.locked && info.createdAt !== undefined) {
          fresh.set(uuid, toCached(info, probe.identity));
          changed = true;
        }
        byUuid.set(uuid, info);
      } catch (err) {
        // Moved on (it shows up in a later directory) or removed by gc: not an error for a listing.
        if (!isPodGone(err)) throw err;
      }
    }
  }
  if (useCache && (changed || fresh.size !== cache.size) && fs.existsSync(path.dirname(cacheFile))) saveCache(cacheFile, fresh);
  return [...byUuid.values()].sort(
    (a, b) => (a.createdAt?.getTime() ?? 0) - (b.createdAt?.getTime() ?? 0) || a.uuid.localeCompare(b.uuid),
  );
}
