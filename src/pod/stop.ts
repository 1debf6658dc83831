// `tspod stop`: asks a running pod's PID 1 (stage1's init, whose host PID is in `pid`) to stop
// its apps: SIGTERM, which the init passes on and escalates to SIGKILL after the stop timeout;
// with --force, SIGKILL to the init, which takes the whole PID namespace down at once.
import { NotFoundError, TspodError } from '../errors.js';
import type { Syscalls } from '../sys/types.js';
import { readPod } from './state.js';

export interface StopResult {
  uuid: string;
  pid: number;
  signal: 'SIGTERM' | 'SIGKILL';
}

export function stopPod(dir: string, sys: Syscalls, uuid: string, options: { force?: boolean } = {}): StopResult {
  const pod = readPod(dir, sys, uuid, { details: true });
  if (pod.state !== 'running') throw new TspodError(`stop pod ${uuid}: it is not running (state ${pod.state})`);
  if (pod.pid === undefined) throw new NotFoundError(`stop pod ${uuid}: its stage1 has not written a pid yet; try again`);
  const signal = options.force === true ? 'SIGKILL' : 'SIGTERM';
  try {
    process.kill(pod.pid, signal);
  } catch (err) {
    // ESRCH: it ended between the state check and the signal.
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
  }
  return { uuid, pid: pod.pid, signal };
}
