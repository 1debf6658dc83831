// Mount points from /proc/self/mountinfo (proc(5)): which mounts lie below a directory, so
// pods can be unmounted deepest first and a directory is never deleted through a mount.
import fs from 'node:fs';

/** Decodes the octal escapes of /proc/self/mountinfo paths (`\040` for a space). */
function unescapeMountPath(text: string): string {
  return text.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/** Mount points at or below `dir`, deepest first (the order they must be unmounted in). */
export function mountsBelow(dir: string, mountinfo = '/proc/self/mountinfo'): string[] {
  let root: string;
  try {
    root = fs.realpathSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') return [];
    throw err;
  }
  const text = fs.readFileSync(mountinfo, 'utf8');
  const found: string[] = [];
  for (const line of text.split('\n')) {
    // proc(5): mount ID, parent ID, major:minor, root, mount point, ...
    const field = line.split(' ')[4];
    if (field === undefined) continue;
    const mountPoint = unescapeMountPath(field);
    if (mountPoint === root || mountPoint.startsWith(`${root}/`)) found.push(mountPoint);
  }
  return [...new Set(found)].sort((a, b) => b.split('/').length - a.split('/').length || b.length - a.length);
}

