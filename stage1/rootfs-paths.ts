// Looking at an app's rendered tree from the host, pure: the plan reads /etc/passwd, checks the
// working directory and finds exec[0] on PATH through an injected, read-only view of the host
// filesystem (`RootfsView`), and resolves symlinks inside the tree itself, so an absolute link
// such as `/bin -> /usr/bin` (merged-/usr images) stays in the tree instead of reaching the host.
import path from 'node:path';

import { PlanError } from './plan-error.js';

export interface FileInfo {
  kind: 'file' | 'dir' | 'symlink' | 'other';
  mode: number;
  uid: number;
  gid: number;
}

/** Read-only host filesystem access, injected (tests pass an in-memory tree). */
export interface RootfsView {
  /** lstat(2): does not follow a final symlink; undefined when the path does not exist. */
  lstat(hostPath: string): FileInfo | undefined;
  /** readlink(2) of a path lstat reported as a symlink. */
  readlink(hostPath: string): string;
  /** The file as UTF-8 text; undefined when it does not exist. */
  readFile(hostPath: string): string | undefined;
}

/** symlink(7) / path_resolution(7): at most 40 links are followed in one resolution (ELOOP). */
const MAX_SYMLINKS = 40;

/**
 * Resolves `inner` (absolute, as the app sees it) inside `root` as chroot(2) would: `..` stops at
 * the root and absolute link targets are relative to it. Returns the in-root path, whether the
 * final component exists, and its info. Missing intermediate components end the walk.
 */
export function resolveInRootfs(view: RootfsView, root: string, inner: string): { path: string; info: FileInfo | undefined } {
  let pending = splitPath(inner);
  const done: string[] = [];
  let links = 0;
  while (pending.length > 0) {
    const [part, ...rest] = pending;
    pending = rest;
    if (part === undefined || part === '.' || part === '') continue;
    if (part === '..') {
      done.pop();
      continue;
    }
    const candidate = [...done, part];
    const info = view.lstat(path.join(root, ...candidate));
    if (info === undefined) return { path: `/${[...candidate, ...pending].join('/')}`, info: undefined };
    if (info.kind === 'symlink') {
      if (++links > MAX_SYMLINKS) throw new PlanError(`resolve ${inner} in ${root}: too many levels of symbolic links (ELOOP)`);
      const target = view.readlink(path.join(root, ...candidate));
      if (target.startsWith('/')) done.length = 0;
      pending = [...splitPath(target), ...pending];
      continue;
    }
    if (pending.length > 0 && info.kind !== 'dir') return { path: `/${[...candidate, ...pending].join('/')}`, info: undefined };
    done.push(part);
  }
  const final = `/${done.join('/')}`;
  return { path: final, info: done.length === 0 ? view.lstat(root) : view.lstat(path.join(root, ...done)) };
}

function splitPath(p: string): string[] {
  return p.split('/').filter((s) => s !== '');
}

/** Reads a file inside the tree through resolveInRootfs; undefined when absent. */
export function readInRootfs(view: RootfsView, root: string, inner: string): string | undefined {
  const { path: resolved, info } = resolveInRootfs(view, root, inner);
  if (info?.kind !== 'file') return undefined;
  return view.readFile(path.join(root, resolved));
}

/** `/a/./b/../c/` -> `/a/c`; throws on a relative path. */
export function cleanAbsolute(p: string, what: string): string {
  if (!p.startsWith('/')) throw new PlanError(`${what}: ${JSON.stringify(p)} is not an absolute path`);
  return path.posix.normalize(p).replace(/(.)\/+$/, '$1');
}

/** True when `a` is `b` or inside it (component-wise: /data2 is not inside /data). */
export function isWithin(a: string, b: string): boolean {
  return a === b || b === '/' || a.startsWith(`${b}/`);
}
