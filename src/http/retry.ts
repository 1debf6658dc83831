// When and how long to wait before trying an HTTP exchange again. The decision is pure (a failure,
// the number of failed tries, the policy -> retry after N ms, or stop and why) and tested as data;
// `Retrier` carries the count for one logical exchange and sleeps through an injectable `sleep`,
// so tests run without waiting.
//
// Retried: 5xx except 501 and 505 (RFC 9110 §15.6.2, §15.6.6: the server does not support the
// method or version; asking again changes nothing), 429 (RFC 6585 §4), and transient network
// failures (resets, timeouts: http-error.ts). Never other 4xx: the request itself is wrong.
// Retry-After (RFC 9110 §10.2.3, delay-seconds or an HTTP-date) is honoured on any retried status
// up to `maxRetryAfterMs`; a longer wait ends the retries with the server's request in the error.
// Otherwise exponential backoff with "equal jitter": half the step fixed, half random, so many
// clients that failed together do not come back together.
import { setTimeout as sleepTimer } from 'node:timers/promises';

export interface RetryPolicy {
  /** Tries in all, the first one included; 1 means no retry. */
  attempts: number;
  /** The first backoff step; each further step doubles, up to `maxDelayMs`. */
  baseDelayMs: number;
  maxDelayMs: number;
  /** The longest Retry-After tspod waits for; a longer one stops retrying. */
  maxRetryAfterMs: number;
}

export const DEFAULT_RETRY_POLICY: Readonly<RetryPolicy> = Object.freeze({
  attempts: 5,
  baseDelayMs: 500,
  maxDelayMs: 30_000,
  maxRetryAfterMs: 60_000,
});

export const NO_RETRY: Readonly<RetryPolicy> = Object.freeze({ ...DEFAULT_RETRY_POLICY, attempts: 1 });

/** What went wrong with one try. */
export type Failure =
  | { kind: 'status'; status: number; statusText: string; retryAfter?: string | undefined }
  | { kind: 'network'; transient: boolean; text: string };

export type RetryDecision = { retry: true; delayMs: number; reason: string } | { retry: false; reason: string };

const NOT_RETRIED_5XX = new Set([501, 505]);

export function isRetriedStatus(status: number): boolean {
  return status === 429 || (status >= 500 && status <= 599 && !NOT_RETRIED_5XX.has(status));
}

/**
 * Retry-After in milliseconds from `now` (RFC 9110 §10.2.3): `delay-seconds` (digits only) or an
 * HTTP-date. A date in the past means 0; anything unparsable, undefined.
 */
export function parseRetryAfter(value: string | undefined, now: number): number | undefined {
  if (value === undefined) return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  // An HTTP-date (RFC 9110 §5.6.7) starts with a day name; Date.parse alone would take "-5" as a year.
  if (!/^(Mon|Tue|Wed|Thu|Fri|Sat|Sun)/i.test(text)) return undefined;
  const date = Date.parse(text);
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, date - now);
}

/** The backoff before try number `failedAttempts + 1`: base * 2^(n-1), capped, equal jitter. */
export function backoffDelay(failedAttempts: number, policy: RetryPolicy, random: number): number {
  const step = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** Math.max(0, failedAttempts - 1));
  return Math.round(step / 2 + (step / 2) * random);
}

function describeFailure(failure: Failure): string {
  return failure.kind === 'status' ? `${failure.status} ${failure.statusText}` : failure.text;
}

/**
 * Decides after a failed try. `failedAttempts` counts the failures so far, this one included.
 * `random` is in [0, 1] (Math.random in production; fixed in tests).
 */
export function decideRetry(
  failure: Failure,
  failedAttempts: number,
  policy: RetryPolicy,
  env: { now: number; random: number },
): RetryDecision {
  const what = describeFailure(failure);
  if (failure.kind === 'status' && !isRetriedStatus(failure.status)) return { retry: false, reason: what };
  if (failure.kind === 'network' && !failure.transient) return { retry: false, reason: what };
  if (failedAttempts >= policy.attempts) {
    return { retry: false, reason: policy.attempts > 1 ? `${what} (gave up after ${failedAttempts} tries)` : what };
  }
  if (failure.kind === 'status') {
    const after = parseRetryAfter(failure.retryAfter, env.now);
    if (after !== undefined) {
      if (after > policy.maxRetryAfterMs) {
        return {
          retry: false,
          reason: `${what} (the server asks to retry after ${Math.ceil(after / 1000)} s, longer than the ${Math.round(policy.maxRetryAfterMs / 1000)} s tspod waits)`,
        };
      }
      return { retry: true, delayMs: after, reason: `${what}, Retry-After ${Math.ceil(after / 1000)} s` };
    }
  }
  return { retry: true, delayMs: backoffDelay(failedAttempts, policy, env.random), reason: what };
}

export type Sleep = (ms: number, signal?: AbortSignal) => Promise<void>;

export const realSleep: Sleep = async (ms, signal) => {
  await sleepTimer(ms, undefined, signal ? { signal } : undefined);
};

export interface RetryInfo {
  /** The try about to start (2 for the first retry). */
  attempt: number;
  delayMs: number;
  reason: string;
}

export interface RetrierOptions {
  policy?: RetryPolicy | undefined;
  sleep?: Sleep | undefined;
  random?: (() => number) | undefined;
  now?: (() => number) | undefined;
  signal?: AbortSignal | undefined;
  onRetry?: ((info: RetryInfo) => void) | undefined;
}

/** The retry state of one logical exchange (a GET with its redirects, or one download). */
export class Retrier {
  private failures = 0;
  private readonly policy: RetryPolicy;
  constructor(private readonly opts: RetrierOptions = {}) {
    this.policy = opts.policy ?? DEFAULT_RETRY_POLICY;
  }

  /** Bytes arrived since the last failure: the next failure counts as the first again. */
  progressed(): void {
    this.failures = 0;
  }

  /** Counts the failure and, when it is worth another try, waits the backoff and says so. */
  async afterFailure(failure: Failure): Promise<RetryDecision> {
    this.failures += 1;
    const decision = decideRetry(failure, this.failures, this.policy, {
      now: (this.opts.now ?? Date.now)(),
      random: (this.opts.random ?? Math.random)(),
    });
    if (decision.retry) {
      this.opts.onRetry?.({ attempt: this.failures + 1, delayMs: decision.delayMs, reason: decision.reason });
      try {
        await (this.opts.sleep ?? realSleep)(decision.delayMs, this.opts.signal);
      } catch (err) {
        // The deadline (or the caller) ended the wait: no further try.
        if (this.opts.signal?.aborted) return { retry: false, reason: `${decision.reason}; timed out waiting to try again` };
        throw err;
      }
    }
    return decision;
  }
}
