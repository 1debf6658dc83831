// The pod's supervision, run by its PID 1 (init.ts): it plans the pod from the pod directory
// (stage1/contract.ts), mounts the pod's filesystems, starts every app through the exec step
// (handing the warm exec steps init.ts started their step), reaps every process that ends in the
// namespace (orphans included), records exit statuses, stops the other apps when one fails, and
// returns the pod's exit status (the failing app's). Kernel calls go through src/sys.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import tty from 'node:tty';

import { parseImageManifest, parsePodManifest } from '../src/appc/validate.js';
import { EXIT_TSPOD_FAILURE } from '../src/errors.js';
import { libcSyscalls as sys, PR_SET_PDEATHSIG, SyscallError, WEXITSTATUS, WIFEXITED, WIFSIGNALED, WNOHANG, WTERMSIG } from '../src/sys/index.js';
import { applyPodFilesystem } from './apply.js';
import { PodCgroups } from './cgroups.js';
import { ENV_CGROUP_PARENT, exitStatusForSignal, exitStatusOfChild, podNamespaces, POD_FILES, STAGE1_FILES, type RunOptions } from './contract.js';
import { execStepForApp, type ExecStep } from './exec-app.js';
import { execStepCommand, WarmExecSteps } from './warm-exec.js';
import { hostView } from './host-view.js';
import { bringInterfaceUp, LOOPBACK_INTERFACE, needsLoopback } from './loopback.js';
import { networkPending, waitForNetwork } from './net-ready.js';
import { planPod, type AppPlan, type ExecSpec, type PlanAppInput } from './plan.js';
import { SystemdBridge } from './systemd-bridge.js';

const SIGNALS = { SIGHUP: 1, SIGINT: 2, SIGKILL: 9, SIGTERM: 15 } as const;
/** The safety-net poll of waitpid(-1); SIGCHLD does the reaping. */
const REAP_INTERVAL_MS = 1000;

function touch(file: string): void {
  fs.closeSync(fs.openSync(file, 'w', 0o644));
}

function readPlanInputs(podDir: string) {
  const manifest = parsePodManifest(fs.readFileSync(path.join(podDir, POD_FILES.manifest)), `pod manifest in ${podDir}`);
  const runOptions = JSON.parse(fs.readFileSync(path.join(podDir, POD_FILES.runOptions), 'utf8')) as RunOptions;
  // pods/run/<uuid> -> the data dir holding trees/.
  const dataDir = path.resolve(podDir, '..', '..', '..');
  const apps: Record<string, PlanAppInput> = {};
  for (const app of manifest.apps) {
    const appDir = path.join(podDir, POD_FILES.appsDir, app.name);
    const treeId = fs.readFileSync(path.join(appDir, 'tree'), 'utf8').trim();
    apps[app.name] = {
      imageManifest: parseImageManifest(fs.readFileSync(path.join(appDir, 'image-manifest')), `image manifest of app ${app.name}`),
      treeRootfs: path.join(dataDir, 'trees', treeId, 'rootfs'),
    };
  }
  return { manifest, runOptions, apps };
}

/** The terminal on stdin (`/dev/pts/3`), or undefined when stdin is not one. */
function terminalOfStdin(): string | undefined {
  if (!tty.isatty(0)) return undefined;
  try {
    return fs.readlinkSync('/proc/self/fd/0');
  } catch {
    return undefined;
  }
}

/** waitpid(-1, WNOHANG) until nothing more has ended; returns true when no child is left (ECHILD). */
function reapAll(onExit: (pid: number, status: number) => void): boolean {
  for (;;) {
    let result: { pid: number; status: number } | undefined;
    try {
      result = sys.waitpid(-1, WNOHANG);
    } catch (err) {
      if (err instanceof SyscallError && err.code === 'ECHILD') return true;
      throw err;
    }
    if (result === undefined) return false;
    onExit(result.pid, result.status);
  }
}

/** How long the init waits for what the apps left behind to die once it has killed it. */
const ORPHAN_REAP_MS = 1000;

/**
 * Once every app has ended, kills what they left behind (background processes re-parented to
 * this PID 1) and reaps it. Those processes die with PID 1 anyway (pid_namespaces(7): the kernel
 * SIGKILLs the namespace when its init exits); killed first, they no longer hold the output
 * pipes (2 s of drain) or the pod's cgroups (which rmdir would find busy and leave to gc).
 */
async function killLeftovers(reap: () => boolean): Promise<void> {
  // kill(2): pid -1 signals every process the caller may signal except itself; in the pod's
  // PID namespace that is the pod's own processes only.
  if (process.pid !== 1) return;
  try {
    process.kill(-1, 'SIGKILL');
  } catch {
    // ESRCH: nothing was left
  }
  const deadline = Date.now() + ORPHAN_REAP_MS;
  while (!reap() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
}

export async function supervisePod(podDir: string, warm: WarmExecSteps): Promise<number> {
  // stage0 is the pod's foreground supervisor: if it dies (kill -9), the pod dies with it.
  sys.prctl(PR_SET_PDEATHSIG, SIGNALS.SIGKILL);
  // Pod networks (stage1/README.md "Pod networks"): stage0 sets them up while this init starts;
  // the wait begins now (its signal handler is installed) and ends before the first app starts.
  const networkUp = networkPending() ? waitForNetwork(podDir) : undefined;
  networkUp?.catch(() => undefined); // handled where it is awaited
  const uuid = path.basename(podDir);
  const inputs = readPlanInputs(podDir);
  // --- loopback and the metadata service (stage1/README.md, "Loopback and the metadata service") --
  // stage0 unshared the pod's network namespace before it started this process (launch.ts), so
  // these calls act on the pod's own `lo`; with --net=host the host's network is left alone.
  if (needsLoopback(podNamespaces(inputs.runOptions.net))) bringInterfaceUp(sys, LOOPBACK_INTERFACE);
  // --mds-register: served from this process on the pod's 127.0.0.1 until the pod ends. Loaded
  // lazily, so pods without it do not load node:http.
  const mds = inputs.runOptions.mdsRegister
    ? await (await import('./mds.js')).startPodMetadataService({ podDir, uuid, podManifest: inputs.manifest, apps: inputs.apps })
    : undefined;
  // --- end of loopback and metadata service -----------------------------------------------------
  const plan = planPod({
    uuid,
    podDir,
    ...inputs,
    view: hostView,
    host: { resolvConf: hostView.readFile('/etc/resolv.conf'), delegatedCgroup: process.env[ENV_CGROUP_PARENT] },
    metadataUrl: mds?.url,
  });
  for (const warning of plan.warnings) process.stderr.write(`tspod: warning: ${warning}\n`);
  // systemd (stage1/README.md "systemd"): events for stage0's sd_notify, the apps' own NOTIFY_SOCKETs.
  const systemd = SystemdBridge.start({ sys, uuid, handover: warm.handover, warn: (m) => process.stderr.write(`tspod: warning: ${m}\n`) });
  fs.writeFileSync(path.join(podDir, 'plan.json'), `${JSON.stringify(plan, null, 2)}\n`);
  // --interactive: the app's /dev/console is the terminal tspod run was started from.
  const interactive = inputs.runOptions.interactive;
  applyPodFilesystem(sys, plan, interactive ? { terminal: terminalOfStdin() } : {});
  const cgroups = new PodCgroups(plan);
  cgroups.create();
  fs.writeFileSync(path.join(podDir, STAGE1_FILES.cgroup), `${plan.cgroup.path}\n`);

  const statusDir = path.join(podDir, STAGE1_FILES.statusDir);
  fs.mkdirSync(statusDir, { recursive: true });
  /** Every live child (main processes and event handlers): its exit is delivered once. */
  const children = new Map<number, (code: number) => void>();
  /** The process that currently stands for each app (its handler or its main exec). */
  const current = new Map<string, number>();
  let firstFailure: number | undefined;
  let stopping = false;
  let started = 0;

  /** A child ended: delivered once, whoever reaped it (libuv for its own children, or reapAll). */
  const childExited = (pid: number, code: number): void => {
    const deliver = children.get(pid);
    if (deliver === undefined) return; // an orphan re-parented to PID 1: reaped, nothing to record
    children.delete(pid);
    deliver(code);
  };
  /**
   * Starts one exec step (the app's exec or an event handler) in the app's cgroup: `exited` gives
   * its exit status, `running` whether it exec'd its program (warm-exec.ts execConfirmed).
   */
  const startStep = (appName: string, step: ExecStep, kind: string): { exited: Promise<number>; running: Promise<boolean> } => {
    if (kind === 'exec') step = systemd.execStep(appName, step); // NOTIFY_SOCKET, socket activation fds
    const stepFile = path.join(podDir, POD_FILES.appsDir, appName, `${kind}-step.json`);
    const stepJson = JSON.stringify(step);
    fs.writeFileSync(stepFile, stepJson, { mode: 0o600 });
    const warmChild = warm.takeFor(appName, kind === 'exec');
    // Only an --interactive app reads tspod run's stdin; the others get /dev/null, as under rkt.
    const child = warmChild ?? spawn(...execStepCommand(stepFile), { stdio: [interactive ? 'inherit' : 'ignore', 'inherit', 'inherit'] });
    if (child.pid === undefined) throw new Error(`app ${appName}: could not start the exec step (${kind})`);
    const pid = child.pid;
    // The exec step needs ~80 ms before it execs: it is in the app's cgroup long before.
    cgroups.addApp(appName, pid);
    current.set(appName, pid);
    const exited = new Promise<number>((resolve) => children.set(pid, resolve));
    // libuv reaps its own children on SIGCHLD, racing reapAll below: either path delivers the exit.
    child.on('exit', (code, signal) => childExited(pid, exitStatusOfChild(code, signal)));
    // A warm step gets its step only now that it is in the app's cgroup.
    if (warmChild === undefined) return { exited, running: Promise.resolve(true) };
    WarmExecSteps.deliver(warmChild, stepJson);
    return { exited, running: WarmExecSteps.execConfirmed(warmChild) };
  };

  const signalApps = (signal: NodeJS.Signals): void => {
    for (const pid of current.values()) {
      try {
        process.kill(pid, signal);
      } catch {
        // ESRCH: it has just exited and is being reaped.
      }
    }
  };
  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    systemd.emit({ event: 'stopping' });
    signalApps('SIGTERM');
    // Apps that ignore SIGTERM are killed after the stop timeout.
    setTimeout(() => signalApps('SIGKILL'), inputs.runOptions.stopTimeoutMs).unref();
  };
  const recordExit = (appName: string, code: number): void => {
    fs.writeFileSync(path.join(statusDir, appName), `${code}\n`);
    systemd.emit({ event: 'exited', app: appName, status: code });
    // Ending on the SIGTERM of a stop is graceful; any other non-zero status (an app failing, or
    // one that had to be SIGKILLed after the stop timeout) is the pod's exit status.
    const graceful = stopping && code === exitStatusForSignal(SIGNALS.SIGTERM);
    if (code !== 0 && !graceful && firstFailure === undefined) {
      firstFailure = code;
      stop();
    }
  };
  for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.on(signal, stop);

  /** spec/aci.md eventHandlers: pre-start must exit 0 before the exec; post-stop runs after it. */
  const runApp = async (app: AppPlan): Promise<void> => {
    const step: ExecStep = { ...execStepForApp(app), ...(interactive ? { foreground: true } : {}) };
    const handler = (spec: ExecSpec): ExecStep => ({ ...step, exec: [...spec.argv], path: spec.path });
    touch(path.join(statusDir, `${app.name}.created`));
    if (app.eventHandlers.preStart !== undefined) {
      const code = await startStep(app.name, handler(app.eventHandlers.preStart), 'pre-start').exited;
      if (code !== 0) {
        process.stderr.write(`tspod: app ${app.name}: pre-start handler exited ${code}; the app is not started\n`);
        recordExit(app.name, code);
        return;
      }
    }
    if (stopping) return recordExit(app.name, exitStatusForSignal(SIGNALS.SIGTERM));
    const { exited, running } = startStep(app.name, step, 'exec');
    // Started once the exec step has exec'd the app; one that could not be exec'd never counts,
    // so its failure stops the pod before READY=1.
    if (await running) {
      touch(path.join(statusDir, `${app.name}.started`));
      // `status --wait-ready`: ready once every app's main process has started.
      started += 1;
      if (started === plan.apps.length) {
        touch(path.join(podDir, STAGE1_FILES.ready));
        systemd.emit({ event: 'ready' });
      }
    }
    const code = await exited;
    current.delete(app.name);
    recordExit(app.name, code);
    if (app.eventHandlers.postStop !== undefined) await startStep(app.name, handler(app.eventHandlers.postStop), 'post-stop').exited;
    current.delete(app.name);
  };

  // A warm exec step that dies before it is used must not be handed a step.
  for (const pid of warm.pids()) children.set(pid, () => warm.markDead(pid));
  // PID 1 inherits every orphan of the namespace: reap them all (and any child libuv has not) on
  // each SIGCHLD (signals coalesce, so reapAll loops until nothing is left), with a slow poll as
  // a safety net.
  const reap = (): boolean =>
    reapAll((pid, status) =>
      childExited(pid, WIFEXITED(status) ? WEXITSTATUS(status) : WIFSIGNALED(status) ? exitStatusForSignal(WTERMSIG(status)) : EXIT_TSPOD_FAILURE),
    );
  process.on('SIGCHLD', reap);
  const timer = setInterval(reap, REAP_INTERVAL_MS);
  try {
    await networkUp;
    await Promise.all(plan.apps.map((app) => runApp(app)));
    return firstFailure ?? 0;
  } finally {
    clearInterval(timer);
    process.off('SIGCHLD', reap);
    systemd.close();
    await killLeftovers(reap);
    await warm.output?.drain(); // the apps' last lines (stage1/app-output.ts)
    await mds?.close();
    try {
      cgroups.remove();
    } catch {
      // EBUSY: left for gc, which removes the pod's cgroups with its directory.
    }
  }
}
