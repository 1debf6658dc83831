// stage1 init: the pod's PID 1 (`node dist/stage1/init.js POD_DIR`). stage0 created the pod's
// namespaces with unshare(2) and started this process as its first child, so it is PID 1 of the
// new PID namespace and lives in the pod's mount, UTS, IPC (and network) namespaces.
// Before it loads anything heavy, it starts one exec step per app (warm-exec.ts), so their Node
// start-up overlaps its own; then supervise.ts plans and mounts the pod, starts the apps and
// supervises them until the pod ends, and this process exits with the pod's status.
import fs from 'node:fs';
import path from 'node:path';

import { POD_FILES, type RunOptions } from './contract.js';
import { WarmExecSteps } from './warm-exec.js';

/** What the warm start needs from the pod directory, read without the validators (supervise.ts validates). */
function appCount(podDir: string): { apps: number; interactive: boolean } {
  try {
    const manifest = JSON.parse(fs.readFileSync(path.join(podDir, POD_FILES.manifest), 'utf8')) as { apps?: unknown[] };
    const runOptions = JSON.parse(fs.readFileSync(path.join(podDir, POD_FILES.runOptions), 'utf8')) as Partial<RunOptions>;
    return { apps: Array.isArray(manifest.apps) ? manifest.apps.length : 0, interactive: runOptions.interactive === true };
  } catch {
    return { apps: 0, interactive: false }; // supervise.ts reports the problem
  }
}

const EXIT_TSPOD_FAILURE = 254;
const podDir = process.argv[2];
const warm = new WarmExecSteps();
try {
  if (podDir === undefined) throw new Error('usage: init.js POD_DIR');
  const { apps, interactive } = appCount(podDir);
  warm.start(apps, interactive ? 'inherit' : 'ignore');
  const { supervisePod } = await import('./supervise.js');
  const code = await supervisePod(podDir, warm);
  warm.discard();
  process.exit(code);
} catch (err) {
  warm.discard();
  const { describeCauseChain } = await import('../src/errors.js');
  for (const line of describeCauseChain(err)) process.stderr.write(`tspod: stage1: ${line}\n`);
  process.exit(EXIT_TSPOD_FAILURE);
}
