// Test helper: an HTTPS front (test CA) for a test `docker-registry` (test/support/registry.ts)
// that speaks the Docker token protocol as a real registry does: every /v2/ request needs
// `Authorization: Bearer <token>`, else 401 with `WWW-Authenticate: Bearer realm=<front>/token,
// service=...,scope=repository:<name>:pull`; the realm hands out tokens (to Basic credentials of
// `users`, or to anyone when there are none). Tokens can expire after a number of registry requests
// or a time, the realm can be made to refuse, and 401s to blob requests can be held until several
// are waiting (so a test knows the blobs were in flight together). Blob GETs are redirected to
// `/storage/` on `localhost` (another host name than the registry's 127.0.0.1), as registries
// redirect to blob storage. Every request is recorded with the Authorization it carried.
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';

import type { TestRegistry } from './registry.js';

export interface SeenRequest {
  method: string;
  /** The path without the query. */
  path: string;
  query: URLSearchParams;
  host: string | undefined;
  authorization: string | undefined;
  /** The status the front answered with (the upstream's for proxied requests). */
  status: number;
}

export interface TokenRegistryOptions {
  registry: TestRegistry;
  tls: { cert: string; key: string };
  /** user -> password the realm accepts as Basic; none: anonymous tokens for anyone. */
  users?: Record<string, string>;
  /** The `service` of the challenge (checked by the realm). */
  service?: string;
  /**
   * Registry requests a token is good for (default: no limit), or a function of the token's
   * number (1 for the first issued). Changeable later.
   */
  tokenUses?: number | ((n: number) => number);
  /** Milliseconds a token is good for (default: no limit). Changeable later. */
  tokenTtlMs?: number;
  /** The realm waits this long before answering (a renewal stays in flight a while). */
  tokenDelayMs?: number;
  /** Redirect blob GETs to /storage/ on localhost (default true). */
  redirectBlobs?: boolean;
  /** Manifests need no token, only blobs do (some registries challenge blobs only). */
  anonymousManifests?: boolean;
}

export interface TokenRegistry {
  /** `https://127.0.0.1:PORT` */
  origin: string;
  /** `127.0.0.1:PORT`, the registry part of a reference. */
  host: string;
  seen: SeenRequest[];
  /** The realm's requests. */
  tokenRequests(): SeenRequest[];
  /** Registry requests answered 401 (method and path). */
  unauthorized(): SeenRequest[];
  tokenUses: number | ((n: number) => number);
  tokenTtlMs: number;
  /** The realm answers 401 to everyone while true. */
  refuseTokens: boolean;
  /** Hold the 401 answers to blob requests until this many wait (0: answer at once). */
  holdBlob401s: number;
  close(): Promise<void>;
}

const REGISTRY_PATH = /^\/v2\/(.+)\/(manifests|blobs)\/([^/]+)$/;

export async function startTokenRegistry(opts: TokenRegistryOptions): Promise<TokenRegistry> {
  const service = opts.service ?? 'test-registry';
  const tokens = new Map<string, { usesLeft: number; expiresAt: number }>();
  let issued = 0;
  let held: (() => void)[] = [];
  let holdTimer: NodeJS.Timeout | undefined;

  const releaseHeld = (): void => {
    clearTimeout(holdTimer);
    holdTimer = undefined;
    const waiting = held;
    held = [];
    for (const answer of waiting) answer();
  };

  const proxy = (pathname: string, req: http.IncomingMessage, res: http.ServerResponse, record: SeenRequest): void => {
    const headers: http.OutgoingHttpHeaders = { accept: req.headers.accept ?? '*/*' };
    if (req.headers.range) headers.range = req.headers.range;
    if (req.headers['if-range']) headers['if-range'] = String(req.headers['if-range']);
    const up = http.request(`http://${opts.registry.host}${pathname}`, { method: req.method, headers }, (upRes) => {
      const out: http.OutgoingHttpHeaders = {};
      for (const h of ['content-type', 'content-length', 'content-range', 'docker-content-digest', 'etag', 'last-modified']) if (upRes.headers[h]) out[h] = upRes.headers[h];
      record.status = upRes.statusCode ?? 502;
      res.writeHead(record.status, out);
      upRes.pipe(res);
    });
    up.on('error', () => {
      record.status = 502;
      res.writeHead(502).end();
    });
    up.end();
  };

  const front: TokenRegistry = {
    origin: '',
    host: '',
    seen: [],
    tokenRequests: () => front.seen.filter((s) => s.path === '/token'),
    unauthorized: () => front.seen.filter((s) => s.path.startsWith('/v2/') && s.status === 401),
    tokenUses: opts.tokenUses ?? Number.POSITIVE_INFINITY,
    tokenTtlMs: opts.tokenTtlMs ?? Number.POSITIVE_INFINITY,
    refuseTokens: false,
    holdBlob401s: 0,
    close: async () => {
      releaseHeld();
      await new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      });
    },
  };

  const answerToken = (req: http.IncomingMessage, res: http.ServerResponse, url: URL, record: SeenRequest): void => {
    const users = opts.users;
    let allowed = !front.refuseTokens && url.searchParams.get('service') === service && /^repository:[a-z0-9._/-]+:pull$/.test(url.searchParams.get('scope') ?? '');
    if (allowed && users !== undefined) {
      const m = /^Basic (.+)$/.exec(req.headers.authorization ?? '');
      const text = m ? Buffer.from(m[1]!, 'base64').toString('utf8') : '';
      const colon = text.indexOf(':');
      allowed = colon > 0 && users[text.slice(0, colon)] === text.slice(colon + 1);
    }
    setTimeout(() => {
      if (!allowed) {
        record.status = 401;
        res.writeHead(401, { 'content-type': 'application/json' }).end('{"errors":[{"code":"UNAUTHORIZED"}]}');
        return;
      }
      issued += 1;
      const token = `tok-${issued}`;
      const uses = typeof front.tokenUses === 'function' ? front.tokenUses(issued) : front.tokenUses;
      tokens.set(token, { usesLeft: uses, expiresAt: Date.now() + front.tokenTtlMs });
      record.status = 200;
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token, expires_in: 60 }));
    }, opts.tokenDelayMs ?? 0);
  };

  const server = https.createServer({ cert: opts.tls.cert, key: opts.tls.key }, (req, res) => {
    const url = new URL(req.url ?? '/', 'https://x');
    const record: SeenRequest = { method: req.method ?? 'GET', path: url.pathname, query: url.searchParams, host: req.headers.host, authorization: req.headers.authorization, status: 0 };
    front.seen.push(record);
    if (url.pathname === '/token') {
      answerToken(req, res, url, record);
      return;
    }
    if (url.pathname.startsWith('/storage/')) {
      // The blob storage host: reached by redirect only, with no credentials needed.
      proxy(`/v2/${url.pathname.slice('/storage/'.length)}`, req, res, record);
      return;
    }
    const m = REGISTRY_PATH.exec(url.pathname);
    if (!m) {
      record.status = 404;
      res.writeHead(404).end();
      return;
    }
    const [, name, kind, reference] = m;
    const bearer = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
    const grant = bearer === undefined ? undefined : tokens.get(bearer);
    const free = kind === 'manifests' && opts.anonymousManifests === true;
    if (!free && (grant === undefined || grant.usesLeft <= 0 || Date.now() > grant.expiresAt)) {
      record.status = 401;
      const challenge = `Bearer realm="${front.origin}/token",service="${service}",scope="repository:${name}:pull"${bearer === undefined ? '' : ',error="invalid_token"'}`;
      const answer = (): void => void res.writeHead(401, { 'www-authenticate': challenge, 'content-type': 'application/json' }).end('{"errors":[{"code":"UNAUTHORIZED"}]}');
      if (kind === 'blobs' && front.holdBlob401s > 0) {
        held.push(answer);
        // Never hang a test: whatever is held is answered after 5 s.
        holdTimer ??= setTimeout(releaseHeld, 5_000);
        if (held.length >= front.holdBlob401s) releaseHeld();
        return;
      }
      answer();
      return;
    }
    if (grant !== undefined && !free) grant.usesLeft -= 1;
    if (kind === 'blobs' && opts.redirectBlobs !== false) {
      record.status = 307;
      res.writeHead(307, { location: `https://localhost:${front.host.split(':')[1]}/storage/${name}/blobs/${reference}` }).end();
      return;
    }
    proxy(url.pathname, req, res, record);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  front.host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  front.origin = `https://${front.host}`;
  return front;
}
