// Remote image references to endpoints: an https:// URL (http:// with --insecure-options=http)
// is its own endpoint with the signature at `<url>.asc` (rkt's rule, rkt-notes §4.3); an appc name
// is discovered (src/discovery: meta tags, the prefix walk, the DNS TXT fallback) and each
// endpoint it yields is tried in order until one gives the image. A failure another endpoint may
// not have (HTTP, a missing signature) moves on to the next; a refusal (untrusted signer, wrong
// name, bad signature) ends the fetch. When every endpoint fails, one error lists every step,
// discovery's own included. This module (and undici, htmlparser2, openpgp behind it) is loaded
// only when a reference needs the network.
import { formatDiscoveryApp, parseDiscoveryApp, requiredManifestLabels, type DiscoveryApp } from '../discovery/name.js';
import { DiscoveryError, discoverEndpoints } from '../discovery/discover.js';
import type { HttpGet } from '../discovery/http-get.js';
import { UsageError } from '../errors.js';
import { getBytes } from '../http/client.js';
import { ALLOW_HTTP_SUGGESTION } from '../http/http-error.js';
import type { FetchContext, FetchRequest, ImageFetch } from './context.js';
import { endpointFailureStep, fetchEndpoint, networkOf, type EndpointPolicy } from './remote-aci.js';

export { closeAgents } from '../http/client.js';

function policyOf(request: FetchRequest): EndpointPolicy {
  return { pullPolicy: request.pullPolicy ?? 'update', noStore: request.noStore === true };
}

/** `https://host/path/app.aci`: the image, with its signature at `app.aci.asc` (or --signature). */
export async function fetchFromUrl(url: string, ctx: FetchContext, request: FetchRequest = {}): Promise<ImageFetch> {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch (err) {
    throw new UsageError(`fetch ${url}: not a valid URL`, { cause: err });
  }
  if (parsed.protocol === 'http:' && !ctx.insecure.http) {
    throw new UsageError(`fetch ${url}: plain http is not allowed (anyone on the path could change the image and its signature)`, {
      suggestions: [ALLOW_HTTP_SUGGESTION],
    });
  }
  const asc = new URL(parsed.href);
  asc.pathname += '.asc';
  return fetchEndpoint(
    ctx,
    {
      endpoint: { aci: parsed.href, asc: asc.href },
      what: url,
      label: fileNameOf(parsed),
      ...(request.expectedName === undefined ? {} : { expectedName: request.expectedName }),
      labels: request.labels ?? [],
      kind: parsed.protocol === 'http:' ? 'http' : 'https',
      ...(request.signaturePath === undefined ? {} : { signaturePath: request.signaturePath }),
    },
    policyOf(request),
  );
}

/** `app-1.0.aci` of `https://example.com/images/app-1.0.aci`: the part of a URL that fits a progress bar. */
function fileNameOf(url: URL): string {
  const last = url.pathname.split('/').filter((p) => p !== '').at(-1);
  if (last === undefined) return url.host;
  try {
    return decodeURIComponent(last);
  } catch {
    return last; // not valid percent-encoding: shown as it is
  }
}

/** `example.com/app:1.0` plus `--label`s: appc discovery, then the endpoints in order. */
export async function fetchByName(ref: string, ctx: FetchContext, request: FetchRequest = {}): Promise<ImageFetch> {
  if (request.signaturePath !== undefined) {
    throw new UsageError(`fetch ${ref}: --signature is for image files and URLs; discovery finds the signature next to the image`);
  }
  const app = parseDiscoveryApp(ref, { labels: (request.labels ?? []).map((l) => `${l.name}=${l.value}`) });
  return fetchDiscovered(app, ref, ctx, policyOf(request));
}

/** Discovers `app` and fetches the first endpoint that works; `what` names it in messages. */
export async function fetchDiscovered(app: DiscoveryApp, what: string, ctx: FetchContext, policy: EndpointPolicy): Promise<ImageFetch> {
  const net = await networkOf(ctx);
  const get: HttpGet = (url, opts) =>
    getBytes(url, { ...net.http, allowHttp: opts.allowHttp === true, ...(opts.maxBytes === undefined ? {} : { maxBytes: opts.maxBytes }) });
  const found = await discoverEndpoints(app, { get, allowHttp: ctx.insecure.http, dns: net.resolver });
  ctx.progress?.log(`tspod: discovered ${what} at ${found.source}`);
  const tried = [...found.tried];
  for (const endpoint of found.endpoints) {
    try {
      return await fetchEndpoint(
        ctx,
        {
          endpoint,
          what,
          expectedName: app.name,
          labels: requiredManifestLabels(app),
          kind: 'discovery',
          discovery: formatDiscoveryApp(app),
          publicKeys: found.publicKeys,
        },
        policy,
      );
    } catch (err) {
      const step = endpointFailureStep(err);
      if (step === undefined) throw err;
      tried.push(step);
    }
  }
  const suggestions = ['check that the server publishes the image and its signature at the discovered URLs'];
  if (!ctx.insecure.http && found.endpoints.some((e) => e.aci.startsWith('http:'))) suggestions.push(ALLOW_HTTP_SUGGESTION);
  throw new DiscoveryError(`fetch ${what}: discovered at ${found.source}, but no endpoint gave the image`, tried, suggestions);
}
