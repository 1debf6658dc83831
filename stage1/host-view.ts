// The real RootfsView for planning: read-only access to the host filesystem (the rendered
// trees, volume sources). Plain fs calls; the plan itself stays pure.
import fs from 'node:fs';

import type { FileInfo, RootfsView } from './rootfs-paths.js';

function kindOf(stat: fs.Stats): FileInfo['kind'] {
  if (stat.isSymbolicLink()) return 'symlink';
  if (stat.isDirectory()) return 'dir';
  if (stat.isFile()) return 'file';
  return 'other';
}

export const hostView: RootfsView = {
  lstat(hostPath) {
    const stat = fs.lstatSync(hostPath, { throwIfNoEntry: false });
    return stat === undefined ? undefined : { kind: kindOf(stat), mode: stat.mode & 0o7777, uid: stat.uid, gid: stat.gid };
  },
  readlink: (hostPath) => fs.readlinkSync(hostPath),
  readFile(hostPath) {
    try {
      return fs.readFileSync(hostPath, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') return undefined;
      throw err;
    }
  },
};
