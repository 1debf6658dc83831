// A pod's cgroups: one for the pod (`pod-<uuid>`), one per app inside it (`.../app-<name>`), under
// `tspod/` at the root of each hierarchy, or on cgroup v2 under the cgroup a systemd unit delegated
// to `tspod run` (plan.cgroup.delegated, src/systemd/delegation.ts). Limits come from the plan
// (resource/memory, resource/cpu, os/linux/cpu-shares). cgroup v1 (one hierarchy per controller,
// as on this machine kind) and v2 (one unified hierarchy) are detected and both handled.
// Plain file operations on cgroupfs; removed when the pod ends, and by gc after a kill -9.
import fs from 'node:fs';
import path from 'node:path';

import { TspodError } from '../src/errors.js';
import { CGROUP_ROOT, detectCgroupVersion, type CgroupVersion } from './contract.js';
import type { CgroupValues, PodPlan } from './plan.js';

export { detectCgroupVersion };

/** The pod's cgroups cannot be made as the plan needs them (a controller not offered or not enabled). */
export class CgroupError extends TspodError {}

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
    if (this.version === 'v2') this.enableControllers();
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
  }

  /**
   * cgroup v2: a controller works in a cgroup when every ancestor enables it in
   * cgroup.subtree_control. tspod writes those files from the topmost cgroup it may change (the
   * root, or the unit's delegated cgroup: never systemd's cgroups above it) down to the pod. What
   * the limits need (cpu, memory) must be offered there; pids is enabled where offered.
   */
  private enableControllers(): void {
    const top = this.plan.cgroup.delegated ?? '';
    const topDir = path.join(this.root, top);
    const offered = fs.readFileSync(path.join(topDir, 'cgroup.controllers'), 'utf8').split(/\s+/).filter((c) => c !== '');
    const wanted = this.plan.cgroup.v2Controllers;
    const required = wanted.filter((c) => c !== 'pids');
    const missing = required.filter((c) => !offered.includes(c));
    if (missing.length > 0) {
      throw new CgroupError(
        `cgroup /${top}: the pod's limits need the ${missing.join(' and ')} controller, which it does not offer (cgroup.controllers: ${offered.join(' ') || 'none'})` +
          (top === '' ? '' : `; let the unit delegate it (Delegate=yes)`),
      );
    }
    let enable = wanted.filter((c) => offered.includes(c)).map((c) => `+${c}`).join(' ');
    const dirs = [topDir];
    for (const part of path.relative(top, this.plan.cgroup.path).split('/')) dirs.push(path.join(dirs.at(-1)!, part));
    for (const [i, dir] of dirs.entries()) {
      if (i > 0) fs.mkdirSync(dir, { recursive: true });
      if (enable === '') continue;
      try {
        write(path.join(dir, 'cgroup.subtree_control'), enable);
      } catch (err) {
        if (required.length === 0) {
          enable = ''; // pids only: the pod runs without it, as where it is not offered
          continue;
        }
        // EBUSY: cgroup v2 enables controllers only in a cgroup with no processes of its own
        // ("no internal processes"); stage0 left the delegated cgroup, others may still be in it.
        const hint = i === 0 && top !== '' ? `; it holds processes besides tspod run: make tspod run the unit's main process (ExecStart=tspod run ..., or exec it from a shell)` : '';
        throw new CgroupError(`cgroup /${path.relative(this.root, dir)}: cannot enable ${enable} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})${hint}`);
      }
    }
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
