// Resumable download of a large body (an image) to a file in the store's tmp area, hashed with
// sha512 while it streams, with an `onData` hook so the caller verifies a signature in the same
// pass, progress events, retries, a size cap, an idle and an overall timeout.
//
// On disk, in `tmpDir` (the store's `cas/tmp`, given by the caller):
//   download-<key>.partial        the bytes so far; flock'ed by the process writing it
//   download-<key>.partial.json   the sidecar: {version, url, ifRange, etag, lastModified, total,
//                                 bytes, updatedAt}, written atomically before the first body byte
//   download-<key>-<random>.done  a finished download, handed to the caller (who removes it)
// `key` defaults to a hash of the URL, so a later run for the same URL finds the partial.
//
// Resuming (RFC 9110 §14.2 Range, §13.1.5 If-Range, §15.3.7 206, §14.4 Content-Range): with N bytes
// on disk and a strong validator (a strong ETag, else a Last-Modified at least 1 s older than the
// response's Date: §8.8.2.2), the request carries `Range: bytes=N-` and `If-Range: <validator>`.
//   206 -> Content-Range must start at N (and the ETag, when sent, must be ours); append.
//   200 -> the resource changed or ranges are not supported: restart from zero (onRestart).
//   416 -> the partial does not fit the resource: restart from zero.
// Without a strong validator a partial is never resumed (nothing would detect a changed file).
// Within one call, a body cut short (reset, idle timeout) is resumed the same way, and the bytes
// already hashed stay hashed; in a new process the prefix on disk is read once to rebuild the
// hash and replayed through `onData` before the new bytes.
//
// Reading a download while it is written (PartialTail): a consumer that must not wait for the end
// (a layer decompressed and applied while it downloads) opens the partial once the download has
// started and reads up to the byte count the progress events report; the caller ends it with the
// verified size, or fails it (a restart truncated the file, the digest did not match).
//
// kill -9: the partial's bytes live in the page cache and survive the process; its length on disk
// is where the next run resumes. The sidecar is rewritten (after fdatasync of the data) every
// CHECKPOINT_BYTES and when a try fails. Two processes downloading the same URL: the second finds
// the flock held and downloads into a private partial of its own (not resumable by others).
import crypto from 'node:crypto';
import fs from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';

import { writeJsonAtomic } from '../store/atomic.js';
import { tryLock, type FileLock } from '../store/lock.js';
import type { Syscalls } from '../sys/types.js';
import { openResponse, headerValue, statusText, type ExchangeOptions, type OpenedResponse } from './exchange.js';
import { describeNetworkError, HttpError, isTransientNetworkError } from './http-error.js';
import { DEFAULT_RETRY_POLICY, Retrier, type RetryPolicy, type Sleep } from './retry.js';

export const DEFAULT_DOWNLOAD_MAX_BYTES = 16 * 1024 ** 3;
export const DEFAULT_IDLE_TIMEOUT_MS = 30_000;
export const DEFAULT_DOWNLOAD_TIMEOUT_MS = 6 * 3600_000;
/** Data is fdatasync'ed and the sidecar's byte count updated this often. */
const CHECKPOINT_BYTES = 32 * 1024 * 1024;
const SIDECAR_VERSION = 1;

/** Progress of one download, in the order they happen. `total` is null when the server does not say. */
export type DownloadEvent =
  | { type: 'start'; url: string; bytes: number; total: number | null; resumedFrom: number }
  | { type: 'data'; bytes: number; total: number | null; rate: number }
  | { type: 'retry'; attempt: number; delayMs: number; reason: string; bytes: number; total: number | null }
  | { type: 'restart'; reason: string }
  | { type: 'done'; bytes: number; total: number; elapsedMs: number; rate: number };

export interface DownloadOptions extends ExchangeOptions {
  /** Where partial and finished files live: the store's tmp area (`storeLayout(dir).tmp`). */
  tmpDir: string;
  /** flock for the partial file and fsync for the sidecar. */
  sys: Syscalls;
  /** Names the partial file; default: a hash of the URL. */
  key?: string;
  /** Refuse bodies larger than this (default 16 GiB). */
  maxBytes?: number;
  /** No byte for this long fails the try (which may be retried). Default 30 s. */
  idleTimeoutMs?: number;
  /** Deadline for the whole download, retries included. Default 6 h. */
  timeoutMs?: number;
  /** Default: DEFAULT_RETRY_POLICY (5 tries; the count restarts whenever bytes arrive). */
  retry?: RetryPolicy;
  sleep?: Sleep;
  random?: () => number;
  /** Clock for rates and elapsed times (ms). */
  now?: () => number;
  /** Extra request headers (`accept`). */
  headers?: Record<string, string>;
  /** Cancels the download; the partial is kept. */
  signal?: AbortSignal;
  /**
   * Every byte of the file, in order, exactly once per pass (the prefix of a resumed partial
   * included). Awaited: a slow consumer slows the download. A throw ends the download and
   * discards the partial (the caller refused the bytes).
   */
  onData?: (chunk: Uint8Array, offset: number) => void | Promise<void>;
  /** Compute the sha512 of the body (default true); a caller that hashes what it imports saves ~1 s of CPU per GB. */
  hashBody?: boolean;
  /** The bytes given to onData so far are void: the next onData starts again at offset 0. */
  onRestart?: (reason: string) => void | Promise<void>;
  onProgress?: (event: DownloadEvent) => void;
}

export interface DownloadResult {
  /** The finished file in tmpDir; the caller moves or removes it. */
  path: string;
  /** Lowercase hex sha512 of the whole file; undefined with `hashBody: false`. */
  sha512: string | undefined;
  bytes: number;
  etag: string | null;
  lastModified: string | null;
  cacheControl: string | null;
  contentType: string | null;
  finalUrl: string;
  /** Bytes found on disk from an earlier try or run and kept (0 for a fresh download). */
  resumedFrom: number;
}

export interface NotModifiedResult {
  notModified: true;
  etag: string | null;
  lastModified: string | null;
  cacheControl: string | null;
  finalUrl: string;
}

/** Validators of a stored copy, for a conditional GET (cache.ts). */
export interface ConditionalHeaders {
  etag?: string | null;
  lastModified?: string | null;
}

interface Sidecar {
  version: number;
  url: string;
  ifRange: string;
  etag: string | null;
  lastModified: string | null;
  total: number | null;
  bytes: number;
  updatedAt: string;
}

interface Validator {
  ifRange: string;
  etag: string | null;
  lastModified: string | null;
}

/** Downloads `url` into `tmpDir`, resuming a partial left by an earlier try or run. */
export async function download(url: string, opts: DownloadOptions): Promise<DownloadResult> {
  const result = await runDownload(url, opts, undefined);
  if ('notModified' in result) throw new Error('unreachable: 304 without a conditional request');
  return result;
}

/**
 * A conditional download: If-None-Match / If-Modified-Since from `conditional`; a 304 answer is
 * returned as `notModified` (nothing is written), any 200 is downloaded as by `download`.
 */
export async function downloadIfModified(
  url: string,
  conditional: ConditionalHeaders,
  opts: DownloadOptions,
): Promise<DownloadResult | NotModifiedResult> {
  return runDownload(url, opts, conditional);
}

/** `download-<first 32 hex of sha256(url)>`: stable across runs, safe as a file name. */
export function partialKey(url: string): string {
  return crypto.createHash('sha256').update(url).digest('hex').slice(0, 32);
}

export function partialPaths(tmpDir: string, key: string): { partial: string; sidecar: string } {
  const partial = path.join(tmpDir, `download-${key}.partial`);
  return { partial, sidecar: `${partial}.json` };
}

/** RFC 9110 §14.4: `bytes first-last/complete-length` (complete length may be `*`). */
export function parseContentRange(value: string | undefined): { first: number; last: number; total: number | null } | undefined {
  const m = value === undefined ? null : /^\s*bytes\s+(\d+)-(\d+)\/(\d+|\*)\s*$/i.exec(value);
  if (!m) return undefined;
  const first = Number(m[1]);
  const last = Number(m[2]);
  const total = m[3] === '*' ? null : Number(m[3]);
  if (last < first || (total !== null && last >= total)) return undefined;
  return { first, last, total };
}

/**
 * The If-Range validator of a response, if it has a strong one (RFC 9110 §13.1.5): a strong
 * ETag; else a Last-Modified at least one second before the Date (§8.8.2.2), or any
 * Last-Modified when there is no Date to compare with.
 */
export function strongValidator(headers: Record<string, string | string[] | undefined>): Validator | undefined {
  const etag = headerValue(headers, 'etag') ?? null;
  const lastModified = headerValue(headers, 'last-modified') ?? null;
  if (etag !== null && !etag.startsWith('W/')) return { ifRange: etag, etag, lastModified };
  if (lastModified !== null && !Number.isNaN(Date.parse(lastModified))) {
    const date = headerValue(headers, 'date');
    const strong = date === undefined || Number.isNaN(Date.parse(date)) || Date.parse(date) - Date.parse(lastModified) >= 1000;
    if (strong) return { ifRange: lastModified, etag, lastModified };
  }
  return undefined;
}

function readSidecar(file: string, url: string): Sidecar | undefined {
  try {
    const doc = JSON.parse(fs.readFileSync(file, 'utf8')) as Partial<Sidecar>;
    if (doc.version !== SIDECAR_VERSION || doc.url !== url || typeof doc.ifRange !== 'string' || doc.ifRange === '') return undefined;
    return doc as Sidecar;
  } catch {
    return undefined; // missing or torn: the partial is not resumable
  }
}

/** Bytes per second over the last few seconds. */
class RateMeter {
  private samples: { t: number; bytes: number }[] = [];
  constructor(private readonly windowMs = 3000) {}
  add(t: number, bytes: number): number {
    this.samples.push({ t, bytes });
    while (this.samples.length > 2 && t - this.samples[0]!.t > this.windowMs) this.samples.shift();
    const first = this.samples[0]!;
    const dt = t - first.t;
    return dt > 0 ? ((bytes - first.bytes) * 1000) / dt : 0;
  }
  reset(): void {
    this.samples = [];
  }
}

/** The partial we write: the shared one (locked) or a private one when another process holds it. */
interface PartialFile {
  partial: string;
  sidecar: string | undefined;
  lock: FileLock | undefined;
}

function acquirePartial(sys: Syscalls, tmpDir: string, key: string): PartialFile {
  const { partial, sidecar } = partialPaths(tmpDir, key);
  for (let i = 0; i < 3; i++) {
    const held = tryLock(sys, partial, 'exclusive');
    if (held === undefined) break;
    // A finishing holder renames the partial away: the inode we locked must still be at the path.
    const locked = fs.fstatSync(held.descriptor);
    let current: fs.Stats | undefined;
    try {
      current = fs.statSync(partial);
    } catch {
      current = undefined;
    }
    if (current !== undefined && current.ino === locked.ino && current.dev === locked.dev) return { partial, sidecar, lock: held };
    held.release();
  }
  const own = path.join(tmpDir, `download-${key}-${crypto.randomBytes(6).toString('hex')}.partial`);
  fs.closeSync(fs.openSync(own, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o644));
  return { partial: own, sidecar: undefined, lock: undefined };
}

class CapError extends HttpError {}

async function runDownload(url: string, opts: DownloadOptions, conditional: ConditionalHeaders | undefined): Promise<DownloadResult | NotModifiedResult> {
  const now = opts.now ?? Date.now;
  const maxBytes = opts.maxBytes ?? DEFAULT_DOWNLOAD_MAX_BYTES;
  const idleTimeoutMs = opts.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
  const timeoutMs = opts.timeoutMs ?? DEFAULT_DOWNLOAD_TIMEOUT_MS;
  const key = opts.key ?? partialKey(url);
  const deadline = AbortSignal.timeout(timeoutMs);
  const signal = opts.signal ? AbortSignal.any([deadline, opts.signal]) : deadline;
  const emit = opts.onProgress ?? (() => undefined);

  fs.mkdirSync(opts.tmpDir, { recursive: true });
  const file = acquirePartial(opts.sys, opts.tmpDir, key);
  let fh: FileHandle | undefined;
  let discard = file.sidecar === undefined; // a private partial never outlives its call
  let callerFailed = false; // onData or onRestart threw: their error is passed on as it is
  let offset = 0;
  try {
    fh = await fs.promises.open(file.partial, 'r+');
    const size = (await fh.stat()).size;
    const saved = file.sidecar === undefined ? undefined : readSidecar(file.sidecar, url);
    let validator: Validator | undefined = saved && size > 0 ? { ifRange: saved.ifRange, etag: saved.etag, lastModified: saved.lastModified } : undefined;
    offset = validator ? size : 0;
    if (!validator && size > 0) await fh.truncate(0);
    let total: number | null = saved?.total ?? null;
    let resumedFrom = 0; // set when the first answer is accepted: the bytes kept from before

    // The sha512 of the body as transferred; callers that hash what they import skip it (hashBody: false).
    const newHash = () => (opts.hashBody === false ? undefined : crypto.createHash('sha512'));
    let hash = newHash();
    let hashed = 0; // bytes [0, hashed) went through hash and onData
    let checkpointAt = offset;
    let started = false;
    let rangeAllowed = true;
    const startTime = now();
    const rate = new RateMeter();
    const retrier = new Retrier({
      policy: opts.retry ?? DEFAULT_RETRY_POLICY,
      sleep: opts.sleep,
      random: opts.random,
      now,
      signal,
      onRetry: (info) => emit({ type: 'retry', ...info, bytes: offset, total }),
    });

    const restart = async (reason: string): Promise<void> => {
      await fh!.truncate(0);
      offset = 0;
      resumedFrom = 0;
      checkpointAt = 0;
      total = null;
      validator = undefined;
      if (file.sidecar) fs.rmSync(file.sidecar, { force: true });
      if (hashed > 0 && opts.onRestart) {
        try {
          await opts.onRestart(reason);
        } catch (err) {
          callerFailed = true;
          throw err;
        }
      }
      hash = newHash();
      hashed = 0;
      rate.reset();
      emit({ type: 'restart', reason });
    };
    const saveSidecar = (): void => {
      if (!file.sidecar || !validator) return;
      const doc: Sidecar = { version: SIDECAR_VERSION, url, ...validator, total, bytes: offset, updatedAt: new Date(now()).toISOString() };
      writeJsonAtomic(opts.sys, file.sidecar, doc);
    };
    /** Hashes and replays [hashed, offset) from disk: the prefix left by an earlier run. */
    const replayPrefix = async (): Promise<void> => {
      const buf = Buffer.alloc(1024 * 1024);
      while (hashed < offset) {
        const { bytesRead } = await fh!.read(buf, 0, Math.min(buf.length, offset - hashed), hashed);
        if (bytesRead === 0) throw new HttpError(url, `partial file ${file.partial} is shorter than expected`, { operation: 'download' });
        const chunk = Buffer.from(buf.subarray(0, bytesRead));
        hash?.update(chunk);
        try {
          await opts.onData?.(chunk, hashed);
        } catch (err) {
          callerFailed = true;
          discard = true;
          throw err;
        }
        hashed += bytesRead;
      }
    };

    for (;;) {
      const headers: Record<string, string> = { 'accept-encoding': 'identity', ...opts.headers };
      if (offset > 0 && validator && rangeAllowed) {
        headers.range = `bytes=${offset}-`;
        headers['if-range'] = validator.ifRange;
      }
      if (conditional?.etag) headers['if-none-match'] = conditional.etag;
      if (conditional?.lastModified) headers['if-modified-since'] = conditional.lastModified;
      const res: OpenedResponse = await openResponse(url, {
        ...opts,
        headers,
        signal,
        idleTimeoutMs,
        retrier,
        operation: 'download',
        accept: (s) => s === 200 || s === 206 || s === 416 || (conditional !== undefined && s === 304),
      });
      const where = res.url.href;

      if (res.status === 304) {
        await res.body.dump().catch(() => undefined);
        discard = true; // the stored copy is current: a partial of any version is of no use
        return {
          notModified: true,
          etag: headerValue(res.headers, 'etag') ?? conditional?.etag ?? null,
          lastModified: headerValue(res.headers, 'last-modified') ?? conditional?.lastModified ?? null,
          cacheControl: headerValue(res.headers, 'cache-control') ?? null,
          finalUrl: where,
        };
      }
      if (res.status === 416) {
        await res.body.dump().catch(() => undefined);
        if (!headers.range) throw new HttpError(where, `416 ${statusText(416)} without a Range request`, { status: 416, operation: 'download' });
        await restart(`the server refused the range bytes=${offset}- (416): starting again from zero`);
        continue;
      }
      const length = Number(headerValue(res.headers, 'content-length'));
      const declaredLength = Number.isFinite(length) && length >= 0 ? length : null;
      if (res.status === 206) {
        const range = parseContentRange(headerValue(res.headers, 'content-range'));
        const etag = headerValue(res.headers, 'etag');
        const problem =
          !headers.range
            ? 'a 206 answer to a request without Range'
            : range === undefined
              ? `a 206 answer with an unusable Content-Range (${headerValue(res.headers, 'content-range') ?? 'none'})`
              : range.first !== offset
                ? `a 206 answer starting at byte ${range.first} instead of ${offset}`
                : declaredLength !== null && declaredLength !== range.last - range.first + 1
                  ? 'a 206 answer whose Content-Length does not match its Content-Range'
                  : etag !== undefined && validator?.etag && etag !== validator.etag
                    ? `a 206 answer for another version (ETag ${etag}, expected ${validator.etag})`
                    : undefined;
        if (problem !== undefined) {
          await res.body.dump().catch(() => undefined);
          rangeAllowed = false; // this server gets whole-file requests from now on
          await restart(`${problem}: starting again from zero`);
          continue;
        }
        total = range!.total;
        if (hashed < offset) await replayPrefix();
      } else {
        // 200: the whole file. A Range request answered so means the file changed (If-Range) or
        // the server ignores ranges (RFC 9110 §14.2): what is on disk is void.
        if (offset > 0) {
          await restart(
            headers.range
              ? 'the server sent the whole file (it changed since the partial download, or ranges are not supported): starting again from zero'
              : 'starting again from zero',
          );
        }
        total = declaredLength;
        validator = strongValidator(res.headers);
        if (validator) saveSidecar();
        else if (file.sidecar) fs.rmSync(file.sidecar, { force: true });
      }
      if (total !== null && total > maxBytes) {
        res.body.on('error', () => undefined);
        res.body.destroy();
        discard = true;
        throw new CapError(where, `response of ${total} bytes exceeds the limit of ${maxBytes} bytes`, { status: res.status, operation: 'download' });
      }
      if (!started) {
        started = true;
        resumedFrom = offset;
        emit({ type: 'start', url: where, bytes: offset, total, resumedFrom });
      }

      // The body: network errors are retried from where we are; errors of ours end the download.
      const reader = res.body[Symbol.asyncIterator]();
      let failure: unknown;
      for (;;) {
        let next: IteratorResult<unknown>;
        try {
          next = await reader.next();
        } catch (err) {
          failure = err;
          break;
        }
        if (next.done) break;
        const chunk = next.value as Buffer;
        if (offset + chunk.length > maxBytes) {
          await reader.return?.();
          discard = true;
          throw new CapError(where, `response exceeds the limit of ${maxBytes} bytes`, { status: res.status, operation: 'download' });
        }
        writeAt(fh.fd, chunk, offset);
        hash?.update(chunk);
        if (opts.onData) {
          try {
            await opts.onData(chunk, offset);
          } catch (err) {
            await reader.return?.();
            discard = true;
            callerFailed = true;
            throw err;
          }
        }
        offset += chunk.length;
        hashed = offset;
        retrier.progressed();
        emit({ type: 'data', bytes: offset, total, rate: rate.add(now(), offset) });
        if (offset - checkpointAt >= CHECKPOINT_BYTES) {
          await fh.datasync();
          saveSidecar();
          checkpointAt = offset;
        }
      }
      if (failure === undefined && total !== null && offset < total) {
        failure = new HttpError(where, `the body ended at byte ${offset} of ${total}`, { operation: 'download' });
      }
      if (failure === undefined) {
        if (total !== null && offset > total) {
          throw new HttpError(where, `the body is longer (${offset} bytes) than announced (${total})`, { operation: 'download' });
        }
        const doneAt = now();
        const finalPath = path.join(opts.tmpDir, `download-${key}-${crypto.randomBytes(6).toString('hex')}.done`);
        await fh.close();
        fh = undefined;
        fs.renameSync(file.partial, finalPath);
        if (file.sidecar) fs.rmSync(file.sidecar, { force: true });
        const elapsedMs = Math.max(0, doneAt - startTime);
        emit({ type: 'done', bytes: offset, total: offset, elapsedMs, rate: elapsedMs > 0 ? ((offset - resumedFrom) * 1000) / elapsedMs : 0 });
        return {
          path: finalPath,
          sha512: hash?.digest('hex'),
          bytes: offset,
          etag: headerValue(res.headers, 'etag') ?? validator?.etag ?? null,
          lastModified: headerValue(res.headers, 'last-modified') ?? validator?.lastModified ?? null,
          cacheControl: headerValue(res.headers, 'cache-control') ?? null,
          contentType: headerValue(res.headers, 'content-type') ?? null,
          finalUrl: where,
          resumedFrom,
        };
      }

      // A try failed mid-body: keep what arrived (durably, with its count) and maybe try again.
      await fh.datasync();
      saveSidecar();
      checkpointAt = offset;
      const { text, suggestions } =
        failure instanceof HttpError ? { text: failure.message.replace(/^download \S+: /, ''), suggestions: [] } : describeNetworkError(failure, { idleTimeoutMs });
      if (signal.aborted) throw failure;
      const transient = failure instanceof HttpError || isTransientNetworkError(failure);
      const decision = await retrier.afterFailure({ kind: 'network', transient, text });
      if (!decision.retry) {
        throw new HttpError(where, `${decision.reason} (${offset} bytes kept for a later run)`, { cause: failure, suggestions, operation: 'download' });
      }
    }
  } catch (err) {
    // The deadline or the caller's abort, wherever it struck (request, body, backoff sleep).
    if (signal.aborted && !(err instanceof CapError) && !callerFailed) {
      const kept = !discard && offset > 0 ? ` (${offset} bytes kept for a later run)` : '';
      throw new HttpError(url, `${opts.signal?.aborted ? 'cancelled' : `timed out after ${timeoutMs} ms`}${kept}`, { cause: err, operation: 'download' });
    }
    throw err;
  } finally {
    if (fh !== undefined) await fh.close().catch(() => undefined);
    if (discard) {
      fs.rmSync(file.partial, { force: true });
      if (file.sidecar) fs.rmSync(file.sidecar, { force: true });
    }
    file.lock?.release();
  }
}

/**
 * Writes a body chunk at `position`, synchronously: a chunk (tens of KiB) goes to the page cache
 * in microseconds, where an awaited FileHandle.write costs a round trip through libuv's 4-thread
 * pool, which zlib occupies while layers are applied: loopback pulls ran at 35-40 MiB/s that way.
 */
function writeAt(fd: number, chunk: Buffer, position: number): void {
  for (let done = 0; done < chunk.length; ) done += fs.writeSync(fd, chunk, done, chunk.length - done, position + done);
}

/**
 * A Readable of a download in progress: the bytes of the open partial file `fd`, up to what
 * `grow()` reported as written (the `bytes` of 'start' and 'data' events); it ends at `finish()`
 * and fails at `fail()`. The caller checks that the finished download is this same file (inode)
 * before it calls finish, so what was read is what was verified.
 */
export class PartialTail extends Readable {
  private position = 0;
  private available = 0;
  private end: number | undefined;
  private reading = false;
  private wanted = false;

  constructor(readonly fd: number) {
    super({ highWaterMark: 1 << 20 });
  }

  /** Bytes [0, bytes) of the file are written. */
  grow(bytes: number): void {
    if (bytes <= this.available) return;
    this.available = bytes;
    if (this.wanted) this.pump();
  }

  /** The download is complete and verified at `size` bytes. */
  finish(size: number): void {
    this.end = size;
    this.available = size;
    if (this.wanted) this.pump();
  }

  fail(err: Error): void {
    this.destroy(err);
  }

  override _read(): void {
    this.wanted = true;
    this.pump();
  }

  private pump(): void {
    if (this.reading || this.destroyed) return;
    if (this.position >= this.available) {
      if (this.end !== undefined && this.position >= this.end) this.push(null);
      return; // grow() or finish() calls again
    }
    this.reading = true;
    const length = Math.min(1 << 20, this.available - this.position);
    const buf = Buffer.allocUnsafe(length);
    fs.read(this.fd, buf, 0, length, this.position, (err, n) => {
      this.reading = false;
      if (this.destroyed) return;
      if (err) {
        this.destroy(err);
        return;
      }
      if (n === 0) {
        this.destroy(new Error(`the partial download is shorter (${this.position} bytes) than reported (${this.available})`));
        return;
      }
      this.position += n;
      this.wanted = this.push(n === length ? buf : buf.subarray(0, n));
      if (this.wanted) this.pump();
    });
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    fs.close(this.fd, () => callback(err));
  }
}
