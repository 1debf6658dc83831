// Fresh scratch directories for tests that write many files: on tmpfs where there is one (the
// root ext4 here has no journal, see shared/docs/peers.md §1), all under one base removed at the
// end, whatever read-only directories the archives created in it.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export function scratchDirs(prefix: string): { freshDir: () => string; cleanup: () => void } {
  const base = fs.mkdtempSync(path.join(fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir(), `tspod-${prefix}-`));
  let counter = 0;
  return {
    freshDir() {
      counter += 1;
      const dir = path.join(base, `d${counter}`);
      fs.mkdirSync(dir);
      return dir;
    },
    cleanup() {
      // Read-only directories from the archives would stop a non-root rm -r.
      execFileSync('chmod', ['-R', 'u+rwx', base]);
      fs.rmSync(base, { recursive: true, force: true });
    },
  };
}
