// The catalog side of the pull policies for downloaded images: which stored image came from a URL,
// its cache record (ETag, Last-Modified, max-age, fetch time: what src/http/cache.ts decides on),
// and rewriting a record's source after a revalidation (304) or a download of an image the store
// already had. Only the source changes; the record stays listed throughout (atomic rewrite under
// the image's lock, as Store.touch does).
import type { CacheRecord } from '../http/cache.js';
import { readRecord, writeRecord, type ImageRecord, type ImageSource } from '../store/catalog.js';
import type { Store } from '../store/store.js';

/** The newest stored image downloaded from `url` (newest fetch or revalidation first). */
export function storedFromLocation(store: Store, url: string): ImageRecord | undefined {
  const when = (r: ImageRecord): string => r.source.fetchedAt ?? r.importTime;
  const matches = store.listImages().filter((r) => r.source.kind !== 'file' && r.source.location === url);
  return matches.sort((a, b) => when(a).localeCompare(when(b))).at(-1);
}

/** What cache.ts decides on. A record written before tspod kept validators has none: it is refetched under `update`. */
export function cacheRecordOf(record: ImageRecord): CacheRecord {
  return {
    url: record.source.location,
    etag: record.source.etag ?? null,
    lastModified: record.source.lastModified ?? null,
    fetchedAt: record.source.fetchedAt ?? record.importTime,
    maxAge: record.source.maxAge ?? null,
  };
}

/** The source fields of a cache record. */
export function sourceCacheFields(cache: CacheRecord): Pick<ImageSource, 'etag' | 'lastModified' | 'maxAge' | 'fetchedAt'> {
  return { etag: cache.etag, lastModified: cache.lastModified, maxAge: cache.maxAge, fetchedAt: cache.fetchedAt };
}

/**
 * Replaces the source of a listed image (its last download or revalidation). A signer already
 * recorded is kept when this fetch checked none (--insecure-options=image): the bytes are the same.
 */
export async function updateSource(store: Store, id: string, source: ImageSource): Promise<ImageRecord | undefined> {
  const held = await store.lockImage(id, 'exclusive');
  try {
    const record = readRecord(store.layout, id);
    if (record === undefined) return undefined;
    const updated: ImageRecord = { ...record, source: { ...source, signer: source.signer ?? record.source.signer } };
    writeRecord(store.sys, store.layout, updated);
    return updated;
  } finally {
    held.release();
  }
}
