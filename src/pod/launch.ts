// stage0's hand-over to stage1 (stage1/contract.ts): the pod is in `run` with its lock held by
// this process; the pod's namespaces are created with unshare(2) on the main thread, stage1's
// init is started as the first child (so it is PID 1 of the new PID namespace) with the lock fd,
// `pid` is written, and this process stays in the foreground as the pod's supervisor: it
// forwards SIGTERM/SIGINT/SIGHUP and returns the init's exit status (the failing app's).
import { spawn } from 'node:child_process';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';

import { ENV_CGROUP_PARENT, ENV_LOCK_FD, exitStatusOfChild, podNamespaces, STAGE1_ENTRYPOINTS, STAGE1_FILES, type RunOptions } from '../../stage1/contract.js';
import { writeFileAtomic } from '../store/atomic.js';
import type { Syscalls } from '../sys/types.js';
import { enterDelegatedCgroup } from '../systemd/delegation.js';
import type { SystemdLaunch } from '../systemd/launch.js';
import type { ConfigLayers } from '../net/config.js';
import { PodNetworkSession } from '../net/pod-network.js';
import { podPath, type Pod } from './state.js';

// dist/src/pod/launch.js -> dist/stage1/
const STAGE1_DIR = fileURLToPath(new URL('../../stage1/', import.meta.url));

const FORWARDED_SIGNALS = ['SIGTERM', 'SIGINT', 'SIGHUP'] as const;

/**
 * `systemd` (src/systemd/launch.ts, taken before this call): app output prefixing, sd_notify and
 * socket activation, handed to the init through extra fds from 4 on and ENV_SYSTEMD.
 *
 * `net` (src/net/pod-network.ts): the config layers whose `net.d` define the pod's networks; the
 * networks are set up while the init starts, which waits for them (stage1/README.md "Pod networks").
 */
export async function launchPod(dir: string, sys: Syscalls, pod: Pod, runOptions: RunOptions, systemd?: SystemdLaunch, net?: { config: ConfigLayers }): Promise<number> {
  const podDir = podPath(dir, pod.location, pod.uuid);
  const lockFd = pod.lock?.descriptor;
  if (pod.location !== 'run' || lockFd === undefined) throw new Error(`pod ${pod.uuid}: launch needs the pod in run/ with its lock held`);
  const handover = systemd?.prepare(podDir, runOptions);
  // Pod networks: their configuration, and handles on the host's namespaces before the unshare (src/net/pod-network.ts).
  const network = PodNetworkSession.forLaunch({ dataDir: dir, sys, config: net?.config ?? defaultConfigLayers() }, podDir, runOptions.net);
  // A unit's delegated cgroup (cgroup v2): this process moves to its `supervisor` leaf, so the
  // init starts there and the pod's cgroups go below the unit (src/systemd/delegation.ts).
  const cgroupParent = enterDelegatedCgroup({ sys });
  // linux-from-node.md: only the calling (main) thread moves; child_process forks from it.
  sys.unshare(podNamespaces(runOptions.net));
  network?.enterPod();
  const init = spawn(process.execPath, [path.join(STAGE1_DIR, STAGE1_ENTRYPOINTS.run), podDir], {
    // The lock's open file description is shared with the init (fd 3): the pod stays "running"
    // until both have exited.
    stdio: ['inherit', 'inherit', 'inherit', lockFd, ...(handover?.extraStdio ?? [])],
    // (an undefined value is left out: a TSPOD_CGROUP_PARENT of the caller's never reaches stage1)
    env: { ...process.env, [ENV_LOCK_FD]: '3', [ENV_CGROUP_PARENT]: cgroupParent, ...handover?.env, ...network?.initEnvironment() },
  });
  systemd?.attach(init.stdio[4] as Readable | null);
  const exited = new Promise<number>((resolve, reject) => {
    init.on('error', reject);
    init.on('exit', (code, signal) => resolve(exitStatusOfChild(code, signal)));
  });
  if (init.pid !== undefined) writeFileAtomic(sys, path.join(podDir, STAGE1_FILES.pid), `${init.pid}\n`);
  // Back to the host's network and PID namespaces, then both sides while the init starts Node.
  const networkUp = network?.bringUp(init.pid);
  const forward = (signal: NodeJS.Signals) => () => {
    systemd?.stopping();
    init.kill(signal);
  };
  const handlers = FORWARDED_SIGNALS.map((signal) => [signal, forward(signal)] as const);
  for (const [signal, handler] of handlers) process.on(signal, handler);
  try {
    const status = await exited;
    await systemd?.finish(status);
    return status;
  } finally {
    for (const [signal, handler] of handlers) process.off(signal, handler);
    // The pod has exited: its veth, lease and firewall rules go (a setup error is thrown here).
    await networkUp;
    await network?.finish();
  }
}

/** The config layers of the global flags' defaults and environment (TSPOD_LOCAL_CONFIG, TSPOD_SYSTEM_CONFIG). */
function defaultConfigLayers(): ConfigLayers {
  return { localConfig: process.env.TSPOD_LOCAL_CONFIG ?? '/etc/tspod', systemConfig: process.env.TSPOD_SYSTEM_CONFIG ?? '/usr/lib/tspod' };
}
