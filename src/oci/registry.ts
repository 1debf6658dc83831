// The OCI distribution-spec client of tspod (pull side only), on the project's HTTP layer
// (src/http): manifests by tag or digest, blobs streamed to the store's tmp area, both verified
// against their digest, and the registry's authentication challenges.
//
// - Manifests: GET /v2/<name>/manifests/<reference> with an Accept header listing OCI manifest and
//   index and Docker schema 2 manifest and list (distribution-spec "Pulling manifests"). The body's
//   sha256 is computed here: `Docker-Content-Digest` is only compared, never trusted alone
//   (distribution-spec: "the client SHOULD verify the returned manifest signature/digest").
// - Blobs: GET /v2/<name>/blobs/<digest> through download.ts (resume with Range/If-Range, retries,
//   redirects); the sha256 is computed in `onData` while the bytes stream (image-spec
//   descriptor.md "Verification"), the size is capped at the descriptor's, and a mismatch removes
//   the file: nothing unverified is handed on.
// - Authentication (distribution-spec refers to the Docker token protocol): a 401 with
//   `WWW-Authenticate: Bearer realm=...,service=...,scope=...` is answered by a GET of the realm
//   (with the user's credentials as Basic when there are some, anonymous otherwise) and the token is
//   sent as `Bearer`; `Basic` challenges get the user's credentials. The header is attached through
//   an AuthConfig entry for the registry's host only, so exchange.ts computes it per hop and a
//   redirect to blob storage on another host carries none; like auth.d credentials, it is sent over
//   https only.
// - Renewal: a token can expire mid-pull. A 401 on a manifest or a blob (download.ts reports it as
//   an HttpError with status 401) gets one fresh token for the challenge answered before (same
//   scope, same credentials) and one retry; a second 401 in a row is an error. Concurrent requests
//   that were refused the same token share one renewal (one in-flight promise), so three layers
//   downloading in parallel make one token request, not three.
// - Plain http only with `allowHttp` (`--insecure-options=http`); then the registry is spoken to
//   over http (no https attempt first).
import crypto from 'node:crypto';
import fs from 'node:fs';

import { TspodError, ImageFormatError } from '../errors.js';
import type { AuthConfig, HostCredentials } from '../http/auth.js';
import { download, type DownloadEvent } from '../http/download.js';
import { headerValue, openResponse, type ExchangeOptions } from '../http/exchange.js';
import { HttpError } from '../http/http-error.js';
import { DEFAULT_RETRY_POLICY, Retrier, type RetryPolicy, type Sleep } from '../http/retry.js';
import type { Syscalls } from '../sys/types.js';
import type { RegistryCredentials } from './docker-auth.js';
import { selectPlatform, type PlatformWanted } from './platform.js';
import { sha256Digest } from './layout.js';
import { isIndexMediaType, isManifestMediaType, MANIFEST_ACCEPT, type Descriptor } from './media-types.js';
import { formatReference, isDigest, type ImageReference } from './reference.js';

/** distribution-spec: registries SHOULD accept manifests up to 4 MiB; refuse larger ones. */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;
const MANIFEST_TIMEOUT_MS = 60_000;

export class RegistryError extends TspodError {}

export interface RegistryClientOptions extends Omit<ExchangeOptions, 'auth'> {
  /** Where blob downloads are written (the store's tmp area). */
  tmpDir: string;
  sys: Syscalls;
  /** From docker-auth.ts; undefined: anonymous. */
  credentials?: RegistryCredentials | undefined;
  retry?: RetryPolicy;
  sleep?: Sleep;
  onProgress?: (digest: string, event: DownloadEvent) => void;
  signal?: AbortSignal;
}

export interface FetchedManifest {
  /** sha256 of `bytes`, computed here. */
  digest: string;
  mediaType: string;
  bytes: Uint8Array;
  /** The parsed JSON (an image manifest or an index). */
  json: ManifestDocument;
}

export interface ManifestDocument {
  schemaVersion: number;
  mediaType?: string;
  config?: Descriptor;
  layers?: Descriptor[];
  manifests?: Descriptor[];
  annotations?: Record<string, string>;
}

export interface FetchedBlob {
  /** A file in tmpDir whose sha256 is `digest`; the caller moves or removes it. */
  path: string;
  digest: string;
  size: number;
}

export interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

/** RFC 9110 §11.6.1 WWW-Authenticate: `Scheme k="v", k2=v2` (one challenge, the first). */
export function parseChallenge(header: string): Challenge | undefined {
  const m = /^\s*([A-Za-z][\w-]*)\s*(.*)$/s.exec(header);
  if (!m) return undefined;
  const params: Record<string, string> = {};
  const re = /([\w-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*,?\s*/gy;
  const rest = m[2] ?? '';
  re.lastIndex = 0;
  let p: RegExpExecArray | null;
  while (re.lastIndex < rest.length && (p = re.exec(rest)) !== null) {
    params[p[1]!.toLowerCase()] = p[2] !== undefined ? p[2].replace(/\\(.)/g, '$1') : (p[3] ?? '');
  }
  return { scheme: m[1]!.toLowerCase(), params };
}

/** The token endpoint URL: realm with `service` and `scope` (Docker token protocol). */
export function tokenUrl(challenge: Challenge, repository: string): URL {
  const realm = challenge.params.realm;
  if (realm === undefined || realm === '') throw new RegistryError('authenticate to the registry: the bearer challenge has no realm');
  const url = new URL(realm);
  if (challenge.params.service) url.searchParams.set('service', challenge.params.service);
  url.searchParams.set('scope', challenge.params.scope ?? `repository:${repository}:pull`);
  return url;
}


export class RegistryClient {
  private readonly base: string;
  private authorization: HostCredentials['credentials'] | undefined;
  /** Where `authorization` came from, for the 401/403 suggestion of exchange.ts. */
  private authorizationSource = '';
  /** A document request succeeded: any challenge has been answered. */
  private probed = false;
  /** The challenge answered last: a renewal asks the same realm for the same scope. */
  private challenge: Challenge | undefined;
  /** The renewal in flight, shared by every request refused the same authorization. */
  private renewal: Promise<void> | undefined;
  private readonly host: string;

  constructor(
    readonly ref: ImageReference,
    private readonly opts: RegistryClientOptions,
  ) {
    const scheme = opts.allowHttp === true ? 'http' : 'https';
    this.base = `${scheme}://${ref.endpoint}/v2/${ref.repository}`;
    this.host = new URL(`${scheme}://${ref.endpoint}`).host;
  }

  private get name(): string {
    return formatReference(this.ref);
  }

  /** The credentials of the registry host only (exchange.ts attaches them per hop, https only). */
  private authConfig(): AuthConfig | undefined {
    if (this.authorization === undefined) return undefined;
    const entry: HostCredentials = { domain: this.host, credentials: this.authorization, file: this.authorizationSource, layer: 'local' };
    return { hosts: new Map([[this.host, entry]]), dockerRegistries: new Map() };
  }

  private exchangeOptions(): ExchangeOptions {
    const { allowHttp, insecureTls, ca, lookup } = this.opts;
    return {
      ...(allowHttp === undefined ? {} : { allowHttp }),
      ...(insecureTls === undefined ? {} : { insecureTls }),
      ...(ca === undefined ? {} : { ca }),
      ...(lookup === undefined ? {} : { lookup }),
      auth: this.authConfig(),
    };
  }

  /** What to do about refused credentials: check them, or log in when there are none. */
  private authSuggestions(): string[] {
    const creds = this.opts.credentials;
    return creds
      ? [`check the credentials for ${this.ref.registry} in ${creds.source}`]
      : [`log in with podman login ${this.ref.registry} (writes \${XDG_RUNTIME_DIR}/containers/auth.json) or add a dockerAuth entry to auth.d`];
  }

  /**
   * Answers a 401 to a request sent with `sent` (the authorization it carried). Requests refused
   * the same authorization share one renewal; one that was sent before a renewal finished just
   * retries with the new authorization. `header` is the 401's WWW-Authenticate when the caller has
   * it (download.ts does not pass it on): without it, the challenge answered before is answered
   * again, else the challenge is asked for with a HEAD of `url`.
   */
  private async reauthenticate(sent: RegistryClient['authorization'], header: string | undefined, url: string): Promise<void> {
    if (this.authorization !== sent) return;
    if (this.renewal === undefined) {
      this.renewal = (async () => {
        if (new URL(url).protocol !== 'https:') {
          // auth.ts's rule, kept for registry credentials and tokens alike.
          throw new RegistryError(`get ${url}: the registry asks for credentials over plain http; tspod sends credentials over https only`, {
            suggestions: [`serve ${this.ref.registry} over https (pass --insecure-options=tls for a self-signed certificate)`],
          });
        }
        let challengeHeader = header;
        if (challengeHeader === undefined && this.challenge === undefined) {
          const probe = await this.readSmall(url, { method: 'HEAD', accept: '*/*', auth: this.authConfig(), maxBytes: 0, accept401: true });
          challengeHeader = headerValue(probe.headers, 'www-authenticate');
        }
        await this.authenticate(challengeHeader, url);
      })().finally(() => {
        this.renewal = undefined;
      });
    }
    await this.renewal;
  }

  /** The error of a 401 that came right after a renewal: the registry refuses what it was given. */
  private refused(url: string): RegistryError {
    const what = this.authorization?.type === 'basic' ? `the credentials from ${this.authorizationSource}` : `a fresh token (${this.authorizationSource})`;
    return new RegistryError(`get ${url}: 401 Unauthorized again: ${this.ref.registry} refused ${what}`, { suggestions: this.authSuggestions() });
  }

  /**
   * Runs a request that reports a 401 as an HttpError (a blob download); on a 401, renews the
   * authorization once (shared with concurrent requests), calls `reset` and tries once more.
   */
  private async retryOn401<T>(url: string, reset: () => void, attempt: () => Promise<T>): Promise<T> {
    const is401 = (err: unknown): boolean => err instanceof HttpError && err.status === 401;
    const sent = this.authorization;
    try {
      return await attempt();
    } catch (err) {
      if (!is401(err)) throw err;
    }
    await this.reauthenticate(sent, undefined, url);
    reset();
    try {
      return await attempt();
    } catch (err) {
      if (is401(err)) throw this.refused(url);
      throw err;
    }
  }

  /** Answers a 401's challenge: fetches a bearer token or takes the basic credentials. */
  private async authenticate(header: string | undefined, url: string): Promise<void> {
    const challenge = header === undefined ? this.challenge : parseChallenge(header);
    const creds = this.opts.credentials;
    const suggestions = this.authSuggestions();
    if (challenge?.scheme === 'basic') {
      if (!creds) throw new RegistryError(`get ${url}: the registry asks for basic credentials and there are none`, { suggestions });
      this.challenge = challenge;
      this.authorization = { type: 'basic', user: creds.user, password: creds.password };
      this.authorizationSource = creds.source;
      return;
    }
    if (challenge?.scheme !== 'bearer') {
      throw new RegistryError(`get ${url}: 401 Unauthorized with ${header === undefined ? 'no challenge' : `an unsupported challenge (${header})`}`, { suggestions });
    }
    const realm = tokenUrl(challenge, this.ref.repository);
    // The realm is another host in general: the user's credentials go there as Basic through an
    // AuthConfig entry for the realm's host, so exchange.ts sends them over https only and never
    // to a redirect target on another host.
    let realmAuth: AuthConfig | undefined;
    if (creds) {
      if (realm.protocol !== 'https:') {
        throw new RegistryError(`authenticate to ${this.ref.registry}: the token realm ${realm.href} is not https; credentials are not sent over plain http`, {
          suggestions: [`serve the token endpoint of ${this.ref.registry} over https`],
        });
      }
      const entry: HostCredentials = { domain: realm.host, credentials: { type: 'basic', user: creds.user, password: creds.password }, file: creds.source, layer: 'local' };
      realmAuth = { hosts: new Map([[realm.host, entry]]), dockerRegistries: new Map() };
    }
    let bytes: Uint8Array;
    try {
      ({ bytes } = await this.readSmall(realm.href, { accept: 'application/json', auth: realmAuth, maxBytes: 1024 * 1024, accept401: false }));
    } catch (err) {
      const status = err instanceof HttpError ? err.status : undefined;
      throw new RegistryError(`get a token for ${this.name} from ${realm.origin}: ${(err as Error).message}`, {
        cause: err,
        suggestions: status === 401 || status === 403 ? suggestions : [],
      });
    }
    let doc: { token?: unknown; access_token?: unknown };
    try {
      doc = JSON.parse(Buffer.from(bytes).toString('utf8')) as typeof doc;
    } catch (err) {
      throw new RegistryError(`get a token for ${this.name} from ${realm.origin}: the answer is not JSON`, { cause: err });
    }
    // Docker token protocol: `token`, with `access_token` as the OAuth 2 compatible alias.
    const token = typeof doc.token === 'string' && doc.token !== '' ? doc.token : doc.access_token;
    if (typeof token !== 'string' || token === '') throw new RegistryError(`get a token for ${this.name} from ${realm.origin}: the answer has no token`);
    this.challenge = challenge;
    this.authorization = { type: 'oauth', token };
    this.authorizationSource = creds ? creds.source : `an anonymous token from ${realm.origin}`;
  }

  /** One GET of a small document (the caller's status rule, a size cap) through exchange.ts. */
  private async readSmall(
    url: string,
    o: { method?: 'GET' | 'HEAD'; accept: string; auth: AuthConfig | undefined; maxBytes: number; accept401: boolean },
  ): Promise<{ status: number; bytes: Uint8Array; headers: Record<string, string | string[] | undefined> }> {
    const timeout = AbortSignal.timeout(MANIFEST_TIMEOUT_MS);
    const signal = this.opts.signal ? AbortSignal.any([this.opts.signal, timeout]) : timeout;
    const retrier = new Retrier({ policy: this.opts.retry ?? DEFAULT_RETRY_POLICY, sleep: this.opts.sleep, signal });
    const res = await openResponse(url, {
      ...this.exchangeOptions(),
      ...(o.method === undefined ? {} : { method: o.method }),
      auth: o.auth,
      headers: { accept: o.accept },
      signal,
      retrier,
      accept: (s) => s === 200 || (s === 401 && o.accept401),
    });
    if (res.status !== 200) {
      await res.body.dump().catch(() => undefined);
      return { status: res.status, bytes: new Uint8Array(), headers: res.headers };
    }
    const chunks: Buffer[] = [];
    let total = 0;
    try {
      for await (const chunk of res.body) {
        total += (chunk as Buffer).length;
        if (total > o.maxBytes) throw new RegistryError(`get ${url}: the document exceeds ${o.maxBytes} bytes`);
        chunks.push(chunk as Buffer);
      }
    } catch (err) {
      if (err instanceof RegistryError) throw err;
      throw new HttpError(url, `reading the response failed: ${(err as Error).message}`, { cause: err });
    }
    return { status: 200, bytes: new Uint8Array(Buffer.concat(chunks, total)), headers: res.headers };
  }

  /**
   * GET with one round of authentication: a 401 (the first challenge, or an expired token) is
   * answered once and the request sent again; a second 401 in a row is an error. Returns a 200's
   * body and headers.
   */
  private async getDocument(url: string, accept: string): Promise<{ bytes: Uint8Array; headers: Record<string, string | string[] | undefined> }> {
    for (let round = 0; ; round++) {
      const sent = this.authorization;
      const res = await this.readSmall(url, { accept, auth: this.authConfig(), maxBytes: MAX_MANIFEST_BYTES, accept401: true });
      if (res.status === 401) {
        if (round > 0) throw this.refused(url);
        await this.reauthenticate(sent, headerValue(res.headers, 'www-authenticate'), url);
        continue;
      }
      this.probed = true;
      return res;
    }
  }

  /**
   * The manifest or index for `reference` (a tag or a digest; default: the reference's digest,
   * else its tag), its digest computed from the bytes and checked against a requested digest.
   */
  async getManifest(reference: string | undefined = this.ref.digest ?? this.ref.tag): Promise<FetchedManifest> {
    if (reference === undefined) throw new RegistryError(`get manifest of ${this.name}: no tag or digest`);
    const url = `${this.base}/manifests/${reference}`;
    const { bytes, headers } = await this.getDocument(url, MANIFEST_ACCEPT);
    const digest = sha256Digest(bytes);
    if (isDigest(reference) && digest !== reference) {
      throw new RegistryError(`get manifest ${reference} of ${this.name}: the registry sent a manifest whose digest is ${digest}`, {
        suggestions: ['the registry or a proxy altered the manifest; try again or report it to the registry operator'],
      });
    }
    const claimed = headerValue(headers, 'docker-content-digest');
    if (claimed !== undefined && claimed.startsWith('sha256:') && claimed !== digest) {
      throw new RegistryError(`get manifest ${reference} of ${this.name}: Docker-Content-Digest says ${claimed} but the bytes hash to ${digest}`);
    }
    let json: ManifestDocument;
    try {
      json = JSON.parse(Buffer.from(bytes).toString('utf8')) as ManifestDocument;
    } catch (err) {
      throw new ImageFormatError(`read manifest ${reference} of ${this.name}: not valid JSON`, { cause: err });
    }
    const contentType = headerValue(headers, 'content-type')?.split(';')[0]?.trim();
    // image-spec manifest.md / image-index.md: `mediaType` in the document is the authority when present.
    const mediaType = json.mediaType ?? contentType ?? '';
    if (json.schemaVersion !== 2 || !(isIndexMediaType(mediaType) || isManifestMediaType(mediaType))) {
      throw new ImageFormatError(`read manifest ${reference} of ${this.name}: unsupported manifest (schemaVersion ${String(json.schemaVersion)}, media type ${mediaType || 'none'})`, {
        suggestions: ['tspod reads OCI manifests and indexes and Docker schema 2 manifests and lists; push the image again with a current tool'],
      });
    }
    if (isIndexMediaType(mediaType) ? !Array.isArray(json.manifests) : !Array.isArray(json.layers) || json.config === undefined) {
      throw new ImageFormatError(`read manifest ${reference} of ${this.name}: ${isIndexMediaType(mediaType) ? 'an index without manifests' : 'a manifest without config or layers'}`);
    }
    return { digest, mediaType, bytes, json };
  }

  /** A small blob (the image config) into memory, verified. */
  async getBlobBytes(descriptor: Pick<Descriptor, 'digest' | 'size'>): Promise<Uint8Array> {
    const fetched = await this.fetchBlob(descriptor);
    try {
      return new Uint8Array(fs.readFileSync(fetched.path));
    } finally {
      fs.rmSync(fetched.path, { force: true });
    }
  }

  /** Downloads a blob into tmpDir, hashing while it streams; a wrong digest or size leaves nothing. */
  async fetchBlob(descriptor: Pick<Descriptor, 'digest' | 'size'>): Promise<FetchedBlob> {
    const { digest, size } = descriptor;
    if (!isDigest(digest)) throw new ImageFormatError(`fetch blob ${digest} of ${this.name}: not a sha256 digest`);
    if (!this.probed) await this.getManifestAuthOnly();
    const url = `${this.base}/blobs/${digest}`;
    let hash = crypto.createHash('sha256');
    let result;
    try {
      result = await this.retryOn401(url, () => (hash = crypto.createHash('sha256')), () => download(url, {
        ...this.exchangeOptions(),
        tmpDir: this.opts.tmpDir,
        sys: this.opts.sys,
        key: `oci-${digest.slice('sha256:'.length, 'sha256:'.length + 32)}`,
        maxBytes: size,
        hashBody: false,
        ...(this.opts.retry ? { retry: this.opts.retry } : {}),
        ...(this.opts.sleep ? { sleep: this.opts.sleep } : {}),
        ...(this.opts.signal ? { signal: this.opts.signal } : {}),
        onData: (chunk) => {
          hash.update(chunk);
        },
        onRestart: () => {
          hash = crypto.createHash('sha256');
        },
        ...(this.opts.onProgress ? { onProgress: (e: DownloadEvent) => this.opts.onProgress!(digest, e) } : {}),
      }));
    } catch (err) {
      throw new RegistryError(`fetch blob ${digest} of ${this.name}: ${(err as Error).message}`, { cause: err, suggestions: err instanceof TspodError ? err.suggestions : [] });
    }
    const actual = `sha256:${hash.digest('hex')}`;
    if (actual !== digest || result.bytes !== size) {
      fs.rmSync(result.path, { force: true });
      throw new RegistryError(
        `fetch blob ${digest} of ${this.name}: ${actual !== digest ? `the bytes hash to ${actual}` : `${result.bytes} bytes where the manifest says ${size}`}; nothing was kept`,
        { suggestions: ['the registry storage or a proxy corrupted the blob; try again or report it to the registry operator'] },
      );
    }
    return { path: result.path, digest, size };
  }

  /**
   * Blob requests go through download.ts, which cannot answer a 401: authenticate first with a
   * manifest request when none was made (a registry challenges both the same way).
   */
  private async getManifestAuthOnly(): Promise<void> {
    const ref = this.ref.digest ?? this.ref.tag;
    if (ref === undefined) return;
    await this.getDocument(`${this.base}/manifests/${ref}`, MANIFEST_ACCEPT);
  }

  /**
   * A small document of a registry extension, `GET /extensions/v2/<name>/<subpath>` (e.g.
   * `signatures/<digest>`, the signature API of OpenShift's registry), authenticated like a
   * manifest request; undefined when the registry answers 404 or 400 (no such extension or entry).
   */
  async getExtensionDocument(subpath: string, accept = 'application/json'): Promise<Uint8Array | undefined> {
    const url = `${new URL(this.base).origin}/extensions/v2/${this.ref.repository}/${subpath}`;
    try {
      return (await this.getDocument(url, accept)).bytes;
    } catch (err) {
      if (err instanceof HttpError && (err.status === 404 || err.status === 400)) return undefined;
      throw err;
    }
  }
}

export interface ResolvedImage {
  /** The index, when the reference named one. */
  index: FetchedManifest | undefined;
  /** The image manifest (for the wanted platform when there was an index). */
  manifest: FetchedManifest;
}

/**
 * The image manifest of the client's reference: directly, or through an index by platform
 * (image-spec image-index.md). The child is fetched by digest, so its bytes are verified.
 */
export async function resolveImage(client: RegistryClient, wanted: PlatformWanted): Promise<ResolvedImage> {
  const top = await client.getManifest();
  if (!isIndexMediaType(top.mediaType)) return { index: undefined, manifest: top };
  const chosen = selectPlatform(top.json.manifests ?? [], wanted, formatReference(client.ref));
  const manifest = await client.getManifest(chosen.digest);
  if (isIndexMediaType(manifest.mediaType)) {
    throw new ImageFormatError(`read manifest ${chosen.digest} of ${formatReference(client.ref)}: an index inside an index is not supported`);
  }
  return { index: top, manifest };
}
