// Entry point of the final exec step: `node dist/stage1/exec-app-main.js STEP.json` (or the
// ExecStep JSON on fd 3 when no path is given). Reads and validates the step, then execApp
// replaces this process with the app. On failure: `tspod exec: <message>` on stderr and exit
// status EXIT_EXEC (203, systemd's EXIT_EXEC), or EXIT_BAD_STEP (254) for a bad document.
// Kept lean: it runs once per app start, so it imports only the exec step and the libc layer.
import fs from 'node:fs';

import { libcSyscalls } from '../src/sys/libc.js';
import { execApp, EXIT_BAD_STEP, EXIT_EXEC, parseExecStep, type ExecStep } from './exec-app.js';

/** The fd a parent may pass the step on instead of a path (the first one after stdio). */
const STEP_FD = 3;

function fail(message: string, status: number, stepOnFd: boolean): void {
  process.stderr.write(`tspod exec: ${message}\n`);
  process.exitCode = status;
  // Tells the init, which reads fd 3 to its end, that the app was not started (warm-exec.ts).
  if (stepOnFd) {
    try {
      fs.writeSync(STEP_FD, 'F');
    } catch {
      // the init is gone, or fd 3 was given to a socket activation fd
    }
  }
}

function readStep(arg: string | undefined): ExecStep {
  let text: string;
  try {
    if (arg !== undefined) text = fs.readFileSync(arg, 'utf8');
    else text = fs.readFileSync(STEP_FD, 'utf8');
  } catch (err) {
    throw new StepReadError(`cannot read the exec step from ${arg ?? `fd ${STEP_FD}`}: ${(err as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new StepReadError(`exec step ${arg ?? `fd ${STEP_FD}`}: invalid JSON: ${(err as Error).message}`);
  }
  let step: ExecStep;
  try {
    step = parseExecStep(json, `exec step ${arg ?? `fd ${STEP_FD}`}`);
  } catch (err) {
    throw new StepReadError((err as Error).message);
  }
  // fd 3 stays open: execApp marks it close-on-exec with every other fd (exec-app.ts step 3b), so
  // it closes at the execve(2) and the init reads that as "the app runs" (warm-exec.ts
  // execConfirmed). With socket activation fds it is dup2(2)'d over earlier (step 3a).
  return step;
}

class StepReadError extends Error {}

function main(argv: readonly string[]): void {
  let step: ExecStep;
  const stepOnFd = argv[2] === undefined;
  try {
    step = readStep(argv[2]);
  } catch (err) {
    fail((err as Error).message, EXIT_BAD_STEP, stepOnFd);
    return;
  }
  try {
    execApp(step, libcSyscalls);
  } catch (err) {
    fail((err as Error).message, EXIT_EXEC, stepOnFd && step.listenFds === undefined);
  }
}

main(process.argv);
