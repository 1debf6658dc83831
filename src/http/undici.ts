// undici's Agent and `request`, loaded without undici's index module. The index also loads fetch,
// WebSocket, EventSource, cookies, the mock agents and the caches, none of which tspod uses: here
// `require('undici')` takes 70-90 ms against about 28 ms for the two modules below, and every
// remote fetch pays it before its first request. The two paths are inside undici's package
// (undici 7 has no `exports` map that would forbid them); if a release moves them, the index is
// loaded instead, so a moved file costs start-up time, never a failure.
import { createRequire } from 'node:module';

import type { Agent as UndiciAgent, Dispatcher } from 'undici';

const requireCjs = createRequire(import.meta.url);

export type Agent = UndiciAgent;
export type ResponseData = Dispatcher.ResponseData;
export type RequestOptions = Omit<Dispatcher.RequestOptions, 'origin' | 'path'> & { dispatcher: Dispatcher };

interface Loaded {
  Agent: typeof UndiciAgent;
  request: (url: URL, opts: RequestOptions) => Promise<ResponseData>;
}

let loaded: Loaded | undefined;

function load(): Loaded {
  if (loaded !== undefined) return loaded;
  try {
    const AgentClass = requireCjs('undici/lib/dispatcher/agent.js') as typeof UndiciAgent;
    const apiRequest = requireCjs('undici/lib/api/api-request.js') as (this: Dispatcher, opts: Dispatcher.RequestOptions) => Promise<ResponseData>;
    if (typeof AgentClass !== 'function' || typeof apiRequest !== 'function') throw new Error('undici layout changed');
    loaded = {
      Agent: AgentClass,
      // What undici's own `request(url, opts)` does before it calls the dispatcher.
      request: (url, { dispatcher, ...opts }) => apiRequest.call(dispatcher, { ...opts, origin: url.origin, path: `${url.pathname}${url.search}`, method: opts.method ?? 'GET' }),
    };
  } catch {
    const undici = requireCjs('undici') as typeof import('undici');
    loaded = { Agent: undici.Agent, request: (url, opts) => undici.request(url, opts) };
  }
  return loaded;
}

/** A new undici Agent (see undici's Agent.Options). */
export function createAgent(options: UndiciAgent.Options): UndiciAgent {
  return new (load().Agent)(options);
}

/** One request through `opts.dispatcher`, as undici's `request(url, opts)`. */
export function request(url: URL, opts: RequestOptions): Promise<ResponseData> {
  return load().request(url, opts);
}
