// Entry point of `tspod enter` inside the pod: `node dist/stage1/enter.js POD_DIR APP -- CMD [ARGS...]`
// (contract STAGE1_ENTRYPOINTS.enter). stage0 has already joined the pod's IPC, UTS, network, PID
// and mount namespaces and started this process there, so it is a process of the pod and sees
// the pod directory at the host's path (the init's mount namespace keeps the host's files; only
// the apps are chrooted). It reads the PodPlan the init wrote (`plan.json`), builds the app's exec
// step with CMD in place of the app's exec, moves itself into the app's cgroup(s), and hands the
// step to execApp: chroot, cwd, groups, uid/gid, capabilities, no_new_privs, seccomp, execve, the
// same path as the app itself took (exec-app.ts).
// On failure: `tspod enter: <message>` on stderr and exit 254 for bad input (argv, plan, app) or
// a cgroup that cannot be joined, 203 (EXIT_EXEC) when the exec step fails.
// Kept lean like exec-app-main.ts: the exec step, the cgroup paths and the libc layer only; the
// plan is read as JSON, not re-made (plan.ts is imported for its types alone).
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { libcSyscalls } from '../src/sys/libc.js';
import { PodCgroups } from './cgroups.js';
import { STAGE1_FILES } from './contract.js';
import { execApp, execStepForApp, EXIT_BAD_STEP, EXIT_EXEC, parseExecStep, type ExecStep } from './exec-app.js';
import type { AppPlan, PodPlan } from './plan.js';

/**
 * The PodPlan version this entry point reads: stage1/plan.ts PLAN_VERSION, not imported because
 * that would load the whole planner (seccomp tables, users) into every `enter` (a unit test
 * keeps the two equal).
 */
export const ENTER_PLAN_VERSION = 1;

/** Bad argv, a missing or foreign plan, an unknown app: exits EXIT_BAD_STEP (254). */
export class EnterInputError extends Error {}

export interface EnterArgv {
  podDir: string;
  app: string;
  command: string[];
}

/** `POD_DIR APP -- CMD [ARGS...]` (process.argv after node and the script). */
export function parseEnterArgv(args: readonly string[]): EnterArgv {
  const [podDir, app, separator, ...command] = args;
  if (podDir === undefined || app === undefined || separator !== '--' || command.length === 0 || command[0] === '') {
    throw new EnterInputError('usage: enter.js POD_DIR APP -- CMD [ARGS...]');
  }
  if (!path.isAbsolute(podDir)) throw new EnterInputError(`pod directory ${podDir}: must be an absolute path`);
  return { podDir, app, command };
}

/** Reads `plan.json`, written by the init before it mounted anything. */
export function readPodPlan(podDir: string): PodPlan {
  const file = path.join(podDir, STAGE1_FILES.plan);
  let plan: unknown;
  try {
    plan = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    throw new EnterInputError(`cannot read the pod's plan ${file}: ${(err as Error).message}`);
  }
  const p = plan as Partial<PodPlan> | null;
  if (typeof p !== 'object' || p === null || !Array.isArray(p.apps)) throw new EnterInputError(`pod plan ${file}: not a PodPlan (no apps)`);
  if (p.version !== ENTER_PLAN_VERSION) {
    throw new EnterInputError(`pod plan ${file}: version ${String(p.version)}, this stage1 reads version ${ENTER_PLAN_VERSION} (the pod was started by another tspod)`);
  }
  return p as PodPlan;
}

/**
 * The app's exec step with `command` in place of its exec: same root, cwd, ids, capabilities,
 * no_new_privs, seccomp and environment. A bare command name is looked up in the app's PATH
 * inside its root, as the app's own exec[0] is (execApp, resolveExecutable).
 */
export function enterStep(plan: PodPlan, appName: string, command: readonly string[]): { app: AppPlan; step: ExecStep } {
  const app = plan.apps.find((a) => a.name === appName);
  if (app === undefined) throw new EnterInputError(`no app ${appName} in the pod (apps: ${plan.apps.map((a) => a.name).join(', ')})`);
  // The app's resolved path belongs to its own exec, not to this command.
  const { path: _appPath, ...step } = execStepForApp(app);
  try {
    return { app, step: parseExecStep({ ...step, exec: [...command] }, `exec step of app ${appName}`) };
  } catch (err) {
    throw new EnterInputError((err as Error).message);
  }
}

function fail(message: string, status: number): void {
  process.stderr.write(`tspod enter: ${message}\n`);
  process.exitCode = status;
}

function main(args: readonly string[]): void {
  let plan: PodPlan;
  let argv: EnterArgv;
  let step: ExecStep;
  try {
    argv = parseEnterArgv(args);
    plan = readPodPlan(argv.podDir);
    step = enterStep(plan, argv.app, argv.command).step;
  } catch (err) {
    fail((err as Error).message, EXIT_BAD_STEP);
    return;
  }
  try {
    // Into the app's cgroup in every hierarchy the pod uses, as the init puts the app's exec step
    // (PodCgroups.addApp). Our pid is the one of the pod's PID namespace, where we run: cgroup.procs
    // reads pids in the writer's namespace (cgroups(7)). Joined last, so that reading the plan is
    // not charged to the app's memory limit.
    new PodCgroups(plan).addApp(argv.app, process.pid);
  } catch (err) {
    fail(`cannot join the cgroup of app ${argv.app}: ${(err as Error).message}`, EXIT_BAD_STEP);
    return;
  }
  try {
    execApp(step, libcSyscalls);
  } catch (err) {
    fail((err as Error).message, EXIT_EXEC);
  }
}

/** Whether this module is the process's entry point (by inode: symlinks or --preserve-symlinks do not fool it). */
function isEntryPoint(): boolean {
  const script = process.argv[1];
  if (script === undefined) return false;
  const self = fs.statSync(fileURLToPath(import.meta.url));
  const run = fs.statSync(script, { throwIfNoEntry: false });
  return run !== undefined && run.ino === self.ino && run.dev === self.dev;
}

// Run only as the entry point: tests import the functions above.
if (isEntryPoint()) main(process.argv.slice(2));
