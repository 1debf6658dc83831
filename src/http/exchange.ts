// One logical HTTP GET up to its response headers: the URL scheme rule, redirects (at most 10,
// each hop's scheme checked again), the Authorization header computed per hop from auth.d (so a
// redirect to another host carries none: auth.ts), retries of 5xx/429/transient network failures
// with backoff (retry.ts), an idle timeout for the headers and the body (undici's headersTimeout
// and bodyTimeout, which do not run while the reader applies backpressure), and the caller's
// deadline as an AbortSignal. The caller says which final statuses it handles (200, 206, 304...);
// any other final status becomes an HttpError naming the URL and the status.
import { STATUS_CODES } from 'node:http';

import { getAgent, type AgentOptions } from './agent.js';
import { authorizationHeader, credentialsFor, type AuthConfig, type HostCredentials } from './auth.js';
import { checkScheme, describeNetworkError, HttpError, isTransientNetworkError } from './http-error.js';
import type { Retrier } from './retry.js';
import { request, type ResponseData } from './undici.js';

export const MAX_REDIRECTS = 10;
const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);
export const USER_AGENT = 'tspod';

export interface ExchangeOptions extends AgentOptions {
  /** `--insecure-options=http`: permit plain http:// (also after a redirect). */
  allowHttp?: boolean | undefined;
  /** Per-host credentials (auth.d); sent over https to their own host only. */
  auth?: AuthConfig | undefined;
}

export interface OpenOptions extends ExchangeOptions {
  method?: 'GET' | 'HEAD';
  headers?: Record<string, string>;
  /** The deadline (and any caller abort) for the whole exchange. */
  signal: AbortSignal;
  /** No byte for this long while waiting for headers or body: the try fails (and may be retried). */
  idleTimeoutMs?: number | undefined;
  /** Statuses the caller handles; anything else that is not a redirect fails. */
  accept: (status: number) => boolean;
  /** The retry state; shared when a caller (download) retries body failures too. */
  retrier: Retrier;
  /** The verb of error messages: `get` (default) or `download`. */
  operation?: string;
}

export type ResponseBody = Awaited<ReturnType<typeof request>>['body'];

export interface OpenedResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: ResponseBody;
  /** The URL that answered (after redirects). */
  url: URL;
  /** The credentials sent to that URL, if any. */
  credentials: HostCredentials | undefined;
}

export function headerValue(headers: Record<string, string | string[] | undefined>, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
}

export function statusText(status: number): string {
  return STATUS_CODES[status] ?? 'unexpected status';
}

function authSuggestions(status: number, url: URL, credentials: HostCredentials | undefined): string[] {
  if (status !== 401 && status !== 403) return [];
  if (credentials) return [`check the credentials for ${credentials.domain} in ${credentials.file}`];
  if (url.protocol !== 'https:') return [];
  return [`add credentials for ${url.host} to an auth.d/*.json file of the local config (rktKind "auth")`];
}

/** Sends the GET, follows redirects, retries what is worth retrying, returns the final response. */
export async function openResponse(url: string, opts: OpenOptions): Promise<OpenedResponse> {
  const operation = opts.operation ?? 'get';
  const dispatcher = getAgent(opts);
  let current: URL;
  try {
    current = new URL(url);
  } catch (err) {
    throw new HttpError(url, 'not a valid URL', { cause: err, operation });
  }
  for (let hop = 0; ; ) {
    checkScheme(current, url, opts.allowHttp === true, operation);
    const credentials = credentialsFor(opts.auth, current);
    const headers: Record<string, string> = { 'user-agent': USER_AGENT, ...opts.headers };
    if (credentials) headers.authorization = authorizationHeader(credentials);
    let res: ResponseData;
    try {
      res = await request(current, {
        method: opts.method ?? 'GET',
        dispatcher,
        signal: opts.signal,
        headers,
        ...(opts.idleTimeoutMs === undefined ? {} : { headersTimeout: opts.idleTimeoutMs, bodyTimeout: opts.idleTimeoutMs }),
      });
    } catch (err) {
      const { text, suggestions } = describeNetworkError(err, { idleTimeoutMs: opts.idleTimeoutMs });
      if (!opts.signal.aborted) {
        const decision = await opts.retrier.afterFailure({ kind: 'network', transient: isTransientNetworkError(err), text });
        if (decision.retry) continue;
        throw new HttpError(current.href, decision.reason, { cause: err, suggestions, operation });
      }
      throw new HttpError(current.href, text, { cause: err, suggestions, operation });
    }
    const status = res.statusCode;
    if (REDIRECT_STATUSES.has(status)) {
      await res.body.dump().catch(() => undefined);
      const location = headerValue(res.headers, 'location');
      if (location === undefined) throw new HttpError(current.href, `${status} redirect without a Location header`, { status, operation });
      if (hop + 1 > MAX_REDIRECTS) throw new HttpError(url, `more than ${MAX_REDIRECTS} redirects`, { status, operation });
      hop += 1;
      current = new URL(location, current);
      continue;
    }
    if (opts.accept(status)) {
      return { status, headers: res.headers, body: res.body, url: current, credentials };
    }
    await res.body.dump().catch(() => undefined);
    const decision = await opts.retrier.afterFailure({
      kind: 'status',
      status,
      statusText: statusText(status),
      retryAfter: headerValue(res.headers, 'retry-after'),
    });
    if (decision.retry) continue;
    throw new HttpError(current.href, decision.reason, { status, suggestions: authSuggestions(status, current, credentials), operation });
  }
}
