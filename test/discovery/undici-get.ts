// Test support: an HttpGet with getBytes' contract (src/http/client.ts: https only unless
// allowHttp, up to 10 redirects, 200 required, HttpError with `status`) bound to a test's own
// undici Agent, so its connections resolve names through tspod's resolver (`connect.lookup`)
// and trust the test CA. src/http's getBytes uses its shared Agents and cannot take ours.
import { STATUS_CODES } from 'node:http';

import { type Agent, request } from 'undici';

import type { HttpGet } from '../../src/discovery/http-get.js';
import { HttpError, MAX_REDIRECTS } from '../../src/http/client.js';

/** The deepest message of an error's cause chain (undici wraps the lookup/connect error). */
function deepestMessage(err: unknown): string {
  let e: unknown = err;
  let text = String(err);
  for (let depth = 0; e instanceof Error && depth < 6; e = e.cause, depth++) text = e.message;
  return text;
}

export function undiciGet(agent: Agent, requested: string[] = []): HttpGet {
  return async (url, opts) => {
    let current = new URL(url);
    for (let hop = 0; ; hop++) {
      if (current.protocol === 'http:' && !opts.allowHttp) {
        const where = current.href === url ? current.href : `${url} (redirected to ${current.href})`;
        throw new HttpError(where, 'plain http is not allowed', { suggestions: ['use an https:// URL, or pass --insecure-allow-http'] });
      }
      requested.push(current.href);
      let res: Awaited<ReturnType<typeof request>>;
      try {
        res = await request(current, { method: 'GET', dispatcher: agent, headers: { 'user-agent': 'tspod-test' } });
      } catch (err) {
        throw new HttpError(current.href, deepestMessage(err), { cause: err });
      }
      const status = res.statusCode;
      if ([301, 302, 303, 307, 308].includes(status)) {
        await res.body.dump();
        const location = res.headers.location;
        if (typeof location !== 'string') throw new HttpError(current.href, `${status} redirect without a Location header`, { status });
        if (hop + 1 > MAX_REDIRECTS) throw new HttpError(url, `more than ${MAX_REDIRECTS} redirects`, { status });
        current = new URL(location, current);
        continue;
      }
      if (status !== 200) {
        await res.body.dump();
        throw new HttpError(current.href, `${status} ${STATUS_CODES[status] ?? 'unexpected status'}`, { status });
      }
      const bytes = new Uint8Array(await res.body.arrayBuffer());
      if (opts.maxBytes !== undefined && bytes.length > opts.maxBytes) {
        throw new HttpError(current.href, `response exceeds the limit of ${opts.maxBytes} bytes`, { status });
      }
      return { bytes, finalUrl: current.href };
    }
  };
}
