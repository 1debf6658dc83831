// Whether a stored download is still good, for `--pull-policy` (rkt's never|new|update): a pure
// decision over the stored record {url, etag, lastModified, fetchedAt, maxAge} (tested as data),
// and the conditional request that revalidates it.
//
//   never   stored -> fresh;                       nothing stored -> missing (the caller's error)
//   new     stored -> fresh;                       nothing stored -> refetch
//   update  within Cache-Control max-age -> fresh (RFC 9111 §4.2: age below the freshness lifetime);
//           a validator (ETag, Last-Modified) -> revalidate with If-None-Match / If-Modified-Since
//           (RFC 9110 §13.1.2, §13.1.3), where 304 means unchanged (§15.4.5);
//           no validator -> refetch.
// `no-cache` and `no-store` make the freshness lifetime zero (RFC 9111 §5.2.2.4, §5.2.2.5): such a
// copy is always revalidated under `update`. A 304 freshens the record (RFC 9111 §4.3.4): new
// fetch time and max-age, validators kept unless the 304 sent new ones.
import { downloadIfModified, type DownloadOptions, type DownloadResult } from './download.js';

export const PULL_POLICIES = ['never', 'new', 'update'] as const;
export type PullPolicy = (typeof PULL_POLICIES)[number];

/** What the fetcher keeps about a URL it downloaded. */
export interface CacheRecord {
  url: string;
  etag: string | null;
  lastModified: string | null;
  /** RFC 3339 time of the download or of the last successful revalidation. */
  fetchedAt: string;
  /** Freshness lifetime in seconds from Cache-Control; null when the server gave none. */
  maxAge: number | null;
}

export type CacheDecision =
  | { action: 'fresh'; reason: string }
  | { action: 'revalidate'; reason: string; etag: string | null; lastModified: string | null }
  | { action: 'refetch'; reason: string }
  | { action: 'missing'; reason: string };

export interface CacheControl {
  maxAge: number | null;
  noCache: boolean;
  noStore: boolean;
}

/**
 * RFC 9111 §5.2: comma-separated directives, names case-insensitive, `max-age=delta-seconds`
 * (quoted accepted). An invalid max-age makes the copy stale (max-age 0): RFC 9111 §4.2.1
 * encourages caches to treat invalid freshness information so.
 */
export function parseCacheControl(value: string | null | undefined): CacheControl {
  const out: CacheControl = { maxAge: null, noCache: false, noStore: false };
  if (!value) return out;
  for (const part of value.split(',')) {
    const [rawName, ...rest] = part.split('=');
    const name = (rawName ?? '').trim().toLowerCase();
    const arg = rest.join('=').trim().replace(/^"(.*)"$/, '$1');
    if (name === 'no-cache') out.noCache = true;
    else if (name === 'no-store') out.noStore = true;
    else if (name === 'max-age') out.maxAge = /^\d+$/.test(arg) ? Number(arg) : 0;
  }
  return out;
}

/** The freshness lifetime (seconds) to record; 0 for no-cache/no-store, null when unknown. */
export function maxAgeOf(cacheControl: string | null | undefined): number | null {
  const cc = parseCacheControl(cacheControl);
  if (cc.noCache || cc.noStore) return 0;
  return cc.maxAge;
}

/** Pure: what to do with a stored copy under a pull policy at time `now` (ms). */
export function decideCache(record: CacheRecord | undefined, policy: PullPolicy, now: number): CacheDecision {
  if (record === undefined) {
    return policy === 'never'
      ? { action: 'missing', reason: 'not in the store and --pull-policy=never' }
      : { action: 'refetch', reason: 'not in the store' };
  }
  if (policy !== 'update') return { action: 'fresh', reason: `in the store (--pull-policy=${policy})` };
  const ageSeconds = (now - Date.parse(record.fetchedAt)) / 1000;
  if (record.maxAge !== null && record.maxAge > 0 && Number.isFinite(ageSeconds) && ageSeconds >= 0 && ageSeconds < record.maxAge) {
    return { action: 'fresh', reason: `fetched ${Math.floor(ageSeconds)} s ago, within max-age=${record.maxAge}` };
  }
  const stale = record.maxAge === null ? 'no max-age' : `older than max-age=${record.maxAge}`;
  if (record.etag !== null || record.lastModified !== null) {
    return {
      action: 'revalidate',
      reason: `${stale}; asking the server with ${record.etag !== null ? 'If-None-Match' : 'If-Modified-Since'}`,
      etag: record.etag,
      lastModified: record.lastModified,
    };
  }
  return { action: 'refetch', reason: `${stale} and no ETag or Last-Modified to revalidate with` };
}

/** The record for a fresh download. */
export function recordOfDownload(url: string, result: DownloadResult, now: number): CacheRecord {
  return {
    url,
    etag: result.etag,
    lastModified: result.lastModified,
    fetchedAt: new Date(now).toISOString(),
    maxAge: maxAgeOf(result.cacheControl),
  };
}

export type RevalidateResult = { outcome: 'unchanged'; record: CacheRecord } | { outcome: 'changed'; record: CacheRecord; download: DownloadResult };

/**
 * The conditional GET for a `revalidate` decision: 304 -> unchanged (the record freshened), any
 * 200 -> the new body downloaded as by `download` (resumable, hashed, with progress).
 */
export async function revalidate(record: CacheRecord, opts: DownloadOptions): Promise<RevalidateResult> {
  const result = await downloadIfModified(record.url, { etag: record.etag, lastModified: record.lastModified }, opts);
  const now = (opts.now ?? Date.now)();
  if ('notModified' in result) {
    return {
      outcome: 'unchanged',
      record: {
        url: record.url,
        etag: result.etag ?? record.etag,
        lastModified: result.lastModified ?? record.lastModified,
        fetchedAt: new Date(now).toISOString(),
        maxAge: result.cacheControl === null ? record.maxAge : maxAgeOf(result.cacheControl),
      },
    };
  }
  return { outcome: 'changed', record: recordOfDownload(record.url, result, now), download: result };
}
