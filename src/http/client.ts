// The HTTP layer (minimal for now): shared undici Agents, created lazily, one per TLS setting
// (verified with Node's default CA store + NODE_EXTRA_CA_CERTS, or `--insecure-options=tls`), and
// `getBytes` for small documents such as public keys and signatures: redirects (max 10), status 200
// only, a size cap, an overall timeout, and errors that name the URL and the cause.
import fs from 'node:fs';
import { STATUS_CODES } from 'node:http';
import { rootCertificates } from 'node:tls';

import { Agent, request } from 'undici';

import { TspodError } from '../errors.js';

/** A failed HTTP exchange: `get https://example.com/key.asc: 404 Not Found`. */
export class HttpError extends TspodError {
  readonly url: string;
  readonly status: number | undefined;
  constructor(url: string, cause: string, opts: { status?: number; cause?: unknown; suggestions?: string[] } = {}) {
    super(`get ${url}: ${cause}`, { cause: opts.cause, suggestions: opts.suggestions });
    this.url = url;
    this.status = opts.status;
  }
}

export interface TlsOptions {
  /** `--insecure-options=tls`: accept any server certificate. */
  insecureTls?: boolean;
  /** Extra CA certificates (PEM) to trust in addition to Node's defaults; for tests and config. */
  ca?: string;
}

export interface GetBytesOptions extends TlsOptions {
  /** `--insecure-allow-http`: permit plain http:// (also after a redirect). */
  allowHttp?: boolean;
  /** Refuse bodies larger than this (default 10 MiB). */
  maxBytes?: number;
  /** Overall deadline for the whole exchange, redirects included (default 30 s). */
  timeoutMs?: number;
}

export interface GetBytesResult {
  bytes: Uint8Array;
  /** The URL after redirects. */
  finalUrl: string;
}

export const MAX_REDIRECTS = 10;
const DEFAULT_MAX_BYTES = 10 * 1024 * 1024;
const DEFAULT_TIMEOUT_MS = 30_000;
const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);

const agents = new Map<string, Agent>();

/**
 * The shared Agent for a TLS setting, created on first use. Without `ca`, undici's connector
 * calls tls.connect with no `ca`, so Node's bundled roots plus NODE_EXTRA_CA_CERTS apply.
 */
export function getAgent(tls: TlsOptions = {}): Agent {
  const insecure = tls.insecureTls === true;
  const key = `${insecure}\0${tls.ca ?? ''}`;
  let agent = agents.get(key);
  if (!agent) {
    // Adding `ca` to tls.connect replaces the defaults, so append Node's roots to keep them.
    const ca = tls.ca === undefined ? undefined : [...defaultRootCertificates(), tls.ca];
    agent = new Agent({ connect: { rejectUnauthorized: !insecure, ...(ca ? { ca } : {}) } });
    agents.set(key, agent);
  }
  return agent;
}

/** Node's bundled roots plus NODE_EXTRA_CA_CERTS, which Node applies only when `ca` is not given. */
function defaultRootCertificates(): string[] {
  const roots = [...rootCertificates];
  const extra = process.env.NODE_EXTRA_CA_CERTS;
  if (extra) {
    try {
      roots.push(fs.readFileSync(extra, 'utf8'));
    } catch {
      // Node itself only warns about an unreadable NODE_EXTRA_CA_CERTS; do the same (nothing).
    }
  }
  return roots;
}

/** Closes every shared Agent (end of a command, tests). */
export async function closeAgents(): Promise<void> {
  const all = [...agents.values()];
  agents.clear();
  await Promise.all(all.map((a) => a.close()));
}

function checkScheme(url: URL, original: string, allowHttp: boolean): void {
  if (url.protocol === 'https:') return;
  if (url.protocol === 'http:') {
    if (allowHttp) return;
    throw new HttpError(original === url.href ? url.href : `${original} (redirected to ${url.href})`, 'plain http is not allowed', {
      suggestions: ['use an https:// URL, or pass --insecure-allow-http'],
    });
  }
  throw new HttpError(url.href, `unsupported URL scheme ${url.protocol.replace(/:$/, '')} (https only)`);
}

/** TLS and network failures in words; undici puts the system error in `cause`. */
function describeNetworkError(err: unknown): { text: string; suggestions: string[] } {
  const chain: { code?: string; message?: string; name?: string }[] = [];
  let e: unknown = err;
  while (e && typeof e === 'object' && chain.length < 5) {
    chain.push(e as { code?: string; message?: string });
    e = (e as { cause?: unknown }).cause;
  }
  const codes = chain.map((c) => c.code).filter((c): c is string => typeof c === 'string');
  const tlsCode = codes.find((c) => /CERT|SELF_SIGNED|UNABLE_TO|ERR_TLS/.test(c));
  const deepest = chain[chain.length - 1];
  if (tlsCode) {
    return {
      text: `TLS certificate not trusted: ${deepest?.message ?? tlsCode} (${tlsCode})`,
      suggestions: ['add the CA to NODE_EXTRA_CA_CERTS, or pass --insecure-options=tls (unsafe)'],
    };
  }
  if (chain.some((c) => c.name === 'TimeoutError' || c.name === 'AbortError')) return { text: 'timed out', suggestions: [] };
  const code = codes.find((c) => /^E[A-Z]+$/.test(c));
  return { text: `${deepest?.message ?? String(err)}${code && !deepest?.message?.includes(code) ? ` (${code})` : ''}`, suggestions: [] };
}

/**
 * GETs a small document into memory: https only (http with `allowHttp`), follows up to 10
 * redirects, requires 200, refuses bodies above `maxBytes` (by Content-Length, then while reading).
 */
export async function getBytes(url: string, opts: GetBytesOptions = {}): Promise<GetBytesResult> {
  const maxBytes = opts.maxBytes ?? DEFAULT_MAX_BYTES;
  const signal = AbortSignal.timeout(opts.timeoutMs ?? DEFAULT_TIMEOUT_MS);
  const dispatcher = getAgent(opts);
  let current: URL;
  try {
    current = new URL(url);
  } catch (err) {
    throw new HttpError(url, 'not a valid URL', { cause: err });
  }
  for (let hop = 0; ; hop++) {
    checkScheme(current, url, opts.allowHttp === true);
    let res: Awaited<ReturnType<typeof request>>;
    try {
      res = await request(current, { method: 'GET', dispatcher, signal, headers: { 'user-agent': 'tspod' } });
    } catch (err) {
      const { text, suggestions } = describeNetworkError(err);
      throw new HttpError(current.href, text, { cause: err, suggestions });
    }
    const status = res.statusCode;
    if (REDIRECT_STATUSES.has(status)) {
      await res.body.dump().catch(() => undefined);
      const location = res.headers.location;
      if (typeof location !== 'string') throw new HttpError(current.href, `${status} redirect without a Location header`, { status });
      if (hop + 1 > MAX_REDIRECTS) throw new HttpError(url, `more than ${MAX_REDIRECTS} redirects`, { status });
      current = new URL(location, current);
      continue;
    }
    if (status !== 200) {
      await res.body.dump().catch(() => undefined);
      throw new HttpError(current.href, `${status} ${STATUS_CODES[status] ?? 'unexpected status'}`, { status });
    }
    const declared = Number(res.headers['content-length']);
    if (Number.isFinite(declared) && declared > maxBytes) {
      res.body.on('error', () => undefined); // destroying a body emits an abort error: expected here
      res.body.destroy();
      throw new HttpError(current.href, `response of ${declared} bytes exceeds the limit of ${maxBytes} bytes`, { status });
    }
    const chunks: Buffer[] = [];
    let total = 0;
    try {
      for await (const chunk of res.body) {
        total += (chunk as Buffer).length;
        if (total > maxBytes) {
          // Leaving the for-await loop by throwing destroys the body.
          throw new HttpError(current.href, `response exceeds the limit of ${maxBytes} bytes`, { status });
        }
        chunks.push(chunk as Buffer);
      }
    } catch (err) {
      if (err instanceof HttpError) throw err;
      const { text } = describeNetworkError(err);
      throw new HttpError(current.href, `reading the response failed: ${text}`, { cause: err });
    }
    return { bytes: new Uint8Array(Buffer.concat(chunks, total)), finalUrl: current.href };
  }
}
