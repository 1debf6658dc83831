// `tspod run`: prepare the pod from rkt's run grammar (keeping its lock), move it to run/ and hand
// it to stage1 in the foreground. Returns the pod's exit status (the failing app's). Shared by the
// oclif command and the fast path (src/cli/fast-path.ts), so both run exactly the same code.
import type { FetchContext } from '../fetch/local-aci.js';
import { launchPod } from './launch.js';
import { preparePod } from './prepare.js';
import { parseRunArgs } from './run-args.js';
import { beginRun, moveToGarbage } from './state.js';

export interface RunPodOptions {
  fetch: FetchContext;
  warn: (message: string) => void;
}

export async function runPod(argv: readonly string[], options: RunPodOptions): Promise<number> {
  const { fetch } = options;
  const prepared = await preparePod(parseRunArgs([...argv]), { fetch, warn: options.warn, keepLock: true });
  const dir = fetch.store.layout.root;
  let pod;
  try {
    pod = await beginRun(dir, fetch.store.sys, prepared.pod!);
  } catch (err) {
    moveToGarbage(dir, fetch.store.sys, prepared.pod!);
    throw err;
  }
  return launchPod(dir, fetch.store.sys, pod, prepared.built.runOptions);
}
