// Registry credentials for the OCI fetcher, from the files other tools write, first match wins:
//   1. `${XDG_RUNTIME_DIR}/containers/auth.json` (containers-auth.json(5), podman/skopeo login)
//   2. `~/.docker/config.json` (docker login)
//   3. the project's auth.d `dockerAuth` entries (src/http/auth.ts `dockerRegistries`)
// The two JSON files hold `{"auths": {"<registry>[/<repo>]": {"auth": base64("user:password")}}}`;
// keys may be URLs (`https://index.docker.io/v1/`, the Docker Hub key of docker login). Keys with a
// repository path match the longest prefix first (containers-auth.json(5)). Credential helpers
// (`credHelpers`, `credsStore`) are not run: a registry that only has a helper gets no credentials.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { ValidationError } from '../errors.js';
import type { AuthConfig } from '../http/auth.js';
import { DOCKER_HUB, type ImageReference } from './reference.js';

export interface RegistryCredentials {
  user: string;
  password: string;
  /** Where they came from, for error messages. */
  source: string;
}

export interface DockerAuthOptions {
  /** Default: process.env. */
  env?: NodeJS.ProcessEnv;
  /** Default: os.homedir(). */
  home?: string;
  /** auth.d (its dockerRegistries). */
  auth?: AuthConfig | undefined;
}

/** The files looked at, in order. */
export function authFiles(opts: DockerAuthOptions = {}): string[] {
  const env = opts.env ?? process.env;
  const files: string[] = [];
  if (env.REGISTRY_AUTH_FILE) files.push(env.REGISTRY_AUTH_FILE);
  if (env.XDG_RUNTIME_DIR) files.push(path.join(env.XDG_RUNTIME_DIR, 'containers', 'auth.json'));
  files.push(path.join(env.DOCKER_CONFIG ?? path.join(opts.home ?? os.homedir(), '.docker'), 'config.json'));
  return files;
}

/** `https://index.docker.io/v1/` -> `docker.io`; `host:port/path` kept. */
export function normalizeAuthKey(key: string): string {
  let k = key.replace(/^https?:\/\//, '').replace(/\/+$/, '');
  if (k === 'index.docker.io/v1' || k === 'index.docker.io' || k === 'registry-1.docker.io') k = DOCKER_HUB;
  return k;
}

/** The `auth` field: base64 of `user:password` (the password may contain colons). */
export function decodeAuthField(value: string, source: string): { user: string; password: string } {
  const text = Buffer.from(value, 'base64').toString('utf8');
  const colon = text.indexOf(':');
  if (colon <= 0) throw new ValidationError(`read registry credentials from ${source}: the auth field is not base64 of user:password`, [], { suggestions: [`log in again (podman login / docker login) or fix ${source}`] });
  return { user: text.slice(0, colon), password: text.slice(colon + 1) };
}

/** Credentials of one auth file for a reference; undefined when the file or the entry is absent. */
export function credentialsFromAuthFile(file: string, ref: Pick<ImageReference, 'registry' | 'repository'>): RegistryCredentials | undefined {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new ValidationError(`read registry credentials from ${file}: ${(err as Error).message}`, [], { cause: err });
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new ValidationError(`read registry credentials from ${file}: not valid JSON (${(err as Error).message})`, [], { cause: err });
  }
  const auths = (doc as { auths?: unknown }).auths;
  if (typeof auths !== 'object' || auths === null) return undefined;
  const entries = new Map<string, unknown>();
  for (const [k, v] of Object.entries(auths)) entries.set(normalizeAuthKey(k), v);
  // containers-auth.json(5): the most specific key wins: registry/ns/repo, registry/ns, registry.
  const parts = ref.repository.split('/');
  for (let n = parts.length; n >= 0; n--) {
    const key = [ref.registry, ...parts.slice(0, n)].join('/');
    const entry = entries.get(key) as { auth?: unknown; username?: unknown; password?: unknown } | undefined;
    if (entry === undefined) continue;
    const source = `${file} (${key})`;
    if (typeof entry.auth === 'string' && entry.auth !== '') return { ...decodeAuthField(entry.auth, source), source };
    if (typeof entry.username === 'string' && typeof entry.password === 'string') return { user: entry.username, password: entry.password, source };
  }
  return undefined;
}

/** The credentials for a reference, or undefined (anonymous). */
export function findRegistryCredentials(ref: Pick<ImageReference, 'registry' | 'repository'>, opts: DockerAuthOptions = {}): RegistryCredentials | undefined {
  for (const file of authFiles(opts)) {
    const found = credentialsFromAuthFile(file, ref);
    if (found) return found;
  }
  const d = opts.auth?.dockerRegistries.get(ref.registry);
  if (d) return { user: d.user, password: d.password, source: d.file };
  return undefined;
}
