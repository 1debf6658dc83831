// Fabricates pod directories in any state, with the files stage0 and stage1 would have left
// (stage1/contract.ts): `pod`, `pod-created`, `pid`, `status/<app>[.created|.started]`, `ready`,
// with chosen mtimes. States whose lock must be held (running, preparing, deleting ...) get a
// real holder process: `flock -o -x DIR sleep`, which tests kill with SIGKILL. Used by the pod
// tests and by bench/pod-list. No vitest import here, so the bench can compile it alone.
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import { libcSyscalls } from '../../src/sys/libc.js';
import { ensurePodDirs, isPodLocked, podPath, STATE_PLACES, type PodState } from '../../src/pod/state.js';
import { POD_FILES, STAGE1_FILES } from '../../stage1/contract.js';

export interface FakeApp {
  name: string;
  /** Image name (default `example.com/<app name>`). */
  image?: string;
  version?: string;
  imageId?: string;
  /** `status/<app>.created` (true: at the pod's start time). */
  created?: Date | boolean;
  /** `status/<app>.started` (true: at the pod's start time). */
  started?: Date | boolean;
  /** `status/<app>`: the exit status. */
  exitCode?: number;
  /** mtime of `status/<app>` (default: now). */
  finished?: Date;
}

export interface FakePod {
  state: PodState;
  uuid?: string;
  apps?: FakeApp[];
  /** mtime of `pod-created` (default now). */
  created?: Date;
  /** Writes `pid` with this mtime (default: for pods that ran, the creation time + 1 s). */
  started?: Date | false;
  pid?: number;
  ready?: boolean;
  /** Writes the `pod` manifest (default: every state but embryo). */
  manifest?: boolean | string;
  userLabels?: Record<string, string>;
  userAnnotations?: Record<string, string>;
}

export interface FabricatedPod {
  uuid: string;
  path: string;
  /** Whether the state needs its lock held (then call holdPodLock(path)). */
  needsLock: boolean;
}

const RAN: PodState[] = ['running', 'exited', 'exited garbage', 'exited deleting'];

/** A full sha512 image id derived from a name, stable across runs. */
export function fakeImageId(name: string): string {
  return `sha512-${crypto.createHash('sha512').update(name).digest('hex')}`;
}

export function fakeManifest(pod: Pick<FakePod, 'apps' | 'userLabels' | 'userAnnotations'>): object {
  return {
    acKind: 'PodManifest',
    acVersion: '0.8.11',
    apps: (pod.apps ?? []).map((app) => {
      const name = app.image ?? `example.com/${app.name}`;
      return {
        name: app.name,
        image: {
          name,
          id: app.imageId ?? fakeImageId(name),
          ...(app.version === undefined ? {} : { labels: [{ name: 'version', value: app.version }] }),
        },
        app: { exec: ['/bin/true'], user: '0', group: '0' },
      };
    }),
    ...(pod.userLabels === undefined ? {} : { userLabels: pod.userLabels }),
    ...(pod.userAnnotations === undefined ? {} : { userAnnotations: pod.userAnnotations }),
  };
}

function touch(file: string, mtime: Date, content = ''): void {
  fs.writeFileSync(file, content);
  fs.utimesSync(file, mtime, mtime);
}

/** Creates `$dir/pods/<state dir>/<uuid>` as the given state would have it. */
export function fabricatePod(dir: string, spec: FakePod): FabricatedPod {
  ensurePodDirs(dir);
  const uuid = spec.uuid ?? crypto.randomUUID();
  const place = STATE_PLACES[spec.state];
  const podDir = podPath(dir, place.dir, uuid);
  fs.mkdirSync(podDir, { mode: 0o750 });
  const created = spec.created ?? new Date();
  touch(path.join(podDir, POD_FILES.created), created);
  const writeManifest = spec.manifest ?? spec.state !== 'embryo';
  if (writeManifest !== false) {
    const text = typeof writeManifest === 'string' ? writeManifest : `${JSON.stringify(fakeManifest(spec), null, 2)}\n`;
    fs.writeFileSync(path.join(podDir, POD_FILES.manifest), text);
  }
  const started = spec.started ?? (RAN.includes(spec.state) ? new Date(created.getTime() + 1000) : false);
  if (started !== false) {
    touch(path.join(podDir, STAGE1_FILES.pid), started, `${spec.pid ?? 4242}\n`);
    const statusDir = path.join(podDir, STAGE1_FILES.statusDir);
    fs.mkdirSync(statusDir, { recursive: true });
    for (const app of spec.apps ?? []) {
      if (app.created !== undefined && app.created !== false) touch(path.join(statusDir, `${app.name}.created`), app.created === true ? started : app.created);
      if (app.started !== undefined && app.started !== false) touch(path.join(statusDir, `${app.name}.started`), app.started === true ? started : app.started);
      if (app.exitCode !== undefined) touch(path.join(statusDir, app.name), app.finished ?? new Date(), `${app.exitCode}\n`);
    }
  }
  if (spec.ready === true) touch(path.join(podDir, STAGE1_FILES.ready), started === false ? created : started);
  return { uuid, path: podDir, needsLock: place.locked === true };
}

export interface LockHolder {
  pid: number;
  /** SIGKILL to the holder's process group (flock and its sleep), then wait for the lock to be free. */
  kill(): Promise<void>;
}

/** Holds an exclusive flock on `podDir` from another process, like stage1 does, until killed. */
export async function holdPodLock(podDir: string, seconds = 3600): Promise<LockHolder> {
  // flock -o: the lock stays with the flock process; `sleep` keeps it waiting. detached: its own
  // process group, so one kill reaches both.
  const child = spawn('flock', ['-o', '-x', podDir, 'sleep', String(seconds)], { stdio: 'ignore', detached: true });
  child.unref();
  const pid = child.pid!;
  const deadline = Date.now() + 10_000;
  while (!isPodLocked(libcSyscalls, podDir)) {
    if (Date.now() > deadline) throw new Error(`flock on ${podDir} not taken after 10 s`);
    await sleep(5);
  }
  return {
    pid,
    async kill() {
      try {
        process.kill(-pid, 'SIGKILL');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
      }
      const until = Date.now() + 10_000;
      while (fs.existsSync(podDir) && isPodLocked(libcSyscalls, podDir)) {
        if (Date.now() > until) throw new Error(`lock on ${podDir} still held after SIGKILL`);
        await sleep(5);
      }
    },
  };
}

/** Fabricates a pod and, when its state needs it, holds its lock. */
export async function fabricateLivePod(dir: string, spec: FakePod): Promise<FabricatedPod & { holder: LockHolder | undefined }> {
  const pod = fabricatePod(dir, spec);
  return { ...pod, holder: pod.needsLock ? await holdPodLock(pod.path) : undefined };
}
