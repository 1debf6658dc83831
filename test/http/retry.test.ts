// The retry decision as data: which failures are retried, the backoff steps, Retry-After in both
// forms, the give-up rules. No network here (the servers are in download and connections tests).
import { STATUS_CODES } from 'node:http';

import { describe, expect, it } from 'vitest';

import {
  backoffDelay,
  decideRetry,
  DEFAULT_RETRY_POLICY,
  isRetriedStatus,
  parseRetryAfter,
  Retrier,
  type Failure,
  type RetryPolicy,
} from '../../src/http/retry.js';

const policy: RetryPolicy = { attempts: 4, baseDelayMs: 100, maxDelayMs: 1000, maxRetryAfterMs: 30_000 };
const env = { now: Date.parse('2024-05-01T12:00:00Z'), random: 1 };
const status = (s: number, retryAfter?: string): Failure => ({ kind: 'status', status: s, statusText: STATUS_CODES[s] ?? '', retryAfter });

describe('which failures are retried', () => {
  const cases: [string, Failure, boolean][] = [
    ['500', status(500), true],
    ['502', status(502), true],
    ['503', status(503), true],
    ['504', status(504), true],
    ['429', status(429), true],
    ['501 Not Implemented (RFC 9110 §15.6.2)', status(501), false],
    ['505 HTTP Version Not Supported', status(505), false],
    ['400', status(400), false],
    ['401', status(401), false],
    ['403', status(403), false],
    ['404', status(404), false],
    ['408', status(408), false],
    ['410', status(410), false],
    ['a connection reset (transient)', { kind: 'network', transient: true, text: 'reset' }, true],
    ['a TLS failure (not transient)', { kind: 'network', transient: false, text: 'tls' }, false],
  ];
  it.each(cases.map(([name, failure, retried]) => [name, retried, failure] as const))('%s -> retried: %s', (_name, retried, failure) => {
    expect(decideRetry(failure, 1, policy, env).retry).toBe(retried);
  });

  it('isRetriedStatus agrees for every status 400-599', () => {
    const retried = [];
    for (let s = 400; s < 600; s++) if (isRetriedStatus(s)) retried.push(s);
    expect(retried).toContain(429);
    expect(retried.filter((s) => s < 500)).toEqual([429]);
    expect(retried).not.toContain(501);
    expect(retried).not.toContain(505);
    expect(retried.filter((s) => s >= 500).length).toBe(98);
  });
});

describe('backoff', () => {
  it('doubles from the base up to the cap (random = 1 gives the full step)', () => {
    expect([1, 2, 3, 4, 5, 6].map((n) => backoffDelay(n, policy, 1))).toEqual([100, 200, 400, 800, 1000, 1000]);
  });

  it('keeps at least half the step whatever the jitter (random = 0)', () => {
    expect([1, 2, 3].map((n) => backoffDelay(n, policy, 0))).toEqual([50, 100, 200]);
  });

  it('gives up after policy.attempts tries and says so', () => {
    const d = decideRetry(status(503), 4, policy, env);
    expect(d).toEqual({ retry: false, reason: '503 Service Unavailable (gave up after 4 tries)' });
  });

  it('with one attempt (no retry) the reason is the bare failure', () => {
    expect(decideRetry(status(503), 1, { ...policy, attempts: 1 }, env)).toEqual({ retry: false, reason: '503 Service Unavailable' });
  });
});

describe('Retry-After (RFC 9110 §10.2.3)', () => {
  it('parses delay-seconds and HTTP-dates, past dates as 0, garbage as undefined', () => {
    expect(parseRetryAfter('120', env.now)).toBe(120_000);
    expect(parseRetryAfter(' 0 ', env.now)).toBe(0);
    expect(parseRetryAfter('Wed, 01 May 2024 12:00:30 GMT', env.now)).toBe(30_000);
    expect(parseRetryAfter('Wed, 01 May 2024 11:00:00 GMT', env.now)).toBe(0);
    expect(parseRetryAfter('soon', env.now)).toBeUndefined();
    expect(parseRetryAfter('-5', env.now)).toBeUndefined();
    expect(parseRetryAfter(undefined, env.now)).toBeUndefined();
  });

  it('a 429 waits exactly what Retry-After says instead of the backoff', () => {
    expect(decideRetry(status(429, '7'), 1, policy, env)).toEqual({ retry: true, delayMs: 7000, reason: '429 Too Many Requests, Retry-After 7 s' });
  });

  it('a 503 with an HTTP-date Retry-After waits until then', () => {
    const d = decideRetry(status(503, 'Wed, 01 May 2024 12:00:02 GMT'), 1, policy, env);
    expect(d).toMatchObject({ retry: true, delayMs: 2000 });
  });

  it('a Retry-After longer than maxRetryAfterMs stops with the server request in the reason', () => {
    const d = decideRetry(status(429, '3600'), 1, policy, env);
    expect(d).toEqual({
      retry: false,
      reason: '429 Too Many Requests (the server asks to retry after 3600 s, longer than the 30 s tspod waits)',
    });
  });

  it('an unparsable Retry-After falls back to the backoff', () => {
    expect(decideRetry(status(503, 'later'), 2, policy, env)).toMatchObject({ retry: true, delayMs: 200 });
  });
});

describe('Retrier', () => {
  it('counts failures, sleeps the decided delays, reports each retry, and starts over after progress', async () => {
    const slept: number[] = [];
    const retries: number[] = [];
    const r = new Retrier({
      policy,
      random: () => 1,
      sleep: async (ms) => void slept.push(ms),
      onRetry: (info) => retries.push(info.attempt),
    });
    expect((await r.afterFailure(status(503))).retry).toBe(true);
    expect((await r.afterFailure(status(503))).retry).toBe(true);
    r.progressed();
    expect((await r.afterFailure(status(503))).retry).toBe(true);
    expect(slept).toEqual([100, 200, 100]);
    expect(retries).toEqual([2, 3, 2]);
    await r.afterFailure(status(503));
    await r.afterFailure(status(503));
    const last = await r.afterFailure(status(503));
    expect(last.retry).toBe(false);
    expect(slept).toEqual([100, 200, 100, 200, 400]);
  });

  it('never sleeps for a 404', async () => {
    const slept: number[] = [];
    const r = new Retrier({ policy: DEFAULT_RETRY_POLICY, sleep: async (ms) => void slept.push(ms) });
    expect(await r.afterFailure(status(404))).toEqual({ retry: false, reason: '404 Not Found' });
    expect(slept).toEqual([]);
  });
});
