// Pod UUIDs: RFC 4122 version 4 ids made with crypto.randomUUID, their parsing, resolution of a
// unique prefix across every pod state directory (as `rkt status 5f3a` does), and `--uuid-file`
// (a file holding one UUID, written by `tspod prepare/run --uuid-file-save`).
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

import { AmbiguousError, NotFoundError, UsageError } from '../errors.js';

/** The directories under `$dir/pods` a pod can be in (kept here so uuid.ts needs no state.ts). */
export const POD_DIRS = ['embryo', 'prepare', 'prepared', 'run', 'exited-garbage', 'garbage'] as const;
export type PodDir = (typeof POD_DIRS)[number];

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** A new random (version 4) pod UUID, lower-case with dashes. */
export function newPodUuid(): string {
  return crypto.randomUUID();
}

/** Whether `text` is a UUID in canonical form (8-4-4-4-12 lower-case hex). */
export function isPodUuid(text: string): boolean {
  return UUID_RE.test(text);
}

/**
 * Parses a full UUID: accepts upper case, surrounding blanks and the 32-digit form without dashes,
 * returns the canonical form. Any RFC 4122 version is accepted, since pods may come from elsewhere.
 */
export function parsePodUuid(text: string): string {
  const compact = text.trim().toLowerCase().replace(/-/g, '');
  if (!/^[0-9a-f]{32}$/.test(compact)) throw new UsageError(`invalid pod uuid "${text}" (expected 8-4-4-4-12 hex digits)`);
  return `${compact.slice(0, 8)}-${compact.slice(8, 12)}-${compact.slice(12, 16)}-${compact.slice(16, 20)}-${compact.slice(20)}`;
}

/** The pod UUIDs found in one state directory (hidden entries, which are work in progress, skipped). */
export function readStateDir(dir: string, state: PodDir): string[] {
  try {
    return fs.readdirSync(path.join(dir, 'pods', state)).filter((name) => isPodUuid(name));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

/**
 * The one pod whose UUID starts with `prefix` (dashes optional, case-insensitive), searched in every
 * state directory. NotFoundError when none matches, AmbiguousError (listing the candidates) when
 * several do.
 */
export function resolvePodUuid(dir: string, prefix: string): string {
  const wanted = prefix.trim().toLowerCase().replace(/-/g, '');
  if (!/^[0-9a-f]+$/.test(wanted)) throw new UsageError(`invalid pod uuid "${prefix}": expected hex digits (a uuid or a unique prefix)`);
  const matches = new Set<string>();
  for (const state of POD_DIRS) {
    for (const uuid of readStateDir(dir, state)) {
      if (uuid.replace(/-/g, '').startsWith(wanted)) matches.add(uuid);
    }
  }
  if (matches.size === 0) {
    throw new NotFoundError(`pod ${prefix}: no such pod in ${path.join(dir, 'pods')}`, { suggestions: ['tspod list --full'] });
  }
  if (matches.size > 1) {
    const candidates = [...matches].sort();
    throw new AmbiguousError(`pod ${prefix}: ambiguous prefix, matches ${candidates.join(', ')}`, {
      suggestions: [`tspod status ${candidates[0]}`],
    });
  }
  return [...matches][0]!;
}

/** Reads the UUID saved in a `--uuid-file` (one UUID, surrounding blanks allowed). */
export function readUuidFile(file: string): string {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new UsageError(`--uuid-file ${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}`, {
      cause: err,
    });
  }
  try {
    return parsePodUuid(text);
  } catch (err) {
    throw new UsageError(`--uuid-file ${file}: does not hold a pod uuid`, { cause: err });
  }
}

/**
 * The pod UUIDs a command was given: either positionals (each a UUID or unique prefix) or one
 * `--uuid-file`, not both.
 */
export function podUuidsFromArgs(dir: string, positionals: readonly string[], uuidFile: string | undefined): string[] {
  if (uuidFile !== undefined) {
    if (positionals.length > 0) throw new UsageError('give either pod uuids or --uuid-file, not both');
    return [readUuidFile(uuidFile)];
  }
  if (positionals.length === 0) throw new UsageError('missing pod uuid (or --uuid-file)', { suggestions: ['tspod list'] });
  return positionals.map((p) => resolvePodUuid(dir, p));
}
