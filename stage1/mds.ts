// The per-pod appc metadata service (`tspod run --mds-register`): spec/ace.md "App Container
// Metadata Service", with rkt's extras (rkt/metadata_service.go): per-name annotation endpoints,
// 401 for an unknown token, HMAC input = the pod UUID's 16 raw bytes then the content. No daemon:
// the pod's PID 1 (init.ts) hosts one HTTP server per pod, inside the pod's network namespace on
// 127.0.0.1 with an ephemeral port, so the pod's apps reach it and nothing outside the pod does
// (with --net=host it is the host's 127.0.0.1, and the token in the URL is the only protection).
// It lives as long as the pod. This module owns the routing (a pure function of the request,
// tested as data), the HTTP server around it, and the pod's HMAC key file (`mds-hmac-key`).
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';

import { isACIdentifier } from '../src/appc/identifiers.js';
import type { Annotation, ImageManifest, PodManifest } from '../src/appc/types.js';
import { TspodError, type TspodErrorOptions } from '../src/errors.js';
import { STAGE1_FILES } from './contract.js';

/** Every endpoint lives under `$AC_METADATA_URL` + this prefix (spec/ace.md). */
export const MDS_PATH_PREFIX = '/acMetadata/v1';
/** The ACE validator compares header values exactly: no `; charset=utf-8` on JSON. */
export const CONTENT_TYPE_JSON = 'application/json';
export const CONTENT_TYPE_TEXT = 'text/plain; charset=us-ascii';
/** The POST bodies of sign and verify (spec/ace.md: "form"). */
export const CONTENT_TYPE_FORM = 'application/x-www-form-urlencoded';
/** Bytes of a pod's HMAC-SHA512 key (random, one per registered pod). */
export const MDS_HMAC_KEY_BYTES = 32;
/** spec/ace.md: the token SHOULD carry at least 128 random bits; rkt uses 16 bytes in hex. */
export const MDS_TOKEN_BYTES = 16;
/** Largest POST body read; sign and verify carry small identity documents. */
export const MDS_MAX_BODY_BYTES = 1 << 20;

/** A failure of the metadata service itself (its key file, its listening socket). */
export class MetadataServiceError extends TspodError {
  constructor(message: string, options: TspodErrorOptions = {}) {
    super(message, options);
  }
}

// ---------------------------------------------------------------------------------------------
// Routing: pure
// ---------------------------------------------------------------------------------------------

export interface MetadataState {
  /** The pod's UUID, canonical (8-4-4-4-12 lower-case hex). */
  uuid: string;
  /** The secret first path component of every request. */
  token: string;
  /** The reified pod manifest. */
  podManifest: PodManifest;
  /** Each app's image manifest, by app name. */
  imageManifests: Readonly<Record<string, ImageManifest>>;
  /** This pod's HMAC key. */
  hmacKey: Buffer;
  /** The key of another registered pod, by canonical UUID; undefined when it did not register. */
  lookupKey: (uuid: string) => Buffer | undefined;
}

export interface MetadataRequest {
  method: string;
  /** The request target as sent (path and query, percent-encoded). */
  target: string;
  /** The request's Content-Type header, if any. */
  contentType?: string | undefined;
  body?: Buffer;
}

export interface MetadataResponse {
  status: number;
  contentType: string;
  body: string;
  /** Extra headers (Allow on a 405). */
  headers?: Record<string, string>;
}

type Handler = (state: MetadataState, params: string[], request: MetadataRequest) => MetadataResponse;

interface Route {
  pattern: RegExp;
  method: 'GET' | 'POST';
  handle: Handler;
}

const json = (value: unknown): MetadataResponse => ({ status: 200, contentType: CONTENT_TYPE_JSON, body: JSON.stringify(value) });
// Annotation values may hold any UTF-8 text; they are sent as their bytes under the spec's
// us-ascii header, as rkt does.
const text = (body: string, status = 200): MetadataResponse => ({ status, contentType: CONTENT_TYPE_TEXT, body });
const failure = (status: number, message: string): MetadataResponse => text(`${message}\n`, status);

/** types.Annotations.Set (appc schema/types): replace a name's value in place, or append it. */
function setAnnotation(list: Annotation[], annotation: Annotation): void {
  const i = list.findIndex((a) => a.name === annotation.name);
  if (i >= 0) list[i] = { name: annotation.name, value: annotation.value };
  else list.push({ name: annotation.name, value: annotation.value });
}

/** spec/ace.md: the image manifest's annotations with the pod app's merged over them (the pod's win). */
export function mergedAppAnnotations(imageManifest: ImageManifest, podManifest: PodManifest, appName: string): Annotation[] {
  const merged: Annotation[] = [];
  for (const a of imageManifest.annotations ?? []) setAnnotation(merged, a);
  for (const a of podManifest.apps.find((app) => app.name === appName)?.annotations ?? []) setAnnotation(merged, a);
  return merged;
}

function annotationValue(list: readonly Annotation[], name: string, owner: string): MetadataResponse {
  // rkt: a name that is not an AC identifier is a bad request, a valid unknown one is not found.
  if (!isACIdentifier(name)) return failure(400, `annotation name "${name}" is not an AC identifier`);
  const found = list.find((a) => a.name === name);
  return found === undefined ? failure(404, `${owner} has no annotation "${name}"`) : text(found.value);
}

/** The app's image manifest, or a 404 for an app that is not in the pod. */
function withApp(state: MetadataState, appName: string, then: (imageManifest: ImageManifest) => MetadataResponse): MetadataResponse {
  const imageManifest = Object.hasOwn(state.imageManifests, appName) ? state.imageManifests[appName] : undefined;
  if (imageManifest === undefined || !state.podManifest.apps.some((a) => a.name === appName)) return failure(404, `pod has no app "${appName}"`);
  return then(imageManifest);
}

/** A UUID in any case, with or without dashes, as canonical 8-4-4-4-12 lower-case hex. */
export function canonicalUuid(text: string): string | undefined {
  const hex = text.toLowerCase().replace(/-/g, '');
  if (!/^[0-9a-f]{32}$/.test(hex)) return undefined;
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** HMAC-SHA512 over the UUID's 16 raw bytes followed by the content (rkt's input), base64 with padding. */
export function signContent(key: Buffer, uuid: string, content: Buffer): string {
  const canonical = canonicalUuid(uuid);
  if (canonical === undefined) throw new RangeError(`sign: "${uuid}" is not a UUID`);
  return crypto.createHmac('sha512', key).update(Buffer.from(canonical.replace(/-/g, ''), 'hex')).update(content).digest('base64');
}

/** RFC 4648 §4 base64 (standard alphabet, padded); Node's decoder alone accepts far more. */
const BASE64_STD = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

export class FormError extends Error {}

/**
 * application/x-www-form-urlencoded (WHATWG URL "urlencoded parser"), values as bytes. Strict
 * where the WHATWG parser is lenient, as Go's url.ParseQuery (rkt) is: a `%` not followed by
 * two hex digits is an error. The first value of a repeated name wins (Go's FormValue).
 */
export function parseForm(body: Buffer): Map<string, Buffer> {
  const fields = new Map<string, Buffer>();
  for (const piece of body.toString('latin1').split('&')) {
    if (piece === '') continue;
    const eq = piece.indexOf('=');
    const name = percentDecode(eq < 0 ? piece : piece.slice(0, eq)).toString('utf8');
    const value = percentDecode(eq < 0 ? '' : piece.slice(eq + 1));
    if (!fields.has(name)) fields.set(name, value);
  }
  return fields;
}

function percentDecode(latin1: string): Buffer {
  const out: number[] = [];
  for (let i = 0; i < latin1.length; i++) {
    const c = latin1.charCodeAt(i);
    if (c === 0x2b /* + */) out.push(0x20);
    else if (c === 0x25 /* % */) {
      const hex = latin1.slice(i + 1, i + 3);
      if (!/^[0-9a-fA-F]{2}$/.test(hex)) throw new FormError(`bad percent escape "%${hex}"`);
      out.push(parseInt(hex, 16));
      i += 2;
    } else out.push(c);
  }
  return Buffer.from(out);
}

/** The form of a POST, or a 400 response. */
function readForm(request: MetadataRequest): Map<string, Buffer> | MetadataResponse {
  const mediaType = request.contentType?.split(';')[0]?.trim().toLowerCase();
  if (mediaType !== undefined && mediaType !== '' && mediaType !== CONTENT_TYPE_FORM) {
    return failure(400, `request body is ${mediaType}, not ${CONTENT_TYPE_FORM}`);
  }
  try {
    return parseForm(request.body ?? Buffer.alloc(0));
  } catch (err) {
    if (err instanceof FormError) return failure(400, `malformed form body: ${err.message}`);
    throw err;
  }
}

const sign: Handler = (state, _params, request) => {
  const form = readForm(request);
  if (!(form instanceof Map)) return form;
  const content = form.get('content');
  // rkt refuses an empty content as missing.
  if (content === undefined || content.length === 0) return failure(400, 'form field "content" is missing');
  return text(signContent(state.hmacKey, state.uuid, content));
};

const verify: Handler = (state, _params, request) => {
  const form = readForm(request);
  if (!(form instanceof Map)) return form;
  const uuidField = form.get('uuid')?.toString('utf8');
  const uuid = uuidField === undefined ? undefined : canonicalUuid(uuidField);
  if (uuid === undefined) return failure(400, `form field "uuid" is ${uuidField === undefined ? 'missing' : `not a UUID: "${uuidField}"`}`);
  const content = form.get('content');
  if (content === undefined || content.length === 0) return failure(400, 'form field "content" is missing');
  const signatureField = form.get('signature')?.toString('latin1');
  if (signatureField === undefined || signatureField === '' || !BASE64_STD.test(signatureField)) {
    return failure(400, 'form field "signature" is missing or not padded standard base64');
  }
  const key = uuid === state.uuid ? state.hmacKey : state.lookupKey(uuid);
  // spec/ace.md: 403 when the signature is not valid; an unregistered pod signed nothing.
  if (key === undefined) return failure(403, `pod ${uuid} is not registered with the metadata service`);
  const expected = Buffer.from(signContent(key, uuid, content), 'base64');
  const given = Buffer.from(signatureField, 'base64');
  if (given.length !== expected.length || !crypto.timingSafeEqual(given, expected)) return failure(403, `signature does not verify for pod ${uuid}`);
  return text('');
};

/** Endpoints after `/<token>/acMetadata/v1`; captures are percent-decoded before handlers see them. */
const ROUTES: readonly Route[] = [
  { pattern: /^\/pod\/annotations\/?$/, method: 'GET', handle: (s) => json(s.podManifest.annotations ?? []) },
  { pattern: /^\/pod\/annotations\/(.+)$/, method: 'GET', handle: (s, [name]) => annotationValue(s.podManifest.annotations ?? [], name!, 'the pod') },
  { pattern: /^\/pod\/manifest$/, method: 'GET', handle: (s) => json(s.podManifest) },
  { pattern: /^\/pod\/uuid$/, method: 'GET', handle: (s) => text(s.uuid) },
  {
    pattern: /^\/apps\/([^/]+)\/annotations\/?$/,
    method: 'GET',
    handle: (s, [app]) => withApp(s, app!, (im) => json(mergedAppAnnotations(im, s.podManifest, app!))),
  },
  {
    pattern: /^\/apps\/([^/]+)\/annotations\/(.+)$/,
    method: 'GET',
    handle: (s, [app, name]) => withApp(s, app!, (im) => annotationValue(mergedAppAnnotations(im, s.podManifest, app!), name!, `app ${app}`)),
  },
  { pattern: /^\/apps\/([^/]+)\/image\/manifest$/, method: 'GET', handle: (s, [app]) => withApp(s, app!, (im) => json(im)) },
  {
    pattern: /^\/apps\/([^/]+)\/image\/id$/,
    method: 'GET',
    handle: (s, [app]) => withApp(s, app!, () => text(s.podManifest.apps.find((a) => a.name === app)!.image.id)),
  },
  { pattern: /^\/pod\/hmac\/sign$/, method: 'POST', handle: sign },
  { pattern: /^\/pod\/hmac\/verify$/, method: 'POST', handle: verify },
];

const PREFIX = /^\/([^/?]*)\/acMetadata\/v1(\/[^?]*)(?:\?.*)?$/;

function tokenMatches(given: string, token: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(token);
  return a.length === b.length && crypto.timingSafeEqual(a, b);
}

/**
 * Answers one request: status, exact Content-Type and body. 404 outside `/<token>/acMetadata/v1`
 * and for unknown endpoints, apps or annotations; 401 for a wrong token; 405 (with Allow) for a
 * wrong method; 400 for a malformed form or field; sign/verify as spec/ace.md says.
 */
export function handleMetadataRequest(state: MetadataState, request: MetadataRequest): MetadataResponse {
  const match = PREFIX.exec(request.target);
  if (match === null) return failure(404, `no metadata endpoint at ${request.target.split('?')[0]}; endpoints are under $AC_METADATA_URL${MDS_PATH_PREFIX}`);
  // rkt: an unknown token is 401, whatever the endpoint.
  if (!tokenMatches(match[1]!, state.token)) return failure(401, 'unknown metadata service token');
  const rest = match[2]!;
  for (const route of ROUTES) {
    const m = route.pattern.exec(rest);
    if (m === null) continue;
    if (request.method !== route.method) {
      return { ...failure(405, `${MDS_PATH_PREFIX}${rest} takes ${route.method}, not ${request.method}`), headers: { Allow: route.method } };
    }
    let params: string[];
    try {
      params = m.slice(1).map((p) => decodeURIComponent(p));
    } catch {
      return failure(400, `malformed percent-encoding in ${MDS_PATH_PREFIX}${rest}`);
    }
    return route.handle(state, params, request);
  }
  return failure(404, `no metadata endpoint ${MDS_PATH_PREFIX}${rest}`);
}

// ---------------------------------------------------------------------------------------------
// The HTTP server
// ---------------------------------------------------------------------------------------------

export interface MetadataServiceOptions {
  /** The pod's UUID (any case, dashes optional). */
  uuid: string;
  /** The reified pod manifest. */
  podManifest: PodManifest;
  /** Each app's image manifest, by app name; every app of the pod manifest must have one. */
  imageManifests: Readonly<Record<string, ImageManifest>>;
  /** The pod's HMAC key, MDS_HMAC_KEY_BYTES random bytes. */
  hmacKey: Buffer;
  /** Keys of other registered pods, for verify (default: none). */
  lookupKey?: (uuid: string) => Buffer | undefined;
  /** Address to listen on (default 127.0.0.1). */
  host?: string;
  /** Port (default 0: an ephemeral port). */
  port?: number;
  /** The URL token (default: MDS_TOKEN_BYTES random bytes in hex). */
  token?: string;
}

export interface MetadataService {
  /** $AC_METADATA_URL: `http://host:port/<token>`, no trailing slash. */
  url: string;
  token: string;
  /** Stops listening and ends open connections. */
  close(): Promise<void>;
}

export function metadataState(options: MetadataServiceOptions): MetadataState {
  const uuid = canonicalUuid(options.uuid);
  if (uuid === undefined) throw new MetadataServiceError(`metadata service: pod uuid "${options.uuid}" is not a UUID`);
  if (options.hmacKey.length !== MDS_HMAC_KEY_BYTES) {
    throw new MetadataServiceError(`metadata service for pod ${uuid}: hmac key is ${options.hmacKey.length} bytes, not ${MDS_HMAC_KEY_BYTES}`);
  }
  const missing = options.podManifest.apps.filter((a) => !Object.hasOwn(options.imageManifests, a.name)).map((a) => a.name);
  if (missing.length > 0) throw new MetadataServiceError(`metadata service for pod ${uuid}: no image manifest for app ${missing.join(', ')}`);
  return {
    uuid,
    token: options.token ?? crypto.randomBytes(MDS_TOKEN_BYTES).toString('hex'),
    podManifest: options.podManifest,
    imageManifests: options.imageManifests,
    hmacKey: Buffer.from(options.hmacKey),
    lookupKey: options.lookupKey ?? (() => undefined),
  };
}

function readBody(req: http.IncomingMessage): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MDS_MAX_BODY_BYTES) {
        resolve(undefined);
        req.pause();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function send(res: http.ServerResponse, response: MetadataResponse): void {
  res.writeHead(response.status, {
    'Content-Type': response.contentType,
    'Content-Length': Buffer.byteLength(response.body),
    ...response.headers,
  });
  res.end(response.body);
}

/** Starts the metadata service of one pod; resolves once it listens. */
export async function startMetadataService(options: MetadataServiceOptions): Promise<MetadataService> {
  const state = metadataState(options);
  const server = http.createServer({ keepAliveTimeout: 5_000, headersTimeout: 10_000, requestTimeout: 10_000 }, (req, res) => {
    readBody(req).then(
      (body) => {
        if (body === undefined) {
          res.setHeader('Connection', 'close');
          return send(res, failure(413, `request body larger than ${MDS_MAX_BODY_BYTES} bytes`));
        }
        send(res, handleMetadataRequest(state, { method: req.method ?? 'GET', target: req.url ?? '/', contentType: req.headers['content-type'], body }));
      },
      () => res.destroy(),
    );
  });
  const host = options.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) => reject(new MetadataServiceError(`metadata service for pod ${state.uuid}: cannot listen on ${host}:${options.port ?? 0}: ${err.message}`, { cause: err })));
    server.listen({ host, port: options.port ?? 0, exclusive: true }, resolve);
  });
  const { port } = server.address() as AddressInfo;
  const urlHost = host.includes(':') ? `[${host}]` : host;
  let closed: Promise<void> | undefined;
  return {
    url: `http://${urlHost}:${port}/${state.token}`,
    token: state.token,
    close() {
      closed ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        // Keep-alive connections would hold close() open until they time out.
        server.closeAllConnections();
      });
      return closed;
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Pod registration: the key file and the keys of other pods
// ---------------------------------------------------------------------------------------------

/** Writes the pod's key as `<podDir>/mds-hmac-key`, mode 0600, by rename so no reader sees it half written. */
export function writeHmacKeyFile(podDir: string, key: Buffer): void {
  const file = path.join(podDir, STAGE1_FILES.mdsHmacKey);
  const tmp = `${file}.tmp-${process.pid}`;
  try {
    // The key means nothing after a reboot (the pod is gone), so no fsync.
    fs.writeFileSync(tmp, key, { mode: 0o600, flag: 'wx' });
    fs.renameSync(tmp, file);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw new MetadataServiceError(`metadata service: cannot write the hmac key ${file}: ${(err as Error).message}`, { cause: err });
  }
}

/** The key of a pod in the same state directory (`pods/run/<uuid>/mds-hmac-key`), if it registered. */
export function readHmacKeyFile(podDir: string): Buffer | undefined {
  let fd: number;
  try {
    // Written by tspod's stage1 only; O_NOFOLLOW so a planted symlink is never followed.
    fd = fs.openSync(path.join(podDir, STAGE1_FILES.mdsHmacKey), fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
  } catch {
    return undefined;
  }
  try {
    const key = Buffer.alloc(MDS_HMAC_KEY_BYTES + 1);
    const n = fs.readSync(fd, key, 0, key.length, 0);
    return n === MDS_HMAC_KEY_BYTES ? key.subarray(0, n) : undefined;
  } finally {
    fs.closeSync(fd);
  }
}

/** Key lookup over the pods beside `podDir` (the `pods/run` directory holding it). */
export function siblingPodKeys(podDir: string): (uuid: string) => Buffer | undefined {
  const runDir = path.dirname(path.resolve(podDir));
  return (uuid) => {
    const canonical = canonicalUuid(uuid);
    // Only canonical UUIDs reach the file system: no path component can be smuggled in.
    return canonical === undefined ? undefined : readHmacKeyFile(path.join(runDir, canonical));
  };
}

export interface PodMetadataServiceOptions {
  /** `pods/run/<uuid>`: the key file goes here; other pods' keys are read from its siblings. */
  podDir: string;
  uuid: string;
  podManifest: PodManifest;
  /** Each app's image manifest, by app name (init's plan inputs). */
  apps: Readonly<Record<string, { imageManifest: ImageManifest }>>;
  host?: string;
  port?: number;
}

/**
 * Registers a pod (`--mds-register`): a fresh random HMAC key, written to the pod directory so
 * that other pods' services can verify this pod's signatures, and this pod's metadata service.
 */
export async function startPodMetadataService(options: PodMetadataServiceOptions): Promise<MetadataService> {
  const hmacKey = crypto.randomBytes(MDS_HMAC_KEY_BYTES);
  writeHmacKeyFile(options.podDir, hmacKey);
  const imageManifests = Object.fromEntries(Object.entries(options.apps).map(([name, app]) => [name, app.imageManifest]));
  return startMetadataService({
    uuid: options.uuid,
    podManifest: options.podManifest,
    imageManifests,
    hmacKey,
    lookupKey: siblingPodKeys(options.podDir),
    ...(options.host === undefined ? {} : { host: options.host }),
    ...(options.port === undefined ? {} : { port: options.port }),
  });
}
