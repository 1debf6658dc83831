// The HTTP getter discovery is given (never constructs): the shape of `getBytes` in
// src/http/client.ts, so the command layer passes that (bound to its Agent, TLS options and
// resolver) and tests pass one bound to a local undici Agent. Plus the one-line wording of a
// failed step (`404 Not Found`, `no such domain ...`) for the `tried ...` lists.
import { UsageError } from '../errors.js';

export interface HttpGetOptions {
  /** Permit `http://` (also after a redirect): `--insecure-options=http`. */
  allowHttp?: boolean;
  /** Refuse bodies above this many bytes. */
  maxBytes?: number;
}

/** Follows redirects, requires 200, throws (an HttpError with `status` for HTTP statuses). */
export type HttpGet = (url: string, opts: HttpGetOptions) => Promise<{ bytes: Uint8Array; finalUrl: string }>;

/** Discovery pages and keys are small; a larger answer is not one. */
export const DEFAULT_MAX_PAGE_BYTES = 1024 * 1024;

/** An error the steps record instead of propagating: HTTP, DNS and other expected failures. */
export function isStepFailure(err: unknown): err is Error {
  if (!(err instanceof Error)) return false;
  // Bad input or configuration (a malformed TSPOD_NAMESERVER) fails every step alike: say it once.
  if (err instanceof UsageError) return false;
  // Bugs (TypeError, ReferenceError, ...) must surface, not become a line in a list.
  return !(err instanceof TypeError || err instanceof ReferenceError || err instanceof RangeError || err instanceof SyntaxError);
}

/**
 * The cause part of an error message: `get https://x/y: 404 Not Found` -> `404 Not Found`,
 * `resolve TXT _appc-discovery.x: no such domain ...` -> `no such domain ...`. The URL is
 * dropped (callers name it), a redirect note is kept: `redirected to http://b: plain http is ...`.
 */
export function failureText(err: Error): string {
  const status = (err as { status?: unknown }).status;
  const m = /^(?:get|resolve [A-Z0-9/]+) \S+(?: \((redirected to \S+)\))?: (.*)$/s.exec(err.message);
  const text = m ? (m[1] ? `${m[1]}: ${m[2]}` : m[2]!) : err.message;
  if (typeof status === 'number' && !text.includes(String(status))) return `${status} ${text}`;
  return text;
}
