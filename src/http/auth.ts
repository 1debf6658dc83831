// Per-host credentials from `auth.d/*.json`, in rkt's format (rkt Documentation/configuration.md,
// rktKind "auth" and "dockerAuth", rktVersion "v1"), so an rkt config dir works unchanged:
//
//   {"rktKind": "auth", "rktVersion": "v1", "domains": ["example.com", "registry.example.com:8443"],
//    "type": "basic", "credentials": {"user": "foo", "password": "bar"}}
//   {"rktKind": "auth", "rktVersion": "v1", "domains": ["example.com"],
//    "type": "oauth", "credentials": {"token": "sometoken"}}
//   {"rktKind": "dockerAuth", "rktVersion": "v1", "registries": ["quay.io"],
//    "credentials": {"user": "foo", "password": "bar"}}
//
// - Two layers as for trusted keys (trust/keystore.ts): `<systemDir>/auth.d` (vendor) and
//   `<localDir>/auth.d` (admin). Overriding is per domain: a local entry replaces the system entry
//   for that domain only. Within one layer a domain defined in two files is an error (rkt's rule).
// - Only regular `*.json` files directly in auth.d are read; file names play no role.
// - A domain is a host with an optional port (RFC 3986 authority without userinfo), matched
//   against the request URL's host exactly, as rkt did (`Headers[u.Host]`, rkt/image/httpops.go):
//   `example.com` does not cover `example.com:8443` nor `sub.example.com`.
// - Credentials are sent over https only (rkt's rule), and each request carries only the
//   credentials of its own host: a redirect to another host never carries them (exchange.ts
//   computes the header per hop; rkt re-added its headers on every redirect, which leaked them).
// - Type `aws` (AWS signature v4) is parsed so rkt configs load, but using it is an error.
import fs from 'node:fs';
import path from 'node:path';

import { ValidationError } from '../errors.js';

export type AuthLayer = 'system' | 'local';

export type Credentials =
  | { type: 'basic'; user: string; password: string }
  | { type: 'oauth'; token: string }
  | { type: 'aws'; accessKeyID: string; secretAccessKey: string; awsRegion?: string };

export interface HostCredentials {
  /** The normalized domain: `host` or `host:port`, lowercase, without the default port 443. */
  domain: string;
  credentials: Credentials;
  /** The file that defined them (for errors and `config`-style listings). */
  file: string;
  layer: AuthLayer;
}

export interface DockerCredentials {
  registry: string;
  user: string;
  password: string;
  file: string;
  layer: AuthLayer;
}

export interface AuthConfig {
  /** Effective `auth` entries by normalized domain (local over system). */
  hosts: ReadonlyMap<string, HostCredentials>;
  /** Effective `dockerAuth` entries by registry (for the OCI fetcher). */
  dockerRegistries: ReadonlyMap<string, DockerCredentials>;
}

export const EMPTY_AUTH_CONFIG: AuthConfig = Object.freeze({ hosts: new Map(), dockerRegistries: new Map() });

export interface LoadAuthConfigOptions {
  /** `--system-config` (default /usr/lib/tspod). */
  systemDir: string;
  /** `--local-config` (default /etc/tspod). */
  localDir: string;
}

const FORMAT_HINT =
  'an auth.d file looks like {"rktKind": "auth", "rktVersion": "v1", "domains": ["example.com"], "type": "basic", "credentials": {"user": "u", "password": "p"}}';

/** Reads both layers' `auth.d/*.json`; errors name the file and every problem in it. */
export function loadAuthConfig(opts: LoadAuthConfigOptions): AuthConfig {
  const hosts = new Map<string, HostCredentials>();
  const dockerRegistries = new Map<string, DockerCredentials>();
  for (const [layer, dir] of [
    ['system', opts.systemDir],
    ['local', opts.localDir],
  ] as const) {
    const layerHosts = new Map<string, HostCredentials>();
    const layerRegistries = new Map<string, DockerCredentials>();
    for (const file of listConfigFiles(path.join(dir, 'auth.d'))) {
      const parsed = parseAuthFile(file, layer);
      for (const entry of parsed.hosts) {
        const earlier = layerHosts.get(entry.domain);
        if (earlier) {
          throw new ValidationError(`read auth config ${file}: domain ${entry.domain} is already defined in ${earlier.file}`, [], {
            suggestions: [`keep ${entry.domain} in one file of ${path.dirname(file)}`],
          });
        }
        layerHosts.set(entry.domain, entry);
      }
      for (const entry of parsed.registries) {
        const earlier = layerRegistries.get(entry.registry);
        if (earlier) {
          throw new ValidationError(`read auth config ${file}: registry ${entry.registry} is already defined in ${earlier.file}`, [], {
            suggestions: [`keep ${entry.registry} in one file of ${path.dirname(file)}`],
          });
        }
        layerRegistries.set(entry.registry, entry);
      }
    }
    // The local layer comes second: its entries replace the system ones, domain by domain.
    for (const [k, v] of layerHosts) hosts.set(k, v);
    for (const [k, v] of layerRegistries) dockerRegistries.set(k, v);
  }
  return { hosts, dockerRegistries };
}

/** Regular `*.json` files directly in `dir`, sorted; none when the directory does not exist. */
function listConfigFiles(dir: string): string[] {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') return [];
    throw new ValidationError(`read auth config ${dir}: ${(err as Error).message}`, [], { cause: err });
  }
  return names
    .filter((n) => n.endsWith('.json'))
    .sort()
    .map((n) => path.join(dir, n))
    .filter((f) => {
      try {
        return fs.statSync(f).isFile();
      } catch {
        return false; // a dangling symlink is not a config file
      }
    });
}

/**
 * The normalized form of a domain from a config file: lowercase host, optional port, the
 * default https port dropped (so `example.com:443` matches `https://example.com/`).
 */
export function normalizeDomain(domain: string): string | undefined {
  if (domain === '' || /[/?#@\s]/.test(domain)) return undefined;
  try {
    const u = new URL(`https://${domain}`);
    return u.host;
  } catch {
    return undefined;
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function nonEmptyString(v: unknown): v is string {
  return typeof v === 'string' && v !== '';
}

/** One file: `auth` or `dockerAuth`, version v1, all fields present and non-empty. */
export function parseAuthFile(file: string, layer: AuthLayer): { hosts: HostCredentials[]; registries: DockerCredentials[] } {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new ValidationError(`read auth config ${file}: ${(err as Error).message}`, [], { cause: err });
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new ValidationError(`read auth config ${file}: not valid JSON (${(err as Error).message})`, [], {
      cause: err,
      suggestions: [FORMAT_HINT],
    });
  }
  const fail = (problems: string[]): never => {
    throw new ValidationError(`read auth config ${file}`, problems, { suggestions: [FORMAT_HINT] });
  };
  if (!isObject(doc)) return fail(['must be a JSON object']);
  const problems: string[] = [];
  const kind = doc.rktKind;
  if (!nonEmptyString(kind)) problems.push('rktKind: missing or empty (auth or dockerAuth)');
  else if (kind !== 'auth' && kind !== 'dockerAuth') problems.push(`rktKind: "${kind}" is not a kind of auth.d (auth or dockerAuth)`);
  if (!nonEmptyString(doc.rktVersion)) problems.push('rktVersion: missing or empty (v1)');
  else if (doc.rktVersion !== 'v1') problems.push(`rktVersion: "${doc.rktVersion}" is not supported (v1)`);
  if (problems.length > 0) return fail(problems);

  const credentials = doc.credentials;
  if (kind === 'dockerAuth') {
    const registries = doc.registries;
    if (!Array.isArray(registries) || registries.length === 0 || !registries.every(nonEmptyString)) {
      problems.push('registries: must be a non-empty array of registry host names');
    }
    if (!isObject(credentials)) problems.push('credentials: must be an object with user and password');
    else {
      if (!nonEmptyString(credentials.user)) problems.push('credentials.user: missing or empty');
      if (!nonEmptyString(credentials.password)) problems.push('credentials.password: missing or empty');
    }
    if (problems.length > 0) return fail(problems);
    const c = credentials as { user: string; password: string };
    return {
      hosts: [],
      registries: (registries as string[]).map((registry) => ({ registry, user: c.user, password: c.password, file, layer })),
    };
  }

  const domains = doc.domains;
  const normalized: string[] = [];
  if (!Array.isArray(domains) || domains.length === 0) {
    problems.push('domains: must be a non-empty array of hosts (host or host:port)');
  } else {
    domains.forEach((d, i) => {
      const n = typeof d === 'string' ? normalizeDomain(d) : undefined;
      if (n === undefined) problems.push(`domains/${i}: ${JSON.stringify(d)} is not a host or host:port`);
      else normalized.push(n);
    });
  }
  let parsed: Credentials | undefined;
  const type = doc.type;
  if (!nonEmptyString(type)) problems.push('type: missing or empty (basic or oauth)');
  else if (!isObject(credentials)) problems.push(`credentials: must be an object (for type ${type})`);
  else if (type === 'basic') {
    if (!nonEmptyString(credentials.user)) problems.push('credentials.user: missing or empty');
    if (!nonEmptyString(credentials.password)) problems.push('credentials.password: missing or empty');
    parsed = { type, user: credentials.user as string, password: credentials.password as string };
  } else if (type === 'oauth') {
    if (!nonEmptyString(credentials.token)) problems.push('credentials.token: missing or empty');
    parsed = { type, token: credentials.token as string };
  } else if (type === 'aws') {
    if (!nonEmptyString(credentials.accessKeyID)) problems.push('credentials.accessKeyID: missing or empty');
    if (!nonEmptyString(credentials.secretAccessKey)) problems.push('credentials.secretAccessKey: missing or empty');
    parsed = {
      type,
      accessKeyID: credentials.accessKeyID as string,
      secretAccessKey: credentials.secretAccessKey as string,
      ...(nonEmptyString(credentials.awsRegion) ? { awsRegion: credentials.awsRegion } : {}),
    };
  } else {
    problems.push(`type: "${type}" is not supported (basic or oauth)`);
  }
  if (problems.length > 0 || parsed === undefined) return fail(problems);
  const creds = parsed;
  return { hosts: normalized.map((domain) => ({ domain, credentials: creds, file, layer })), registries: [] };
}

/** The entry for a request URL: https only, exact host[:port] match. */
export function credentialsFor(config: AuthConfig | undefined, url: URL): HostCredentials | undefined {
  if (config === undefined || url.protocol !== 'https:') return undefined;
  return config.hosts.get(url.host);
}

/** The Authorization header value for an entry: `Basic base64(user:password)` or `Bearer token`. */
export function authorizationHeader(entry: HostCredentials): string {
  const c = entry.credentials;
  switch (c.type) {
    case 'basic':
      // RFC 7617 §2: base64 of user-id ":" password, UTF-8 (the charset tspod always uses).
      return `Basic ${Buffer.from(`${c.user}:${c.password}`, 'utf8').toString('base64')}`;
    case 'oauth':
      // RFC 6750 §2.1: the Bearer scheme.
      return `Bearer ${c.token}`;
    case 'aws':
      throw new ValidationError(
        `authenticate to ${entry.domain}: credentials of type aws (${entry.file}) are not supported; use type basic or oauth`,
        [],
        { suggestions: [`edit or remove ${entry.file}`] },
      );
  }
}
