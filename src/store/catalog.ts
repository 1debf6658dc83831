// The image catalog: one JSON record per stored image (`cas/images/<hex>.json`, schema
// `schemas/image-record.json`). A record is written last when an image is committed and removed
// first when it is deleted, so "listed" always means "blob and manifest are complete".
// Also resolves user references (`sha512-` id prefixes, `name[:version]` + labels) to records.
import fs from 'node:fs';
import path from 'node:path';

import { isImageIdPrefix, shortImageId } from '../appc/identifiers.js';
import { labelsMatch, labelValue, parseImageReference } from '../appc/labels.js';
import type { Label } from '../appc/types.js';
import { validateDocument } from '../appc/validate.js';
import { AmbiguousError, NotFoundError } from '../errors.js';
import type { Syscalls } from '../sys/types.js';
import { writeJsonAtomic } from './atomic.js';
import { recordPath, type StoreLayout } from './layout.js';

/** `discovery`: found through appc discovery by name; `location` is then the ACI URL it gave. */
export type ImageSourceKind = 'file' | 'https' | 'http' | 'discovery' | 'docker' | 'oci';

/**
 * Where an image came from. Downloads also keep what the pull policies need to ask the server
 * again (src/http/cache.ts): the validators, the freshness lifetime and when they were current.
 */
export interface ImageSource {
  kind: ImageSourceKind;
  location: string;
  signer: string | null;
  /** The image reference discovery was asked for (`example.com/app:1.0,os=linux,arch=amd64`). */
  discovery?: string;
  etag?: string | null;
  lastModified?: string | null;
  /** Cache-Control max-age in seconds (0 for no-cache/no-store); null when the server gave none. */
  maxAge?: number | null;
  /** RFC 3339: when the download finished or was last revalidated (304). */
  fetchedAt?: string;
  /** `docker`/`oci`: the digest of the OCI image manifest the image was converted from (`image list`). */
  digest?: string;
}

export interface ImageRecord {
  id: string;
  name: string;
  labels: Label[];
  importTime: string;
  lastUsed: string;
  size: number;
  source: ImageSource;
}

export function readRecord(layout: StoreLayout, id: string): ImageRecord | undefined {
  const file = recordPath(layout, id);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  const doc: unknown = JSON.parse(text);
  validateDocument('image-record', doc, `image record ${file}`);
  return doc as ImageRecord;
}

export function writeRecord(sys: Syscalls, layout: StoreLayout, record: ImageRecord): void {
  writeJsonAtomic(sys, recordPath(layout, record.id), record);
}

/**
 * Every listed image. A record that cannot be read or is malformed is reported through
 * `onWarning` and left out, so one damaged file does not hide the rest of the store.
 */
export function listRecords(layout: StoreLayout, onWarning: (message: string) => void = () => {}): ImageRecord[] {
  let names: string[];
  try {
    names = fs.readdirSync(layout.images);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const records: ImageRecord[] = [];
  for (const name of names) {
    // Hidden names are in-flight atomic writes (see atomic.ts).
    if (name.startsWith('.') || !name.endsWith('.json')) continue;
    try {
      const record = readRecord(layout, `sha512-${name.slice(0, -'.json'.length)}`);
      if (record !== undefined) records.push(record);
    } catch (err) {
      onWarning(`skipping damaged image record ${path.join(layout.images, name)}: ${(err as Error).message}`);
    }
  }
  return records.sort((a, b) => a.importTime.localeCompare(b.importTime) || a.id.localeCompare(b.id));
}

/**
 * Resolves what a user typed to one image: a `sha512-` id prefix (any unique prefix), or an
 * image reference `name[:version][,label=value...]` plus `labels`. Without a version label the
 * newest import of the name wins (rkt preferred the "latest" row, else the newest import).
 */
export function resolveRecord(records: ImageRecord[], ref: string, labels: Label[] = []): ImageRecord {
  if (ref.startsWith('sha512-')) {
    if (!isImageIdPrefix(ref)) throw new NotFoundError(`image ${ref}: not a valid image id (sha512- and hex digits)`);
    const matches = records.filter((r) => r.id.startsWith(ref));
    if (matches.length === 0) throw new NotFoundError(`image ${ref}: no image with this id in the store`, { suggestions: ['tspod image list'] });
    if (matches.length > 1) {
      throw new AmbiguousError(`image ${ref}: id prefix is ambiguous, it matches ${matches.map((r) => shortImageId(r.id)).join(', ')}`);
    }
    return matches[0]!;
  }
  const parsed = parseImageReference(ref);
  const wanted = [...parsed.labels, ...labels];
  const named = records.filter((r) => r.name === parsed.name);
  const matches = named.filter((r) => labelsMatch(wanted, r.labels));
  if (matches.length === 0) {
    const wantedText = wanted.map((l) => `${l.name}=${l.value}`).join(',');
    const have = named.map((r) => `${shortImageId(r.id)} (${r.labels.map((l) => `${l.name}=${l.value}`).join(',')})`);
    throw new NotFoundError(
      `image ${parsed.name}${wantedText === '' ? '' : ` with ${wantedText}`}: not in the store` +
        (have.length > 0 ? `; stored versions: ${have.join('; ')}` : ''),
      { suggestions: [`tspod fetch ${ref}`] },
    );
  }
  // The newest import wins; records are sorted by import time.
  return matches[matches.length - 1]!;
}

export function recordVersion(record: ImageRecord): string | undefined {
  return labelValue(record.labels, 'version');
}
