// The error of the HTTP layer and the words for what went wrong: `HttpError` (`get <url>: <cause>`
// with the status when there was one), network and TLS failures described from undici's cause
// chain, the URL scheme rule (https only; http with `--insecure-options=http`), and which network
// failures are transient (worth a retry) as opposed to final (TLS, DNS, refused).
import { TspodError } from '../errors.js';

/** A failed HTTP exchange: `get https://example.com/key.asc: 404 Not Found`. */
export class HttpError extends TspodError {
  readonly url: string;
  readonly status: number | undefined;
  constructor(
    url: string,
    cause: string,
    opts: { status?: number; cause?: unknown; suggestions?: string[]; operation?: string } = {},
  ) {
    super(`${opts.operation ?? 'get'} ${url}: ${cause}`, { cause: opts.cause, suggestions: opts.suggestions });
    this.url = url;
    this.status = opts.status;
  }
}

export const ALLOW_HTTP_SUGGESTION = 'use an https:// URL, or pass --insecure-options=http';

/** https only; http:// when `allowHttp` (`--insecure-options=http`), also after a redirect. */
export function checkScheme(url: URL, original: string, allowHttp: boolean, operation?: string): void {
  if (url.protocol === 'https:') return;
  if (url.protocol === 'http:') {
    if (allowHttp) return;
    throw new HttpError(original === url.href ? url.href : `${original} (redirected to ${url.href})`, 'plain http is not allowed', {
      suggestions: [ALLOW_HTTP_SUGGESTION],
      ...(operation === undefined ? {} : { operation }),
    });
  }
  throw new HttpError(url.href, `unsupported URL scheme ${url.protocol.replace(/:$/, '')} (https only)`, operation === undefined ? {} : { operation });
}

interface ErrorLink {
  code?: unknown;
  message?: string;
  name?: string;
}

function causeChain(err: unknown): ErrorLink[] {
  const chain: ErrorLink[] = [];
  let e: unknown = err;
  while (e && typeof e === 'object' && chain.length < 5) {
    chain.push(e as ErrorLink);
    e = (e as { cause?: unknown }).cause;
  }
  return chain;
}

function codesOf(err: unknown): string[] {
  return causeChain(err)
    .map((c) => c.code)
    .filter((c): c is string => typeof c === 'string');
}

/**
 * Network failures that a second try may not meet: the peer reset or closed the connection, a
 * connect/headers/body timeout, a temporary DNS failure. Not: TLS (a certificate does not get
 * better), a name that does not exist, a refused connection (nothing listens), our own abort.
 */
const TRANSIENT_CODES = new Set([
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EAI_AGAIN',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
]);

export function isTransientNetworkError(err: unknown): boolean {
  return codesOf(err).some((c) => TRANSIENT_CODES.has(c));
}

/** TLS and network failures in words; undici puts the system error in `cause`. */
export function describeNetworkError(err: unknown, context: { idleTimeoutMs?: number } = {}): { text: string; suggestions: string[] } {
  const chain = causeChain(err);
  const codes = codesOf(err);
  const tlsCode = codes.find((c) => /CERT|SELF_SIGNED|UNABLE_TO|ERR_TLS/.test(c));
  const deepest = chain[chain.length - 1];
  if (tlsCode) {
    return {
      text: `TLS certificate not trusted: ${deepest?.message ?? tlsCode} (${tlsCode})`,
      suggestions: ['add the CA to NODE_EXTRA_CA_CERTS, or pass --insecure-options=tls (unsafe)'],
    };
  }
  if (codes.includes('UND_ERR_HEADERS_TIMEOUT') || codes.includes('UND_ERR_BODY_TIMEOUT')) {
    const phase = codes.includes('UND_ERR_HEADERS_TIMEOUT') ? 'response headers' : 'response body';
    const ms = context.idleTimeoutMs === undefined ? '' : ` for ${context.idleTimeoutMs} ms`;
    return { text: `no data${ms} while waiting for the ${phase} (idle timeout)`, suggestions: [] };
  }
  if (chain.some((c) => c.name === 'TimeoutError' || c.name === 'AbortError')) return { text: 'timed out', suggestions: [] };
  if (codes.includes('UND_ERR_SOCKET')) {
    return { text: `connection closed by the server (${deepest?.message ?? 'socket error'})`, suggestions: [] };
  }
  const code = codes.find((c) => /^E[A-Z_]+$/.test(c));
  return { text: `${deepest?.message ?? String(err)}${code && !deepest?.message?.includes(code) ? ` (${code})` : ''}`, suggestions: [] };
}
