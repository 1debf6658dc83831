// auth.d in rkt's format: two layers overriding per domain, the errors for malformed files (each
// naming its file), host matching, and the Authorization header values. The "only to its host"
// behaviour over real servers and redirects is in connections.test.ts.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { afterAll, beforeEach, describe, expect, it } from 'vitest';

import { ValidationError } from '../../src/errors.js';
import { authorizationHeader, credentialsFor, loadAuthConfig, normalizeDomain } from '../../src/http/auth.js';

const base = fs.mkdtempSync(path.join(os.tmpdir(), 'tspod-auth-'));
let n = 0;
let systemDir: string;
let localDir: string;

function write(dir: string, name: string, doc: unknown): string {
  const file = path.join(dir, 'auth.d', name);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, typeof doc === 'string' ? doc : JSON.stringify(doc));
  return file;
}

const basic = (domains: string[], user = 'foo', password = 'bar') => ({
  rktKind: 'auth',
  rktVersion: 'v1',
  domains,
  type: 'basic',
  credentials: { user, password },
});
const oauth = (domains: string[], token: string) => ({ rktKind: 'auth', rktVersion: 'v1', domains, type: 'oauth', credentials: { token } });

function loadError(): ValidationError {
  try {
    loadAuthConfig({ systemDir, localDir });
  } catch (err) {
    expect(err).toBeInstanceOf(ValidationError);
    return err as ValidationError;
  }
  throw new Error('expected loadAuthConfig to fail');
}

beforeEach(() => {
  n += 1;
  systemDir = path.join(base, `sys${n}`);
  localDir = path.join(base, `local${n}`);
});

afterAll(() => fs.rmSync(base, { recursive: true, force: true }));

describe('loading auth.d', () => {
  it('reads nothing when neither layer has an auth.d', () => {
    const config = loadAuthConfig({ systemDir, localDir });
    expect(config.hosts.size).toBe(0);
  });

  it('overrides per domain, local over system (rkt configuration.md example)', () => {
    write(systemDir, 'coreos.json', oauth(['coreos.com', 'tectonic.com', 'kubernetes.io'], 'common-token'));
    const coreos = write(localDir, 'specific-coreos.json', basic(['coreos.com']));
    write(localDir, 'specific-tectonic.json', oauth(['tectonic.com'], 'tectonic-token'));
    const config = loadAuthConfig({ systemDir, localDir });
    const header = (host: string) => authorizationHeader(credentialsFor(config, new URL(`https://${host}/x.aci`))!);
    expect(header('kubernetes.io')).toBe('Bearer common-token');
    expect(header('coreos.com')).toBe('Basic Zm9vOmJhcg==');
    expect(header('tectonic.com')).toBe('Bearer tectonic-token');
    expect(config.hosts.get('coreos.com')).toMatchObject({ file: coreos, layer: 'local' });
    expect(config.hosts.get('kubernetes.io')).toMatchObject({ layer: 'system' });
  });

  it('ignores files not ending in .json and subdirectories', () => {
    write(localDir, 'README', 'not json at all');
    write(localDir, 'notes.json.bak', 'nope');
    fs.mkdirSync(path.join(localDir, 'auth.d', 'sub.json'));
    write(localDir, 'ok.json', basic(['example.com']));
    expect([...loadAuthConfig({ systemDir, localDir }).hosts.keys()]).toEqual(['example.com']);
  });

  it('reads dockerAuth files into the registry map', () => {
    write(systemDir, 'docker.json', { rktKind: 'dockerAuth', rktVersion: 'v1', registries: ['quay.io', 'gcr.io'], credentials: { user: 'foo', password: 'bar' } });
    write(localDir, 'quay.json', { rktKind: 'dockerAuth', rktVersion: 'v1', registries: ['quay.io'], credentials: { user: 'baz', password: 'quux' } });
    const config = loadAuthConfig({ systemDir, localDir });
    expect(config.dockerRegistries.get('quay.io')).toMatchObject({ user: 'baz', password: 'quux', layer: 'local' });
    expect(config.dockerRegistries.get('gcr.io')).toMatchObject({ user: 'foo', layer: 'system' });
    expect(config.hosts.size).toBe(0);
  });

  it('refuses a domain defined in two files of one layer, naming both files', () => {
    const a = write(localDir, 'a.json', basic(['example.com']));
    const b = write(localDir, 'b.json', oauth(['Example.COM'], 't'));
    const err = loadError();
    expect(err.message).toBe(`read auth config ${b}: domain example.com is already defined in ${a}`);
  });

  it('refuses invalid JSON, naming the file', () => {
    const file = write(localDir, 'broken.json', '{"rktKind": "auth",');
    const err = loadError();
    expect(err.message).toMatch(new RegExp(`^read auth config ${file}: not valid JSON \\(`));
    expect(err.suggestions[0]).toContain('"rktKind": "auth"');
  });

  const malformed: [string, unknown, string[]][] = [
    ['an array', [], ['must be a JSON object']],
    ['missing rktKind and rktVersion', { domains: ['a.com'] }, ['rktKind: missing or empty (auth or dockerAuth)', 'rktVersion: missing or empty (v1)']],
    ['another kind', { ...basic(['a.com']), rktKind: 'paths' }, ['rktKind: "paths" is not a kind of auth.d (auth or dockerAuth)']],
    ['version v2', { ...basic(['a.com']), rktVersion: 'v2' }, ['rktVersion: "v2" is not supported (v1)']],
    ['no domains', { ...basic([]) }, ['domains: must be a non-empty array of hosts (host or host:port)']],
    ['a URL as domain', basic(['https://a.com/path']), ['domains/0: "https://a.com/path" is not a host or host:port']],
    ['basic without password', { ...basic(['a.com']), credentials: { user: 'u' } }, ['credentials.password: missing or empty']],
    ['oauth with an empty token', oauth(['a.com'], ''), ['credentials.token: missing or empty']],
    ['an unknown type', { ...basic(['a.com']), type: 'digest' }, ['type: "digest" is not supported (basic or oauth)']],
    ['no credentials', { rktKind: 'auth', rktVersion: 'v1', domains: ['a.com'], type: 'basic' }, ['credentials: must be an object (for type basic)']],
  ];
  it.each(malformed)('refuses a file with %s, listing the problems', (_name, doc, problems) => {
    const file = write(systemDir, 'bad.json', doc);
    const err = loadError();
    expect(err.message).toBe(`read auth config ${file}: ${problems.join('; ')}`);
    expect(err.problems).toEqual(problems);
  });

  it('loads type aws (so rkt configs work) but refuses to use it, naming the file', () => {
    const file = write(localDir, 's3.json', {
      rktKind: 'auth',
      rktVersion: 'v1',
      domains: ['bucket.s3.amazonaws.com'],
      type: 'aws',
      credentials: { accessKeyID: 'AK', secretAccessKey: 'SK' },
    });
    const config = loadAuthConfig({ systemDir, localDir });
    const entry = credentialsFor(config, new URL('https://bucket.s3.amazonaws.com/a.aci'))!;
    expect(() => authorizationHeader(entry)).toThrow(`authenticate to bucket.s3.amazonaws.com: credentials of type aws (${file}) are not supported; use type basic or oauth`);
  });
});

describe('matching a request URL', () => {
  it('normalizes domains: lowercase, default port dropped, explicit port kept', () => {
    expect(normalizeDomain('Example.COM')).toBe('example.com');
    expect(normalizeDomain('example.com:443')).toBe('example.com');
    expect(normalizeDomain('example.com:8443')).toBe('example.com:8443');
    expect(normalizeDomain('127.0.0.1:9000')).toBe('127.0.0.1:9000');
    expect(normalizeDomain('user@example.com')).toBeUndefined();
    expect(normalizeDomain('example.com/path')).toBeUndefined();
    expect(normalizeDomain('')).toBeUndefined();
  });

  it('matches host[:port] exactly, over https only', () => {
    write(localDir, 'a.json', basic(['example.com', 'registry.example.com:8443']));
    const config = loadAuthConfig({ systemDir, localDir });
    const match = (u: string) => credentialsFor(config, new URL(u))?.domain;
    expect(match('https://example.com/a.aci')).toBe('example.com');
    expect(match('https://EXAMPLE.com:443/a.aci')).toBe('example.com');
    expect(match('https://registry.example.com:8443/v2/')).toBe('registry.example.com:8443');
    expect(match('https://example.com:8443/a.aci')).toBeUndefined();
    expect(match('https://sub.example.com/a.aci')).toBeUndefined();
    expect(match('https://example.com.evil.net/a.aci')).toBeUndefined();
    expect(match('http://example.com/a.aci')).toBeUndefined();
  });

  it('encodes basic credentials as UTF-8 base64 (RFC 7617) and oauth as Bearer (RFC 6750)', () => {
    write(localDir, 'a.json', basic(['a.com'], 'jürgen', 'pa:ss'));
    write(localDir, 'b.json', oauth(['b.com'], 'tok-123'));
    const config = loadAuthConfig({ systemDir, localDir });
    const a = authorizationHeader(credentialsFor(config, new URL('https://a.com/'))!);
    expect(Buffer.from(a.replace(/^Basic /, ''), 'base64').toString('utf8')).toBe('jürgen:pa:ss');
    expect(authorizationHeader(credentialsFor(config, new URL('https://b.com/'))!)).toBe('Bearer tok-123');
  });
});
