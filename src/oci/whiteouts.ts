// OCI whiteouts: recognising `.wh.<name>` and `.wh..wh..opq` entries of a layer and applying them
// to the tree built from the lower layers. Owns the naming rules and the removal walk; the layer
// loop (layers.ts) decides when to call them. Removal never follows a symlink and never leaves the
// target: a whiteout below a lower-layer symlink (`evil -> /etc`, `evil/.wh.passwd`) removes nothing.
import fs from 'node:fs';

import { ImageFormatError } from '../errors.js';

// OCI image-spec layer.md "Whiteouts": a file named `.wh.` + name marks name as deleted.
export const WHITEOUT_PREFIX = '.wh.';
// layer.md "Opaque Whiteout": `.wh..wh..opq` hides every lower sibling in its directory.
export const OPAQUE_MARKER = '.wh..wh..opq';
/** aufs' own metadata (`.wh..wh.plnk`, `.wh..wh.aufs`) shares the prefix; docker ignores it. */
const AUFS_META_PREFIX = '.wh..wh.';

export type WhiteoutKind = 'whiteout' | 'opaque';

export interface Whiteout {
  kind: WhiteoutKind;
  /** The hidden path: the deleted entry, or the opaque directory ('' for the root). */
  path: string;
}

/**
 * Classifies a normalized relative path (no leading or trailing slash). Returns undefined for an
 * ordinary entry, 'ignore' for aufs metadata, or the whiteout it expresses.
 */
export function parseWhiteout(relPath: string): Whiteout | 'ignore' | undefined {
  const slash = relPath.lastIndexOf('/');
  const base = relPath.slice(slash + 1);
  const dir = slash === -1 ? '' : relPath.slice(0, slash);
  // A whiteout is a marker file; an entry below one (`a/.wh.b/c`) would make the marker appear
  // as a directory in the result, which layer.md forbids ("MUST NOT be present").
  if (dir.startsWith(WHITEOUT_PREFIX) || dir.includes(`/${WHITEOUT_PREFIX}`)) {
    throw new ImageFormatError(`apply whiteout ${relPath}: entry below a whiteout file`);
  }
  if (!base.startsWith(WHITEOUT_PREFIX)) return undefined;
  if (base === OPAQUE_MARKER) return { kind: 'opaque', path: dir };
  if (base.startsWith(AUFS_META_PREFIX)) return 'ignore';
  const name = base.slice(WHITEOUT_PREFIX.length);
  // `.wh.` alone names nothing; `.wh..` / `.wh...` would hide the parent or escape it.
  if (name === '' || name === '.' || name === '..') {
    throw new ImageFormatError(`apply whiteout ${relPath}: whiteout names no entry`);
  }
  return { kind: 'whiteout', path: dir === '' ? name : `${dir}/${name}` };
}

/**
 * Removes what a layer's whiteouts hide, after the layer itself was extracted (layer.md: whiteouts
 * apply only to lower layers, so whatever the layer created, listed in `kept`, stays).
 * - whiteout P: P and everything below it, except paths in `kept`;
 * - opaque D: everything below D, except paths in `kept`.
 * A P that the layer also created as a directory keeps only the layer's own children, which is
 * what an overlay mount shows for "deleted then recreated".
 */
export function applyWhiteouts(target: string, whiteouts: readonly Whiteout[], kept: ReadonlyMap<string, unknown>): number {
  let removed = 0;
  for (const w of whiteouts) {
    if (!parentIsRealDir(target, w.path)) continue;
    const abs = w.path === '' ? target : `${target}/${w.path}`;
    if (w.kind === 'whiteout' && !kept.has(w.path)) {
      removed += removeIfPresent(abs);
      continue;
    }
    removed += pruneBelow(target, w.path, kept);
  }
  return removed;
}

/** Every parent component of `rel` is a real directory (not a symlink) inside target. */
function parentIsRealDir(target: string, rel: string): boolean {
  if (rel === '') return true;
  const parts = rel.split('/');
  let abs = target;
  for (let i = 0; i < parts.length - 1; i += 1) {
    abs += `/${parts[i]!}`;
    try {
      if (!fs.lstatSync(abs).isDirectory()) return false;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw err;
    }
  }
  return true;
}

function removeIfPresent(abs: string): number {
  try {
    fs.lstatSync(abs);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw err;
  }
  // rm(1) semantics: a symlink is removed itself, a directory with its contents, nothing followed.
  fs.rmSync(abs, { recursive: true, force: true });
  return 1;
}

/** Removes the entries below directory `rel` that the current layer did not create. */
function pruneBelow(target: string, rel: string, kept: ReadonlyMap<string, unknown>): number {
  const abs = rel === '' ? target : `${target}/${rel}`;
  let stat: fs.Stats;
  try {
    stat = fs.lstatSync(abs);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw err;
  }
  if (!stat.isDirectory()) return 0;
  let removed = 0;
  for (const name of fs.readdirSync(abs)) {
    const childRel = rel === '' ? name : `${rel}/${name}`;
    const type = kept.get(childRel);
    if (type === undefined) removed += removeIfPresent(`${abs}/${name}`);
    else if (type === 'directory') removed += pruneBelow(target, childRel, kept);
  }
  return removed;
}
