// A pod's cgroups: one for the pod (`tspod/pod-<uuid>`), one per app inside it (`.../app-<name>`)
// and, on v2, a leaf for stage1's init ("no internal processes"). Limits come from the plan
// (resource/memory, resource/cpu, os/linux/cpu-shares). cgroup v1 (one hierarchy per controller,
// as on this machine kind) and v2 (one unified hierarchy) are detected and both handled.
// Plain file operations on cgroupfs; removed when the pod ends, and by gc after a kill -9.
import fs from 'node:fs';
import path from 'node:path';

import type { CgroupValues, PodPlan } from './plan.js';

export type CgroupVersion = 'v1' | 'v2';

export const CGROUP_ROOT = '/sys/fs/cgroup';

/** v2 when the root itself is the unified hierarchy; a hybrid host (v1 controllers mounted) is v1. */
export function detectCgroupVersion(root = CGROUP_ROOT): CgroupVersion {
  return fs.existsSync(path.join(root, 'cgroup.controllers')) && !fs.existsSync(path.join(root, 'memory')) ? 'v2' : 'v1';
}

/** v1 controllers every pod joins: pids for counting and killing, memory and cpu when limited. */
const V1_ALWAYS = ['pids'];

function write(file: string, value: string): void {
  fs.writeFileSync(file, value);
}

export class PodCgroups {
  private readonly version: CgroupVersion;

  constructor(
    private readonly plan: PodPlan,
    private readonly root = CGROUP_ROOT,
  ) {
    this.version = detectCgroupVersion(root);
  }

  /** The directories of one cgroup, one per hierarchy it lives in. */
  private dirs(values: CgroupValues, extraControllers: string[] = []): { dir: string; values: Record<string, string> }[] {
    if (this.version === 'v2') return [{ dir: path.join(this.root, values.path), values: values.v2 }];
    const controllers = new Set([...V1_ALWAYS, ...extraControllers, ...Object.keys(values.v1)]);
    return [...controllers]
      .filter((c) => fs.existsSync(path.join(this.root, c)))
      .map((c) => ({ dir: path.join(this.root, c, values.path), values: values.v1[c] ?? {} }));
  }

  private appControllers(): string[] {
    return [...new Set(this.plan.apps.flatMap((a) => Object.keys(a.cgroup.v1)))];
  }

  /** Creates the pod's cgroup and every app's, with their limits. */
  create(): void {
    if (this.version === 'v2') {
      // cgroup v2: controllers must be enabled in every ancestor's subtree_control.
      const enable = this.plan.cgroup.v2Controllers.map((c) => `+${c}`).join(' ');
      let dir = this.root;
      for (const part of this.plan.cgroup.path.split('/')) {
        write(path.join(dir, 'cgroup.subtree_control'), enable);
        dir = path.join(dir, part);
        fs.mkdirSync(dir, { recursive: true });
      }
      write(path.join(dir, 'cgroup.subtree_control'), enable);
    }
    for (const { dir, values } of this.dirs(this.plan.cgroup, this.appControllers())) {
      fs.mkdirSync(dir, { recursive: true });
      for (const [file, value] of Object.entries(values)) write(path.join(dir, file), value);
    }
    for (const app of this.plan.apps) {
      for (const { dir, values } of this.dirs(app.cgroup, this.appControllers())) {
        fs.mkdirSync(dir, { recursive: true });
        for (const [file, value] of Object.entries(values)) write(path.join(dir, file), value);
      }
    }
    if (this.version === 'v2') fs.mkdirSync(path.join(this.root, this.plan.cgroup.supervisor), { recursive: true });
  }

  /** Moves a process into the app's cgroup (every hierarchy). */
  addApp(appName: string, pid: number): void {
    const app = this.plan.apps.find((a) => a.name === appName);
    if (app === undefined) throw new Error(`no app ${appName} in the plan`);
    for (const { dir } of this.dirs(app.cgroup, this.appControllers())) write(path.join(dir, 'cgroup.procs'), String(pid));
  }

  /** Removes the pod's cgroups (empty once its processes are gone). */
  remove(): void {
    removeCgroupTree(this.plan.cgroup.path, this.root);
  }
}

/** rmdir(2) a cgroup and its children, deepest first, in every hierarchy; tolerant of absence. */
export function removeCgroupTree(cgroupPath: string, root = CGROUP_ROOT): void {
  const bases = detectCgroupVersion(root) === 'v2' ? [root] : fs.readdirSync(root).map((c) => path.join(root, c));
  for (const base of bases) {
    const top = path.join(base, cgroupPath);
    if (!fs.existsSync(top)) continue;
    const dirs = [top];
    for (const entry of fs.readdirSync(top, { withFileTypes: true, recursive: true })) {
      if (entry.isDirectory()) dirs.push(path.join(entry.parentPath, entry.name));
    }
    for (const dir of dirs.sort((a, b) => b.length - a.length)) {
      try {
        fs.rmdirSync(dir);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
    }
  }
}
