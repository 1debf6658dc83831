// Where the simple signatures of a registry image are found (containers/image
// docs/signature-protocols.md):
//
// - A "lookaside" store configured in registries.d (containers-registries.d(5)): YAML files
//   `*.yaml` with `default-docker: {lookaside: URL}` and `docker: {<scope>: {lookaside: URL}}`
//   (`sigstore` is the older name of `lookaside`). The most specific scope wins, matched as
//   policy.json's docker scopes (`registry/repo:tag`, `registry/repo`, ..., `registry`), then
//   `default-docker`. Directories, highest first: `<local config>/registries.d`,
//   `<system config>/registries.d`, `/etc/containers/registries.d`; a scope (or default-docker)
//   in a higher directory hides the same one below; twice in one directory is an error, as in
//   containers. Signatures are `<URL>/<repository>@sha256=<hex>/signature-<n>` for n = 1, 2, ...
//   until the first missing one (404, or no such file for `file://`). http(s) goes through the
//   project's HTTP layer (its resolver, CA and auth.d credentials); plain http is allowed for a
//   lookaside URL the admin wrote as http:// (the content is verified by its signature, as
//   containers allows).
// - The registry's signature extension (OpenShift's registry, and others that copy it):
//   `GET /extensions/v2/<name>/signatures/<digest>` answering
//   `{"signatures":[{"version":2,"type":"atomic","name":"...","content":"<base64>"}]}`; a 404 or
//   400 means "none here".
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { parse as parseYaml } from 'yaml';

import { TspodError, ValidationError } from '../errors.js';
import type { ExchangeOptions } from '../http/exchange.js';
import { DEFAULT_RETRY_POLICY, Retrier } from '../http/retry.js';
import { dockerScopes, type SignatureBlob } from './policy.js';
import type { RegistryClient } from './registry.js';
import { MAX_SIGNATURE_BYTES, type DockerIdentity } from './simple-signing.js';

/** The lowest registries.d layer, shared with podman and skopeo. */
export const CONTAINERS_REGISTRIES_D = '/etc/containers/registries.d';
/** A lookaside with more signatures than this for one manifest is refused (a loop guard). */
const MAX_SIGNATURES = 64;
const LOOKASIDE_TIMEOUT_MS = 60_000;

export interface LookasideEntry {
  url: string;
  /** The YAML file that set it, for messages. */
  file: string;
}

export interface RegistriesD {
  defaultDocker: LookasideEntry | undefined;
  docker: Map<string, LookasideEntry>;
}

function lookasideOf(value: unknown, file: string, where: string): LookasideEntry | undefined {
  if (value === null || value === undefined) return undefined;
  if (typeof value !== 'object' || Array.isArray(value)) throw new ValidationError(`${file}: ${where} is not a mapping`);
  const v = value as Record<string, unknown>;
  const url = v.lookaside ?? v.sigstore;
  if (url === undefined) return undefined;
  if (typeof url !== 'string' || url === '') throw new ValidationError(`${file}: ${where}.lookaside is not a URL`);
  return { url, file };
}

/** Reads the registries.d directories, highest first (missing directories are skipped). */
export function loadRegistriesD(dirs: readonly string[]): RegistriesD {
  const result: RegistriesD = { defaultDocker: undefined, docker: new Map() };
  for (const dir of dirs) {
    let names: string[];
    try {
      names = fs.readdirSync(dir).filter((n) => n.endsWith('.yaml')).sort();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') continue;
      throw new TspodError(`read ${dir}: ${(err as Error).message}`, { cause: err });
    }
    let layerDefault: LookasideEntry | undefined;
    const layer = new Map<string, LookasideEntry>();
    for (const name of names) {
      const file = path.join(dir, name);
      let doc: unknown;
      try {
        doc = parseYaml(fs.readFileSync(file, 'utf8'));
      } catch (err) {
        throw new ValidationError(`${file}: not valid YAML: ${(err as Error).message}`, [], { cause: err });
      }
      if (doc === null || doc === undefined) continue;
      if (typeof doc !== 'object' || Array.isArray(doc)) throw new ValidationError(`${file}: not a YAML mapping`);
      const d = doc as Record<string, unknown>;
      const def = lookasideOf(d['default-docker'], file, 'default-docker');
      if (d['default-docker'] !== undefined) {
        if (layerDefault !== undefined) throw new ValidationError(`${file}: default-docker is also set in ${layerDefault.file}`);
        layerDefault = def ?? { url: '', file };
      }
      const docker = d.docker;
      if (docker === undefined || docker === null) continue;
      if (typeof docker !== 'object' || Array.isArray(docker)) throw new ValidationError(`${file}: docker is not a mapping`);
      for (const [scope, value] of Object.entries(docker as Record<string, unknown>)) {
        const prior = layer.get(scope);
        if (prior !== undefined) throw new ValidationError(`${file}: docker scope "${scope}" is also set in ${prior.file}`);
        layer.set(scope, lookasideOf(value, file, `docker."${scope}"`) ?? { url: '', file });
      }
    }
    // A higher layer hides the same scope below it; an entry without a lookaside hides one too.
    if (result.defaultDocker === undefined && layerDefault !== undefined) result.defaultDocker = layerDefault;
    for (const [scope, entry] of layer) if (!result.docker.has(scope)) result.docker.set(scope, entry);
  }
  return result;
}

/** The lookaside base URL for an image, or undefined when none is configured. */
export function lookasideFor(config: RegistriesD, image: DockerIdentity): LookasideEntry | undefined {
  for (const scope of dockerScopes(image)) {
    const entry = config.docker.get(scope);
    if (entry !== undefined) return entry.url === '' ? undefined : entry;
  }
  return config.defaultDocker?.url === '' ? undefined : config.defaultDocker;
}

/** `<base>/<repository>@sha256=<hex>/signature-<n>` (containers' lookaside layout). */
export function lookasideUrl(base: string, image: DockerIdentity, digest: string, n: number): string {
  const repository = image.name.slice(image.name.indexOf('/') + 1);
  return `${base.replace(/\/+$/, '')}/${repository}@${digest.replace(':', '=')}/signature-${n}`;
}

/** Reads one lookaside signature; undefined when it does not exist (the end of the list). */
async function readLookaside(url: string, http: ExchangeOptions): Promise<Uint8Array | undefined> {
  const parsed = new URL(url);
  if (parsed.protocol === 'file:') {
    const file = fileURLToPath(parsed);
    try {
      const st = fs.statSync(file);
      if (st.size > MAX_SIGNATURE_BYTES) throw new TspodError(`read signature ${file}: ${st.size} bytes; a signature is at most ${MAX_SIGNATURE_BYTES}`);
      return new Uint8Array(fs.readFileSync(file));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      if (err instanceof TspodError) throw err;
      throw new TspodError(`read signature ${file}: ${(err as Error).message}`, { cause: err });
    }
  }
  if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') {
    throw new TspodError(`get signature ${url}: lookaside URLs are file://, https:// or http://`);
  }
  const { openResponse } = await import('../http/exchange.js');
  const signal = AbortSignal.timeout(LOOKASIDE_TIMEOUT_MS);
  const res = await openResponse(url, {
    ...http,
    allowHttp: true,
    signal,
    retrier: new Retrier({ policy: DEFAULT_RETRY_POLICY, signal }),
    accept: (s) => s === 200 || s === 404,
  });
  if (res.status === 404) {
    await res.body.dump().catch(() => undefined);
    return undefined;
  }
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of res.body) {
    total += (chunk as Buffer).length;
    if (total > MAX_SIGNATURE_BYTES) {
      res.body.destroy();
      throw new TspodError(`get signature ${url}: more than ${MAX_SIGNATURE_BYTES} bytes; a signature is at most that`);
    }
    chunks.push(chunk as Buffer);
  }
  return new Uint8Array(Buffer.concat(chunks, total));
}

/** Every lookaside signature of `digest`: signature-1, -2, ... until the first missing one. */
export async function lookasideSignatures(base: string, image: DockerIdentity, digest: string, http: ExchangeOptions): Promise<SignatureBlob[]> {
  const out: SignatureBlob[] = [];
  for (let n = 1; n <= MAX_SIGNATURES; n++) {
    const url = lookasideUrl(base, image, digest, n);
    const bytes = await readLookaside(url, http);
    if (bytes === undefined) return out;
    out.push({ bytes, source: url });
  }
  throw new TspodError(`get signatures of ${digest} from ${base}: more than ${MAX_SIGNATURES} signatures`);
}

/** The signatures the registry's extension API holds for `digest` (none when it has no such API). */
export async function extensionSignatures(client: RegistryClient, digest: string): Promise<SignatureBlob[]> {
  const bytes = await client.getExtensionDocument(`signatures/${digest}`);
  if (bytes === undefined) return [];
  const where = `signatures of ${digest} from the registry's extension API`;
  let doc: unknown;
  try {
    doc = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch (err) {
    throw new TspodError(`read ${where}: not JSON`, { cause: err });
  }
  const list = (doc as { signatures?: unknown } | null)?.signatures;
  if (!Array.isArray(list)) throw new TspodError(`read ${where}: no "signatures" list`);
  const out: SignatureBlob[] = [];
  for (const [i, entry] of list.entries()) {
    const e = entry as { version?: unknown; type?: unknown; name?: unknown; content?: unknown } | null;
    // Only version 2 "atomic" entries are simple signatures; others are skipped, as containers does.
    if (e === null || typeof e !== 'object' || e.version !== 2 || e.type !== 'atomic') continue;
    if (typeof e.content !== 'string') throw new TspodError(`read ${where}: entry ${i + 1} has no content`);
    out.push({ bytes: new Uint8Array(Buffer.from(e.content, 'base64')), source: `${client.ref.registry} extension ${typeof e.name === 'string' ? e.name : `#${i + 1}`}` });
  }
  return out;
}

export interface RegistrySignatureOptions {
  /** The exchange options of the command (resolver, CA, auth.d credentials, insecure choices). */
  http: ExchangeOptions;
  /** registries.d directories, highest first. */
  registriesDirs: readonly string[];
  /** The client that resolved the image: the extension is asked with its credentials or token. */
  client: RegistryClient;
}

/**
 * All signatures of a registry image for any of `digests`: the configured lookaside, then the
 * registry's extension API. Lookaside and extension failures other than "none" are errors: a
 * signature that cannot be read must not turn into "unsigned" silently.
 */
export async function registrySignatures(image: DockerIdentity, digests: readonly string[], opts: RegistrySignatureOptions): Promise<SignatureBlob[]> {
  const out: SignatureBlob[] = [];
  const lookaside = lookasideFor(loadRegistriesD(opts.registriesDirs), image);
  if (lookaside !== undefined) {
    for (const digest of digests) out.push(...(await lookasideSignatures(lookaside.url, image, digest, opts.http)));
  }
  const { client } = opts;
  for (const digest of digests) out.push(...(await extensionSignatures(client, digest)));
  return out;
}
