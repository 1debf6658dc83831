// Pure parts of the registry client, as data: reference parsing and Docker Hub normalisation,
// platform selection, WWW-Authenticate parsing, and credentials from auth.json / config.json / auth.d.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { NotFoundError, UsageError, ValidationError } from '../../src/errors.js';
import type { AuthConfig } from '../../src/http/auth.js';
import { findRegistryCredentials, normalizeAuthKey } from '../../src/oci/docker-auth.js';
import type { Descriptor } from '../../src/oci/media-types.js';
import { ociArchitecture, selectPlatform } from '../../src/oci/platform.js';
import { formatReference, parseReference } from '../../src/oci/reference.js';
import { parseChallenge, tokenUrl } from '../../src/oci/registry.js';

const D = `sha256:${'a'.repeat(64)}`;

describe('parseReference', () => {
  const cases: [string, { registry: string; endpoint: string; repository: string; tag: string | undefined; digest: string | undefined }][] = [
    ['docker://busybox', { registry: 'docker.io', endpoint: 'registry-1.docker.io', repository: 'library/busybox', tag: 'latest', digest: undefined }],
    ['docker://docker.io/library/nginx:1.27', { registry: 'docker.io', endpoint: 'registry-1.docker.io', repository: 'library/nginx', tag: '1.27', digest: undefined }],
    ['docker://index.docker.io/nginx', { registry: 'docker.io', endpoint: 'registry-1.docker.io', repository: 'library/nginx', tag: 'latest', digest: undefined }],
    ['docker://user/app:v1', { registry: 'docker.io', endpoint: 'registry-1.docker.io', repository: 'user/app', tag: 'v1', digest: undefined }],
    ['docker://127.0.0.1:5000/test:latest', { registry: '127.0.0.1:5000', endpoint: '127.0.0.1:5000', repository: 'test', tag: 'latest', digest: undefined }],
    ['docker://localhost/a/b/c', { registry: 'localhost', endpoint: 'localhost', repository: 'a/b/c', tag: 'latest', digest: undefined }],
    [`docker://quay.io/team/app@${D}`, { registry: 'quay.io', endpoint: 'quay.io', repository: 'team/app', tag: undefined, digest: D }],
    [`registry.example.com:8443/team/app:1.0@${D}`, { registry: 'registry.example.com:8443', endpoint: 'registry.example.com:8443', repository: 'team/app', tag: '1.0', digest: D }],
  ];
  it.each(cases)('%s', (input, want) => {
    expect(parseReference(input)).toEqual(want);
  });

  it.each([
    ['docker://', /empty reference/],
    ['docker://Busybox', /not a valid repository component/],
    ['docker://busybox:bad/tag', /"busybox:bad" is not a registry host/],
    ['docker://busybox@sha256:abc', /not a digest|not supported/],
    ['docker://busybox@sha512:' + 'a'.repeat(128), /sha256 only/],
    ['docker://busybox:-x', /not a valid tag/],
  ])('refuses %s', (input, message) => {
    expect(() => parseReference(input)).toThrow(UsageError);
    expect(() => parseReference(input)).toThrow(message);
  });

  it('formats back to the canonical form', () => {
    expect(formatReference(parseReference('busybox'))).toBe('docker://docker.io/library/busybox:latest');
  });
});

describe('selectPlatform', () => {
  const m = (architecture: string, variant?: string, os = 'linux'): Descriptor => ({
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    digest: `sha256:${architecture.padEnd(64, '0').slice(0, 64).replace(/[^a-f0-9]/g, '0')}`,
    size: 1,
    platform: { os, architecture, ...(variant ? { variant } : {}) },
  });
  const index = [m('amd64'), m('arm', 'v6'), m('arm', 'v7'), m('arm64', 'v8'), m('amd64', undefined, 'windows')];

  it('picks by os and architecture', () => {
    expect(selectPlatform(index, { os: 'linux', architecture: 'amd64' })).toBe(index[0]);
    expect(selectPlatform(index, { os: 'windows', architecture: 'amd64' })).toBe(index[4]);
  });
  it('picks by variant (arm/v7), and arm64 without a variant means v8', () => {
    expect(selectPlatform(index, { os: 'linux', architecture: 'arm', variant: 'v7' })).toBe(index[2]);
    expect(selectPlatform([m('arm64')], { os: 'linux', architecture: 'arm64', variant: 'v8' }).platform?.architecture).toBe('arm64');
  });
  it('lists the available platforms when none matches (linux/ppc64le)', () => {
    const err = (() => {
      try {
        selectPlatform(index, { os: 'linux', architecture: 'ppc64le' }, 'docker://x/y:1');
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(NotFoundError);
    expect((err as Error).message).toBe(
      'select platform linux/ppc64le from docker://x/y:1: no manifest for it; available: linux/amd64, linux/arm/v6, linux/arm/v7, linux/arm64/v8, windows/amd64',
    );
  });
  it('maps node architectures to OCI names', () => {
    expect(ociArchitecture('x64')).toBe('amd64');
    expect(ociArchitecture('ia32')).toBe('386');
    expect(ociArchitecture('arm64')).toBe('arm64');
  });
});

describe('parseChallenge / tokenUrl', () => {
  it('parses a Docker Hub bearer challenge', () => {
    const c = parseChallenge('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull"');
    expect(c).toEqual({ scheme: 'bearer', params: { realm: 'https://auth.docker.io/token', service: 'registry.docker.io', scope: 'repository:library/busybox:pull' } });
    expect(tokenUrl(c!, 'library/busybox').href).toBe('https://auth.docker.io/token?service=registry.docker.io&scope=repository%3Alibrary%2Fbusybox%3Apull');
  });
  it('parses basic with a realm and unquoted values', () => {
    expect(parseChallenge('Basic realm="Registry Realm"')).toEqual({ scheme: 'basic', params: { realm: 'Registry Realm' } });
    expect(parseChallenge('Bearer realm=https://a/t, service=s')).toEqual({ scheme: 'bearer', params: { realm: 'https://a/t', service: 's' } });
  });
  it('asks for a pull scope of the repository when the challenge has none', () => {
    expect(tokenUrl({ scheme: 'bearer', params: { realm: 'https://a/t' } }, 'team/app').searchParams.get('scope')).toBe('repository:team/app:pull');
  });
});

describe('findRegistryCredentials', () => {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'tspod-docker-auth-'));
  afterAll(() => fs.rmSync(base, { recursive: true, force: true }));
  const b64 = (s: string): string => Buffer.from(s).toString('base64');
  const write = (file: string, doc: unknown): string => {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, JSON.stringify(doc));
    return file;
  };
  const runtime = path.join(base, 'run');
  const home = path.join(base, 'home');
  write(path.join(runtime, 'containers', 'auth.json'), {
    auths: { 'quay.io': { auth: b64('q:p:with:colons') }, 'quay.io/team/secret': { auth: b64('s:1') } },
  });
  write(path.join(home, '.docker', 'config.json'), {
    auths: { 'https://index.docker.io/v1/': { auth: b64('hub:2') }, 'quay.io': { auth: b64('ignored:3') }, 'bad.example': { auth: b64('nocolon') } },
  });
  const opts = { env: { XDG_RUNTIME_DIR: runtime }, home };

  it('takes auth.json first, with the password kept whole after the first colon', () => {
    expect(findRegistryCredentials(parseReference('quay.io/team/app'), opts)).toMatchObject({ user: 'q', password: 'p:with:colons' });
  });
  it('prefers the most specific key (registry/namespace/repository)', () => {
    expect(findRegistryCredentials(parseReference('quay.io/team/secret'), opts)).toMatchObject({ user: 's', password: '1' });
  });
  it('maps docker login\'s https://index.docker.io/v1/ key to docker.io', () => {
    expect(normalizeAuthKey('https://index.docker.io/v1/')).toBe('docker.io');
    expect(findRegistryCredentials(parseReference('busybox'), opts)).toMatchObject({ user: 'hub', password: '2' });
  });
  it('falls back to auth.d dockerAuth entries, then to anonymous', () => {
    const auth: AuthConfig = {
      hosts: new Map(),
      dockerRegistries: new Map([['ghcr.io', { registry: 'ghcr.io', user: 'g', password: '4', file: '/etc/tspod/auth.d/ghcr.json', layer: 'local' }]]),
    };
    expect(findRegistryCredentials(parseReference('ghcr.io/o/r'), { ...opts, auth })).toMatchObject({ user: 'g', password: '4', source: '/etc/tspod/auth.d/ghcr.json' });
    expect(findRegistryCredentials(parseReference('example.org/o/r'), { ...opts, auth })).toBeUndefined();
  });
  it('refuses an auth field that is not base64 of user:password, naming the file', () => {
    expect(() => findRegistryCredentials(parseReference('bad.example/x'), opts)).toThrow(ValidationError);
    expect(() => findRegistryCredentials(parseReference('bad.example/x'), opts)).toThrow(/config\.json \(bad\.example\)/);
  });
});
