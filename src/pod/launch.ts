// stage0's hand-over to stage1 (stage1/contract.ts): the pod is in `run` with its lock held by
// this process; the pod's namespaces are created with unshare(2) on the main thread, stage1's
// init is started as the first child (so it is PID 1 of the new PID namespace) with the lock fd,
// `pid` is written, and this process stays in the foreground as the pod's supervisor: it
// forwards SIGTERM/SIGINT/SIGHUP and returns the init's exit status (the failing app's).
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { ENV_LOCK_FD, exitStatusOfChild, podNamespaces, STAGE1_ENTRYPOINTS, STAGE1_FILES, type RunOptions } from '../../stage1/contract.js';
import { writeFileAtomic } from '../store/atomic.js';
import type { Syscalls } from '../sys/types.js';
import { podPath, type Pod } from './state.js';

// dist/src/pod/launch.js -> dist/stage1/
const STAGE1_DIR = fileURLToPath(new URL('../../stage1/', import.meta.url));

const FORWARDED_SIGNALS = ['SIGTERM', 'SIGINT', 'SIGHUP'] as const;

export async function launchPod(dir: string, sys: Syscalls, pod: Pod, runOptions: RunOptions): Promise<number> {
  const podDir = podPath(dir, pod.location, pod.uuid);
  const lockFd = pod.lock?.descriptor;
  if (pod.location !== 'run' || lockFd === undefined) throw new Error(`pod ${pod.uuid}: launch needs the pod in run/ with its lock held`);
  // linux-from-node.md: only the calling (main) thread moves; child_process forks from it.
  sys.unshare(podNamespaces(runOptions.net));
  const init = spawn(process.execPath, [path.join(STAGE1_DIR, STAGE1_ENTRYPOINTS.run), podDir], {
    // The lock's open file description is shared with the init (fd 3): the pod stays "running"
    // until both have exited.
    stdio: ['inherit', 'inherit', 'inherit', lockFd],
    env: { ...process.env, [ENV_LOCK_FD]: '3' },
  });
  const exited = new Promise<number>((resolve, reject) => {
    init.on('error', reject);
    init.on('exit', (code, signal) => resolve(exitStatusOfChild(code, signal)));
  });
  if (init.pid !== undefined) writeFileAtomic(sys, path.join(podDir, STAGE1_FILES.pid), `${init.pid}\n`);
  const forward = (signal: NodeJS.Signals) => () => init.kill(signal);
  const handlers = FORWARDED_SIGNALS.map((signal) => [signal, forward(signal)] as const);
  for (const [signal, handler] of handlers) process.on(signal, handler);
  try {
    return await exited;
  } finally {
    for (const [signal, handler] of handlers) process.off(signal, handler);
  }
}
