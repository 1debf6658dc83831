// `tspod run`: prepare the pod from rkt's run grammar (keeping its lock), move it to run/ and hand
// it to stage1 in the foreground; `tspod run-prepared`: the same hand-over for a prepared pod.
// Both return the pod's exit status (the failing app's). Shared by the oclif commands and the
// fast path (src/cli/fast-path.ts), so both run exactly the same code.
import fs from 'node:fs';
import path from 'node:path';

import { POD_FILES, type RunOptions } from '../../stage1/contract.js';
import type { FetchContext } from '../fetch/local-aci.js';
import type { ConfigLayers } from '../net/config.js';
import type { Syscalls } from '../sys/types.js';
import { SystemdLaunch } from '../systemd/launch.js';
import { launchPod } from './launch.js';
import { preparePod } from './prepare.js';
import { parseRunArgs } from './run-args.js';
import { beginRun, moveToGarbage, podPath } from './state.js';
import { resolvePodUuid } from './uuid.js';

export interface RunPodOptions {
  fetch: FetchContext;
  warn: (message: string) => void;
  /** The config layers whose `net.d` define the pod networks (default: /etc/tspod and /usr/lib/tspod, or their env). */
  networkConfig?: ConfigLayers;
}

export async function runPod(argv: readonly string[], options: RunPodOptions): Promise<number> {
  const { fetch } = options;
  // First, so that --inherit-env never passes NOTIFY_SOCKET or LISTEN_* on (src/systemd/environment.ts).
  const systemd = SystemdLaunch.take({ sys: fetch.store.sys, warn: options.warn });
  const prepared = await preparePod(parseRunArgs([...argv]), { fetch, warn: options.warn, keepLock: true });
  const dir = fetch.store.layout.root;
  let pod;
  try {
    pod = await beginRun(dir, fetch.store.sys, prepared.pod!);
  } catch (err) {
    moveToGarbage(dir, fetch.store.sys, prepared.pod!);
    throw err;
  }
  return launchPod(dir, fetch.store.sys, pod, prepared.built.runOptions, systemd, options.networkConfig && { config: options.networkConfig });
}

export interface RunPreparedOptions {
  dir: string;
  sys: Syscalls;
  warn?: (message: string) => void;
  /** As RunPodOptions.networkConfig. */
  networkConfig?: ConfigLayers;
}

/** `tspod run-prepared UUID`: of two processes starting one prepared pod, one wins (beginRun). */
export async function runPreparedPod(uuidArg: string, options: RunPreparedOptions): Promise<number> {
  const { dir, sys, networkConfig } = options;
  const systemd = SystemdLaunch.take({ sys, warn: options.warn ?? warnOnStderr });
  const pod = await beginRun(dir, sys, resolvePodUuid(dir, uuidArg));
  const runOptions = JSON.parse(fs.readFileSync(path.join(podPath(dir, pod.location, pod.uuid), POD_FILES.runOptions), 'utf8')) as RunOptions;
  return launchPod(dir, sys, pod, runOptions, systemd, networkConfig && { config: networkConfig });
}

function warnOnStderr(message: string): void {
  process.stderr.write(`tspod: warning: ${message}\n`);
}
