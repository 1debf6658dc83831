// The HTTP layer's entry point for small documents: `getBytes` for public keys, signatures and
// discovery pages (redirects, status 200 only, a size cap, an overall timeout, per-host
// credentials, optional retries, errors that name the URL and the cause). Large bodies go through
// download.ts, cache revalidation through cache.ts. The shared Agents (agent.ts) and HttpError
// (http-error.ts) are re-exported here so callers keep one import.
import { openResponse, type ExchangeOptions } from './exchange.js';
import { describeNetworkError, HttpError, isTransientNetworkError } from './http-error.js';
import { NO_RETRY, Retrier, type RetryPolicy, type Sleep } from './retry.js';

export { closeAgents, getAgent, type AgentOptions, type TlsOptions } from './agent.js';
export { HttpError } from './http-error.js';
export { MAX_REDIRECTS } from './exchange.js';

export interface GetBytesOptions extends ExchangeOptions {
  /** Refuse bodies larger than this (default 10 MiB). */
  maxBytes?: number;
  /** Overall deadline for the whole exchange, redirects and retries included (default 30 s). */
  timeoutMs?: number;
  /** No byte for this long while waiting for headers or body fails the try (default: undici's 300 s). */
  idleTimeoutMs?: number;
  /** Retries of 5xx, 429 and transient network failures; default none (one try). */
  retry?: RetryPolicy;
  /** The wait between tries (tests pass one that records and returns at once). */
  sleep?: Sleep;
}

export interface GetBytesResult {
  bytes: Uint8Array;
  /** The URL after redirects. */
  finalUrl: string;
}

const DEFAULT_MAX_BYTES = 10 * 1024 * 1024;
const DEFAULT_TIMEOUT_MS = 30_000;

/**
 * GETs a small document into memory: https only (http with `allowHttp`), follows up to 10
 * redirects, requires 200, refuses bodies above `maxBytes` (by Content-Length, then while reading).
 */
export async function getBytes(url: string, opts: GetBytesOptions = {}): Promise<GetBytesResult> {
  const maxBytes = opts.maxBytes ?? DEFAULT_MAX_BYTES;
  const signal = AbortSignal.timeout(opts.timeoutMs ?? DEFAULT_TIMEOUT_MS);
  const retrier = new Retrier({ policy: opts.retry ?? NO_RETRY, sleep: opts.sleep, signal });
  for (;;) {
    const res = await openResponse(url, { ...opts, signal, retrier, accept: (s) => s === 200 });
    const current = res.url;
    const declared = Number(res.headers['content-length']);
    if (Number.isFinite(declared) && declared > maxBytes) {
      res.body.on('error', () => undefined); // destroying a body emits an abort error: expected here
      res.body.destroy();
      throw new HttpError(current.href, `response of ${declared} bytes exceeds the limit of ${maxBytes} bytes`, { status: res.status });
    }
    const chunks: Buffer[] = [];
    let total = 0;
    try {
      for await (const chunk of res.body) {
        total += (chunk as Buffer).length;
        if (total > maxBytes) {
          // Leaving the for-await loop by throwing destroys the body.
          throw new HttpError(current.href, `response exceeds the limit of ${maxBytes} bytes`, { status: res.status });
        }
        chunks.push(chunk as Buffer);
      }
    } catch (err) {
      if (err instanceof HttpError) throw err;
      const { text } = describeNetworkError(err, { idleTimeoutMs: opts.idleTimeoutMs });
      if (!signal.aborted) {
        // A body cut short is read again from the start: small documents are not resumed.
        const decision = await retrier.afterFailure({ kind: 'network', transient: isTransientNetworkError(err), text });
        if (decision.retry) continue;
      }
      throw new HttpError(current.href, `reading the response failed: ${text}`, { cause: err });
    }
    return { bytes: new Uint8Array(Buffer.concat(chunks, total)), finalUrl: current.href };
  }
}
