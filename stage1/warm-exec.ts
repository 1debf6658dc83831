// Exec steps started ahead of need. Starting a Node process costs ~70-90 ms (stage1/README.md,
// "Process model"), as much as the init's own start-up and planning. So the init starts one exec
// step per app before it loads its planner (init.ts): each boots Node and koffi while the init
// plans and mounts the pod, then blocks reading its ExecStep from fd 3 (a pipe,
// exec-app-main.ts), and the init hands it the step once the pod is ready. Kept free of heavy
// imports: it runs before them.
import { spawn, type ChildProcess } from 'node:child_process';
import type { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';

const EXEC_MAIN = fileURLToPath(new URL('./exec-app-main.js', import.meta.url));

/** The exec step program and its argv when the step comes from a file. */
export function execStepCommand(stepFile?: string): [string, string[]] {
  return [process.execPath, stepFile === undefined ? [EXEC_MAIN] : [EXEC_MAIN, stepFile]];
}

export class WarmExecSteps {
  private readonly waiting: ChildProcess[] = [];
  private readonly dead = new Set<number>();

  /** Starts `count` exec steps with `stdin` ('inherit' for an --interactive app, else 'ignore'). */
  start(count: number, stdin: 'inherit' | 'ignore'): void {
    const [file, args] = execStepCommand();
    for (let i = 0; i < count; i++) {
      const child = spawn(file, args, { stdio: [stdin, 'inherit', 'inherit', 'pipe'] });
      if (child.pid === undefined) continue;
      // EPIPE when it died before its step was written: noticed through its exit instead.
      child.stdio[3]?.on('error', () => undefined);
      child.on('exit', () => this.dead.add(child.pid!));
      this.waiting.push(child);
    }
  }

  /** Pids still waiting for a step, for a supervisor that reaps with waitpid(-1) (markDead). */
  pids(): number[] {
    return this.waiting.map((child) => child.pid!);
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

  /** Ends every step still waiting (the pod failed before using them, or had fewer steps). */
  discard(): void {
    for (const child of this.waiting.splice(0)) child.kill('SIGKILL');
  }
}
