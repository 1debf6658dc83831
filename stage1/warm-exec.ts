// Exec steps started ahead of need. Starting a Node process costs ~70-90 ms (stage1/README.md,
// "Process model"), as much as the init's own start-up and planning. So the init starts one exec
// step per app before it loads its planner (init.ts): each boots Node and koffi while the init
// plans and mounts the pod, then blocks reading its ExecStep from fd 3 (a pipe,
// exec-app-main.ts), and the init hands it the step once the pod is ready. Kept free of heavy
// imports: it runs before them.
import { spawn, type ChildProcess } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';

import { AppOutput } from './app-output.js';
import { systemdHandoverFromEnv, type SystemdHandover } from './contract.js';

const EXEC_MAIN = fileURLToPath(new URL('./exec-app-main.js', import.meta.url));

/**
 * Where an exec step finds its socket activation fds (SystemdHandover.listenFds): right after fd 3,
 * which carries the step; exec-app.ts moves them down to 3.. before execve.
 */
export const STEP_LISTEN_FD = 4;

/** The exec step program and its argv when the step comes from a file. */
export function execStepCommand(stepFile?: string): [string, string[]] {
  return [process.execPath, stepFile === undefined ? [EXEC_MAIN] : [EXEC_MAIN, stepFile]];
}

export class WarmExecSteps {
  private readonly waiting: ChildProcess[] = [];
  private readonly dead = new Set<number>();
  // systemd integration (stage1/README.md "systemd"): decided by stage0 before the plan exists.
  /** What stage0 handed over (ENV_SYSTEMD). */
  handover: SystemdHandover = { prefixOutput: false, notifyApps: [], listenFds: {} };
  /** The relay of app output, when it is prefixed: every step gets pipes for stdout and stderr. */
  output: AppOutput | undefined;
  /** Steps started with an app's socket activation fds, for that app's main exec only. */
  private readonly reserved = new Map<string, ChildProcess>();
  private stdin: 'inherit' | 'ignore' = 'ignore';

  /**
   * Starts `count` exec steps with `stdin` ('inherit' for an --interactive app, else 'ignore').
   * With socket activation, the app that gets the fds has a step of its own among them.
   */
  start(count: number, stdin: 'inherit' | 'ignore', handover: SystemdHandover = systemdHandoverFromEnv(process.env)): void {
    this.stdin = stdin;
    this.handover = handover;
    if (handover.prefixOutput) this.output = new AppOutput();
    for (const app of Object.keys(handover.listenFds)) {
      const child = this.spawnStep(app);
      if (child !== undefined) this.reserved.set(app, child);
    }
    for (let i = this.reserved.size; i < count; i++) {
      const child = this.spawnStep();
      if (child !== undefined) this.waiting.push(child);
    }
  }

  /** One exec step waiting on fd 3, with `app`'s socket activation fds from STEP_LISTEN_FD on. */
  private spawnStep(app?: string): ChildProcess | undefined {
    const [file, args] = execStepCommand();
    const output = this.output === undefined ? 'inherit' : 'pipe';
    const listenFds = app === undefined ? [] : (this.handover.listenFds[app]?.fds ?? []);
    const child = spawn(file, args, { stdio: [this.stdin, output, output, 'pipe', ...listenFds] });
    if (child.pid === undefined) return undefined;
    // EPIPE when it died before its step was written: noticed through its exit instead.
    child.stdio[3]?.on('error', () => undefined);
    child.on('exit', () => this.dead.add(child.pid!));
    this.output?.attach(child);
    return child;
  }

  /**
   * An exec step for `app` (its output is labeled with the name): for its main exec with socket
   * activation fds, the step holding them (a new one if it has died); otherwise a waiting one,
   * or a new one when the pod's steps need pipes. Undefined: the caller starts a plain step.
   */
  takeFor(app: string, mainExec: boolean): ChildProcess | undefined {
    let child: ChildProcess | undefined;
    if (mainExec && this.handover.listenFds[app] !== undefined) {
      child = this.reserved.get(app);
      this.reserved.delete(app);
      if (child === undefined || !this.alive(child)) child = this.spawnStep(app);
    } else {
      child = this.take() ?? (this.output === undefined ? undefined : this.spawnStep());
    }
    if (child !== undefined) this.output?.label(child, app);
    return child;
  }

  private alive(child: ChildProcess): boolean {
    return !this.dead.has(child.pid!) && child.exitCode === null && child.signalCode === null;
  }

  /** Pids still waiting for a step, for a supervisor that reaps with waitpid(-1) (markDead). */
  pids(): number[] {
    return [...this.waiting, ...this.reserved.values()].map((child) => child.pid!);
  }

  /** A waiting exec step that is still alive, or undefined when none is left. */
  take(): ChildProcess | undefined {
    for (let child = this.waiting.shift(); child !== undefined; child = this.waiting.shift()) {
      if (!this.dead.has(child.pid!) && child.exitCode === null && child.signalCode === null) return child;
    }
    return undefined;
  }

  /** A waiting step ended before it was used (reaped by someone other than libuv). */
  markDead(pid: number): void {
    this.dead.add(pid);
  }

  /** Hands `stepJson` to a taken exec step: it applies the step and execs the app. */
  static deliver(child: ChildProcess, stepJson: string): void {
    (child.stdio[3] as Writable).end(stepJson);
  }

  /**
   * Resolves once a delivered exec step has exec'd its app (true) or failed to (false). The step
   * keeps its end of fd 3 open, close-on-exec, so the end of the stream is its execve(2); on a
   * failure it writes one byte first (exec-app-main.ts). With socket activation fds the end comes
   * a little earlier, when fd 3 is dup2(2)'d over, and a later failure shows only as the exit.
   */
  static execConfirmed(child: ChildProcess): Promise<boolean> {
    const stream = child.stdio[3] as Readable | null;
    if (stream === null) return Promise.resolve(true);
    return new Promise((resolve) => {
      let failed = false;
      stream.on('data', () => (failed = true));
      // 'close' follows 'end' and an error alike; the data, if any, was read before either.
      stream.once('end', () => resolve(!failed));
      stream.once('close', () => resolve(!failed));
    });
  }

  /** Ends every step still waiting (the pod failed before using them, or had fewer steps). */
  discard(): void {
    for (const child of this.waiting.splice(0)) child.kill('SIGKILL');
    for (const child of this.reserved.values()) child.kill('SIGKILL');
    this.reserved.clear();
  }
}
