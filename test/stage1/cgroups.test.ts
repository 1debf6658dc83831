// PodCgroups over a directory tree laid out like cgroupfs, for the two layouts tspod meets: cgroup
// v2 (one unified hierarchy, controllers enabled top-down through cgroup.subtree_control) and v1
// (one hierarchy per controller). Real cgroups are exercised by the privileged pod tests; this
// machine kind is hybrid v1, so the v2 path is checked here on files.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { afterEach, describe, expect, it } from 'vitest';

import { detectCgroupVersion, PodCgroups, removeCgroupTree } from '../../stage1/cgroups.js';
import type { PodPlan } from '../../stage1/plan.js';

const POD = 'tspod/pod-0123';

function plan(pod = POD, controllers = ['memory', 'pids']): PodPlan {
  const delegated = pod.startsWith('tspod/') ? undefined : path.dirname(pod);
  return {
    cgroup: { path: pod, v1: {}, v2: {}, ...(delegated === undefined ? {} : { delegated }), v2Controllers: controllers },
    apps: [
      { name: 'web', cgroup: { path: `${pod}/app-web`, v1: { memory: { 'memory.limit_in_bytes': '1048576' } }, v2: controllers.includes('memory') ? { 'memory.max': '1048576' } : {} } },
      { name: 'tool', cgroup: { path: `${pod}/app-tool`, v1: {}, v2: {} } },
    ],
  } as unknown as PodPlan;
}

let root: string;
afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

function read(...parts: string[]): string {
  return fs.readFileSync(path.join(root, ...parts), 'utf8');
}

describe('cgroup v2 (unified hierarchy)', () => {
  const setUp = () => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'tspod-cg2-'));
    fs.writeFileSync(path.join(root, 'cgroup.controllers'), 'cpu memory pids\n');
  };

  it('is detected from cgroup.controllers at the root', () => {
    setUp();
    expect(detectCgroupVersion(root)).toBe('v2');
  });

  it('enables the controllers in every ancestor and writes each app\'s limits', () => {
    setUp();
    new PodCgroups(plan(), root).create();
    expect(read('cgroup.subtree_control')).toBe('+memory +pids');
    expect(read('tspod', 'cgroup.subtree_control')).toBe('+memory +pids');
    expect(read('tspod', 'pod-0123', 'cgroup.subtree_control')).toBe('+memory +pids');
    expect(read('tspod', 'pod-0123', 'app-web', 'memory.max')).toBe('1048576');
    expect(fs.readdirSync(path.join(root, 'tspod', 'pod-0123')).sort()).toEqual(['app-tool', 'app-web', 'cgroup.subtree_control']);
  });

  it('below a delegated cgroup, enables controllers from it down and writes nothing above it', () => {
    setUp();
    const unit = path.join(root, 'system.slice', 'web.service');
    fs.mkdirSync(unit, { recursive: true });
    fs.writeFileSync(path.join(unit, 'cgroup.controllers'), 'memory pids\n');
    new PodCgroups(plan('system.slice/web.service/pod-0123'), root).create();
    expect(read('system.slice', 'web.service', 'cgroup.subtree_control')).toBe('+memory +pids');
    expect(read('system.slice', 'web.service', 'pod-0123', 'cgroup.subtree_control')).toBe('+memory +pids');
    expect(read('system.slice', 'web.service', 'pod-0123', 'app-web', 'memory.max')).toBe('1048576');
    expect(fs.existsSync(path.join(root, 'cgroup.subtree_control'))).toBe(false);
    expect(fs.existsSync(path.join(root, 'system.slice', 'cgroup.subtree_control'))).toBe(false);
  });

  it('refuses limits whose controller the top cgroup does not offer, naming it and the unit\'s fix', () => {
    setUp();
    const unit = path.join(root, 'app.slice', 'web.service');
    fs.mkdirSync(unit, { recursive: true });
    fs.writeFileSync(path.join(unit, 'cgroup.controllers'), 'pids\n');
    expect(() => new PodCgroups(plan('app.slice/web.service/pod-0123'), root).create()).toThrow(
      /cgroup \/app.slice\/web.service: the pod's limits need the memory controller, which it does not offer \(cgroup.controllers: pids\); let the unit delegate it \(Delegate=yes\)/,
    );
    expect(fs.existsSync(path.join(unit, 'pod-0123'))).toBe(false);
  });

  it('runs a pod without limits where pids is not offered, or cannot be enabled (EBUSY), with no controller', () => {
    setUp();
    fs.writeFileSync(path.join(root, 'cgroup.controllers'), 'hugetlb\n');
    new PodCgroups(plan(POD, ['pids']), root).create();
    expect(fs.existsSync(path.join(root, 'cgroup.subtree_control'))).toBe(false);
    expect(fs.existsSync(path.join(root, 'tspod', 'pod-0123', 'app-tool'))).toBe(true);
    // A subtree_control that cannot be written (a directory here; EBUSY on cgroupfs).
    const unit = path.join(root, 'busy.service');
    fs.mkdirSync(path.join(unit, 'cgroup.subtree_control'), { recursive: true });
    fs.writeFileSync(path.join(unit, 'cgroup.controllers'), 'memory pids\n');
    new PodCgroups(plan('busy.service/pod-0123', ['pids']), root).create();
    expect(fs.existsSync(path.join(unit, 'pod-0123', 'cgroup.subtree_control'))).toBe(false);
    expect(() => new PodCgroups(plan('busy.service/pod-0123'), root).create()).toThrow(
      /cgroup \/busy.service: cannot enable \+memory \+pids \(EISDIR\); it holds processes besides tspod run/,
    );
  });

  it('moves an app\'s process with one write to its cgroup.procs; an unknown app is an error', () => {
    setUp();
    const cgroups = new PodCgroups(plan(), root);
    cgroups.create();
    cgroups.addApp('web', 4242);
    expect(read('tspod', 'pod-0123', 'app-web', 'cgroup.procs')).toBe('4242');
    expect(() => cgroups.addApp('nope', 1)).toThrow(/no app nope/);
  });

  it('removes the pod\'s tree deepest first, tolerating what is already gone', () => {
    setUp();
    const cgroups = new PodCgroups(plan(), root);
    cgroups.create();
    // cgroupfs directories hold only interface files, which rmdir(2) ignores: model an empty tree.
    for (const entry of fs.readdirSync(path.join(root, 'tspod'), { recursive: true, withFileTypes: true })) {
      if (entry.isFile()) fs.rmSync(path.join(entry.parentPath, entry.name));
    }
    cgroups.remove();
    expect(fs.existsSync(path.join(root, 'tspod', 'pod-0123'))).toBe(false);
    expect(() => removeCgroupTree(POD, root)).not.toThrow();
  });
});

describe('cgroup v1 (a hierarchy per controller)', () => {
  it('creates the pod in pids and in each limited controller that is mounted, and adds apps to each', () => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'tspod-cg1-'));
    for (const c of ['pids', 'memory', 'cpu']) fs.mkdirSync(path.join(root, c));
    expect(detectCgroupVersion(root)).toBe('v1');
    const cgroups = new PodCgroups(plan(), root);
    cgroups.create();
    expect(read('memory', 'tspod', 'pod-0123', 'app-web', 'memory.limit_in_bytes')).toBe('1048576');
    expect(fs.existsSync(path.join(root, 'pids', 'tspod', 'pod-0123', 'app-tool'))).toBe(true);
    expect(fs.existsSync(path.join(root, 'cpu', 'tspod'))).toBe(false);
    cgroups.addApp('tool', 77);
    expect(read('pids', 'tspod', 'pod-0123', 'app-tool', 'cgroup.procs')).toBe('77');
    expect(read('memory', 'tspod', 'pod-0123', 'app-tool', 'cgroup.procs')).toBe('77');
  });
});
