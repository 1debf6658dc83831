// An in-memory RootfsView for stage1 planning tests: a map of absolute host paths to files,
// directories and symlinks; parents of every entry exist as directories.
import path from 'node:path';

import type { FileInfo, RootfsView } from '../../stage1/rootfs-paths.js';

export type FakeEntry =
  | string
  | { file: string; mode?: number; uid?: number; gid?: number }
  | { dir: true; mode?: number; uid?: number; gid?: number }
  | { symlink: string };

export function fakeRootfs(entries: Record<string, FakeEntry>): RootfsView & { paths: Map<string, FakeEntry> } {
  const paths = new Map<string, FakeEntry>();
  for (const [p, e] of Object.entries(entries)) {
    paths.set(path.posix.normalize(p), e);
    for (let d = path.posix.dirname(p); d !== '/' && !paths.has(d); d = path.posix.dirname(d)) paths.set(d, { dir: true });
  }
  paths.set('/', { dir: true });
  return {
    paths,
    lstat(p: string): FileInfo | undefined {
      const e = paths.get(path.posix.normalize(p));
      if (e === undefined) return undefined;
      if (typeof e === 'string') return { kind: 'file', mode: 0o644, uid: 0, gid: 0 };
      if ('symlink' in e) return { kind: 'symlink', mode: 0o777, uid: 0, gid: 0 };
      if ('dir' in e) return { kind: 'dir', mode: e.mode ?? 0o755, uid: e.uid ?? 0, gid: e.gid ?? 0 };
      return { kind: 'file', mode: e.mode ?? 0o644, uid: e.uid ?? 0, gid: e.gid ?? 0 };
    },
    readlink(p: string): string {
      const e = paths.get(path.posix.normalize(p));
      if (e === undefined || typeof e === 'string' || !('symlink' in e)) throw new Error(`EINVAL readlink ${p}`);
      return e.symlink;
    },
    readFile(p: string): string | undefined {
      const e = paths.get(path.posix.normalize(p));
      if (typeof e === 'string') return e;
      if (e !== undefined && 'file' in e) return e.file;
      return undefined;
    },
  };
}
