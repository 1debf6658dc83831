// The cgroup a systemd unit delegates to `tspod run` (Delegate=yes), on a cgroup v2 host: stage0
// moves itself into the leaf `supervisor` of it, and stage1 puts the pod's cgroups beside that
// leaf (ENV_CGROUP_PARENT), so the apps stay in the unit: its limits (MemoryMax=, TasksMax=, ...)
// and accounting cover them, and systemd sees and stops every process of the pod. This is the
// layout systemd documents for container managers (docs/CGROUP_DELEGATION.md, "Some Dos": a
// `supervisor/` leaf for the manager, a sibling per payload; the no-processes-in-inner-nodes
// rule), and what systemd-nspawn --keep-unit and rkt inside a system service do.
// On cgroup v1 (and hybrid hosts such as this machine kind) nothing moves: systemd tracks the
// apps through name=systemd, where they stay in the unit's cgroup, and pods keep `tspod/pod-UUID`.
import fs from 'node:fs';
import path from 'node:path';

import { CGROUP_ROOT, detectCgroupVersion } from '../../stage1/contract.js';
import type { Syscalls } from '../sys/types.js';

/** The leaf of the delegated cgroup that `tspod run` (and the pod's init) moves into. */
export const SUPERVISOR_CGROUP = 'supervisor';

/** The v2 cgroup of a process (`0::/PATH` in /proc/PID/cgroup), relative to the root; '' for the root. */
export function unifiedCgroupOf(procCgroup: string): string | undefined {
  const line = procCgroup.split('\n').find((l) => l.startsWith('0::'));
  return line === undefined ? undefined : line.slice(3).replace(/^\/+|\/+$/g, '');
}

/**
 * Whether systemd delegated `dir` to this process. Recent systemd versions mark a unit's cgroup
 * with the `trusted.delegate` and `user.delegate` xattrs ("1" when delegated, else "0"). Older
 * managers leave no mark (Debian 12's systemd 252 sets neither, checked on this machine kind):
 * then a service's own cgroup counts as delegated when systemd started this process as a
 * service (INVOCATION_ID set), as rkt used the unit's cgroup when run from a system service.
 * Units need Delegate=yes for that; `tspod generate systemd` writes it.
 */
export function isDelegated(sys: Pick<Syscalls, 'lgetxattr'>, dir: string, env: NodeJS.ProcessEnv): boolean {
  for (const name of ['trusted.delegate', 'user.delegate']) {
    let value: Buffer | undefined;
    try {
      value = sys.lgetxattr(dir, name);
    } catch {
      continue; // ENOTSUP/EPERM: this kind of mark cannot be read here
    }
    if (value !== undefined) return value.toString('utf8').replace(/\0+$/, '') === '1';
  }
  return (env.INVOCATION_ID ?? '') !== '' && dir.endsWith('.service');
}

export interface DelegationOptions {
  sys: Pick<Syscalls, 'lgetxattr'>;
  env?: NodeJS.ProcessEnv;
  root?: string;
  /** /proc/self/cgroup's text (tests); read when absent. */
  procCgroup?: string;
  pid?: number;
}

/**
 * On a v2 host, in a delegated cgroup: moves this process into `<cgroup>/supervisor` and returns
 * the delegated cgroup (relative to the root), which stage1 makes the pod's parent. Undefined,
 * with nothing changed, anywhere else (v1 or hybrid, the root cgroup, not delegated) or when the
 * move is refused (the pod then goes to `tspod/` as before).
 */
export function enterDelegatedCgroup(options: DelegationOptions): string | undefined {
  const root = options.root ?? CGROUP_ROOT;
  if (detectCgroupVersion(root) !== 'v2') return undefined;
  const own = unifiedCgroupOf(options.procCgroup ?? fs.readFileSync('/proc/self/cgroup', 'utf8'));
  if (own === undefined || own === '') return undefined;
  if (!isDelegated(options.sys, path.join(root, own), options.env ?? process.env)) return undefined;
  const leaf = path.join(root, own, SUPERVISOR_CGROUP);
  try {
    fs.mkdirSync(leaf, { recursive: true });
    // cgroup-v2.rst: writing a PID to cgroup.procs migrates the whole process (every thread).
    fs.writeFileSync(path.join(leaf, 'cgroup.procs'), String(options.pid ?? process.pid));
  } catch {
    return undefined;
  }
  return own;
}
