// stage1 gc entry point (`node dist/stage1/gc.js POD_DIR`), run by `tspod gc`/`rm` under the pod's
// exclusive lock before its directory is deleted: what a dead pod may leave outside its
// directory. Its mounts normally died with its mount namespace; any left below the pod
// directory (e.g. after a crash mid-setup) are detached, deepest first (umount2 MNT_DETACH, as
// rkt's gc). Then the pod's cgroups (path in `cgroup`, written by init) are removed: after a
// kill -9 of `tspod run` the init was killed before it could remove them itself.
import fs from 'node:fs';
import path from 'node:path';

import { describeCauseChain, EXIT_TSPOD_FAILURE } from '../src/errors.js';
import { libcSyscalls as sys, MNT_DETACH } from '../src/sys/index.js';
import { mountsBelow } from '../src/sys/mountinfo.js';
import { removeCgroupTree } from './cgroups.js';
import { STAGE1_FILES } from './contract.js';

function main(): void {
  const podDir = process.argv[2];
  if (podDir === undefined) throw new Error('usage: gc.js POD_DIR');
  for (const mountPoint of mountsBelow(podDir)) sys.umount2(mountPoint, MNT_DETACH);
  const cgroupFile = path.join(podDir, STAGE1_FILES.cgroup);
  if (fs.existsSync(cgroupFile)) {
    const cgroupPath = fs.readFileSync(cgroupFile, 'utf8').trim();
    // Only the pod's own cgroup: the path is one tspod wrote, never a parent of it.
    if (/\/pod-[0-9a-f-]{36}$/.test(cgroupPath)) removeCgroupTree(cgroupPath);
  }
}

try {
  main();
} catch (err) {
  for (const line of describeCauseChain(err)) process.stderr.write(`tspod: stage1 gc: ${line}\n`);
  process.exit(EXIT_TSPOD_FAILURE);
}
