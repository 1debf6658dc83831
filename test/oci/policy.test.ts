// src/oci/policy.ts: policy.json validation (schemas/oci-policy.json), the local-over-system
// file rule, scope matching as containers-policy.json(5) orders it, and evaluation of reject /
// insecureAcceptAnything / a signedBy without signatures, with a real (empty) keystore.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { TrustError, ValidationError } from '../../src/errors.js';
import { BUILTIN_POLICY, dockerScopes, evaluatePolicy, layoutScopes, loadPolicy, parsePolicy, policyDockerScopes, requirementsFor, type OciPolicy, type PolicyImage } from '../../src/oci/policy.js';
import { parseDockerIdentity } from '../../src/oci/simple-signing.js';
import { libcSyscalls } from '../../src/sys/libc.js';
import { Keystore } from '../../src/trust/keystore.js';

const dirs: string[] = [];
const tmp = (): string => {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'tspod-policy-'));
  dirs.push(d);
  return d;
};
afterAll(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

describe('scopes', () => {
  it('docker: name:tag, then the repository and each namespace up to the registry', () => {
    expect(dockerScopes(parseDockerIdentity('reg.test:5000/a/b/c:1.0'))).toEqual(['reg.test:5000/a/b/c:1.0', 'reg.test:5000/a/b/c', 'reg.test:5000/a/b', 'reg.test:5000/a', 'reg.test:5000']);
    expect(dockerScopes(parseDockerIdentity('busybox'))).toEqual(['docker.io/library/busybox', 'docker.io/library', 'docker.io']);
  });

  it('policy.json docker: the same, then wildcards of the parent domains without the port (registries.d has none)', () => {
    expect(policyDockerScopes(parseDockerIdentity('a.b.example.com:5000/ns/app:1'))).toEqual([
      'a.b.example.com:5000/ns/app:1',
      'a.b.example.com:5000/ns/app',
      'a.b.example.com:5000/ns',
      'a.b.example.com:5000',
      '*.b.example.com',
      '*.example.com',
      '*.com',
    ]);
    expect(policyDockerScopes(parseDockerIdentity('localhost:5000/app'))).toEqual(['localhost:5000/app', 'localhost:5000']);
  });

  it('a wildcard covers subdomains only, after the registry itself and before "", the longest first', () => {
    const policy: OciPolicy = {
      default: [{ type: 'reject' }],
      transports: {
        docker: {
          '': [{ type: 'insecureAcceptAnything' }],
          '*.example.com': [{ type: 'reject' }],
          '*.b.example.com': [{ type: 'signedBy', keyType: 'GPGKeys' }],
          'x.example.com': [{ type: 'insecureAcceptAnything' }],
        },
      },
    };
    const of = (ref: string) => requirementsFor(policy, 'docker', policyDockerScopes(parseDockerIdentity(ref))).scope;
    expect(of('reg.example.com/app:1')).toBe('transports.docker["*.example.com"]');
    expect(of('reg.example.com:5000/app:1')).toBe('transports.docker["*.example.com"]');
    expect(of('a.b.example.com/app:1')).toBe('transports.docker["*.b.example.com"]');
    expect(of('x.example.com/app:1')).toBe('transports.docker["x.example.com"]');
    expect(of('example.com/app:1')).toBe('transports.docker[""]');
    expect(of('example.org/app:1')).toBe('transports.docker[""]');
  });

  it('oci: path:tag, then the path and its parents', () => {
    expect(layoutScopes('/srv/images/app', '1.0')).toEqual(['/srv/images/app:1.0', '/srv/images/app', '/srv/images', '/srv', '/']);
  });

  it('the most specific scope present wins, then the transport default "", then default', () => {
    const policy: OciPolicy = {
      default: [{ type: 'reject' }],
      transports: {
        docker: {
          'reg.test/a': [{ type: 'insecureAcceptAnything' }],
          'reg.test/a/b:1.0': [{ type: 'signedBy', keyType: 'GPGKeys' }],
          '': [{ type: 'signedBy', keyType: 'GPGKeys', keyPath: '/k' }],
        },
      },
    };
    const of = (ref: string) => requirementsFor(policy, 'docker', dockerScopes(parseDockerIdentity(ref))).scope;
    expect(of('reg.test/a/b:1.0')).toBe('transports.docker["reg.test/a/b:1.0"]');
    expect(of('reg.test/a/b:2.0')).toBe('transports.docker["reg.test/a"]');
    expect(of('reg.test/ab:1')).toBe('transports.docker[""]');
    expect(requirementsFor(policy, 'oci', layoutScopes('/x', undefined)).scope).toBe('default');
    // `constructor` and friends are not scopes.
    expect(of('constructor/x:1')).toBe('transports.docker[""]');
  });
});

describe('policy.json validation and loading', () => {
  it('accepts the containers shapes tspod implements', () => {
    const doc = {
      default: [{ type: 'reject' }],
      transports: {
        docker: {
          'reg.test': [{ type: 'signedBy', keyType: 'GPGKeys', keyPaths: ['/a.gpg', '/b.gpg'], signedIdentity: { type: 'matchRepository' } }],
          'reg.test/x': [{ type: 'signedBy', keyType: 'GPGKeys', keyData: 'bWFkZSB1cA==', signedIdentity: { type: 'exactReference', dockerReference: 'reg.test/y:1' } }],
          '*.mirror.test': [{ type: 'signedBy', keyType: 'GPGKeys', signedIdentity: { type: 'remapIdentity', prefix: 'eu.mirror.test:5000/vendor', signedPrefix: 'vendor.test' } }],
          'reg.test/lib': [{ type: 'signedBy', keyType: 'GPGKeys', signedIdentity: { type: 'remapIdentity', prefix: 'reg.test/lib', signedPrefix: 'docker.io/library' } }],
        },
        oci: { '/srv': [{ type: 'insecureAcceptAnything' }] },
      },
    };
    expect(parsePolicy(JSON.stringify(doc), 'p.json')).toEqual(doc);
  });

  it.each([
    ['{"default":[]}', /must be a non-empty list/],
    ['{"default":[{"type":"sigstoreSigned"}]}', /sigstoreSigned is not supported/],
    ['{"default":[{"type":"signedBy","keyType":"GPGKeys","keyPath":"rel.gpg"}]}', /must be an absolute path/],
    ['{"default":[{"type":"signedBy","keyType":"GPGKeys","keyPath":"/a","keyData":"eA=="}]}', /at most one of keyPath, keyPaths, keyData/],
    ['{"default":[{"type":"signedBy"}]}', /signedBy takes keyType/],
    ['{"default":[{"type":"signedBy","keyType":"X509"}]}', /must be "GPGKeys"/],
    ['{"default":[{"type":"reject","keyPath":"/a"}]}', /take no other member/],
    ['{"default":[{"type":"signedBy","keyType":"GPGKeys","signedIdentity":{"type":"remapIdentity","prefix":"a.test/x"}}]}', /remapIdentity takes prefix and signedPrefix/],
    ['{"default":[{"type":"signedBy","keyType":"GPGKeys","signedIdentity":{"type":"remapIdentity","prefix":"a.test/x:1","signedPrefix":"b.test"}}]}', /prefix: "a.test\/x:1" must name a namespace or repository, without tag or digest/],
    ['{"default":[{"type":"signedBy","keyType":"GPGKeys","signedIdentity":{"type":"remapIdentity","prefix":"a.test","signedPrefix":"library/busybox"}}]}', /signedPrefix: "library\/busybox" must be in the fully expanded form, starting with its registry \(e\.g\. "docker\.io\/library\/busybox"\)/],
    ['{"default":[{"type":"signedBy","keyType":"GPGKeys","signedIdentity":{"type":"matchRepository","prefix":"a.test"}}]}', /take no other member|takes no other member/],
    ['{"default":[{"type":"reject"}],"transports":{"docker":{"example*.*.com":[{"type":"reject"}]}}}', /"example\*\.\*\.com": a wildcard scope is "\*\.DOMAIN"/],
    ['{"default":[{"type":"reject"}],"transports":{"docker":{"*.example.com:5000":[{"type":"reject"}]}}}', /a wildcard scope is "\*\.DOMAIN" \(every subdomain of DOMAIN, no port or path\)/],
    ['{"default":[{"type":"reject"}],"transports":{"docker":{"*.example.com/ns":[{"type":"reject"}]}}}', /a wildcard scope is/],
    ['{"default":[{"type":"reject"}],"transports":{"oci":{"/srv/*":[{"type":"reject"}]}}}', /wildcard scopes exist for the docker transport only/],
    ['{"default":[{"type":"signedBy","keyType":"GPGKeys","signedIdentity":{"type":"exactReference"}}]}', /exactReference takes dockerReference/],
    ['{"default":[{"type":"reject"}],"transports":{"atomic":{}}}', /transports are/],
    ['{"transports":{}}', /must have required property 'default'|must be an object/],
    ['{"default":', /not valid JSON/],
  ])('refuses %s', (text, re) => {
    let err: unknown;
    try {
      parsePolicy(text, '/etc/tspod/policy.json');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ValidationError);
    expect((err as Error).message).toMatch(/^\/etc\/tspod\/policy\.json: /);
    expect((err as Error).message).toMatch(re);
  });

  it('the local policy.json wins whole over the system one; neither: the built-in default', () => {
    const local = tmp();
    const system = tmp();
    expect(loadPolicy({ localDir: local, systemDir: system })).toEqual({ policy: BUILTIN_POLICY, file: undefined });
    fs.writeFileSync(path.join(system, 'policy.json'), JSON.stringify({ default: [{ type: 'reject' }], transports: { docker: { x: [{ type: 'insecureAcceptAnything' }] } } }));
    expect(loadPolicy({ localDir: local, systemDir: system }).file).toBe(path.join(system, 'policy.json'));
    fs.writeFileSync(path.join(local, 'policy.json'), JSON.stringify({ default: [{ type: 'insecureAcceptAnything' }] }));
    const loaded = loadPolicy({ localDir: local, systemDir: system });
    expect(loaded).toEqual({ policy: { default: [{ type: 'insecureAcceptAnything' }] }, file: path.join(local, 'policy.json') });
  });
});

describe('evaluation', () => {
  const keystore = (): Keystore => new Keystore({ systemDir: tmp(), localDir: tmp(), sys: libcSyscalls });
  const docker = parseDockerIdentity('reg.test/team/app:1.0');
  const image: PolicyImage = { transport: 'docker', reference: 'docker://reg.test/team/app:1.0', docker, scopes: dockerScopes(docker), editScope: docker.name, digests: [`sha256:${'b'.repeat(64)}`] };

  it('insecureAcceptAnything accepts with no signer and asks for no signature', async () => {
    let asked = 0;
    const d = await evaluatePolicy({ policy: { default: [{ type: 'insecureAcceptAnything' }] }, file: '/p.json' }, image, {
      keystore: keystore(),
      signatures: async () => (asked++, []),
      noSignatureHints: [],
    });
    expect(d).toEqual({ signer: null, scope: 'default', file: '/p.json' });
    expect(asked).toBe(0);
  });

  it('every requirement of the scope must pass: a reject after an accept refuses, naming scope, requirement and the edit', async () => {
    const policy: OciPolicy = { default: [{ type: 'insecureAcceptAnything' }], transports: { docker: { 'reg.test/team': [{ type: 'insecureAcceptAnything' }, { type: 'reject' }] } } };
    const err = await evaluatePolicy({ policy, file: '/etc/tspod/policy.json' }, image, { keystore: keystore(), signatures: async () => [], noSignatureHints: [] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TrustError);
    expect((err as TrustError).message).toBe('image docker://reg.test/team/app:1.0: refused by /etc/tspod/policy.json, scope transports.docker["reg.test/team"]: requirement 2 (reject) rejects every image there');
    expect((err as TrustError).suggestions[0]).toMatch(/^edit \/etc\/tspod\/policy\.json: give "reg\.test\/team\/app" under transports\.docker/);
  });

  it('the built-in signedBy with no signature refuses with the hints and the insecure option', async () => {
    const err = await evaluatePolicy({ policy: BUILTIN_POLICY, file: undefined }, image, { keystore: keystore(), signatures: async () => [], noSignatureHints: ['HINT'] }).catch((e: unknown) => e);
    expect((err as TrustError).message).toMatch(/refused by the built-in default policy \(no policy\.json\), scope default: requirement 1 \(signedBy\): a signature is required, but the image has none$/);
    expect((err as TrustError).suggestions).toEqual(expect.arrayContaining(['HINT', 'skip the check (stored unverified): tspod fetch --insecure-options=image docker://reg.test/team/app:1.0']));
  });

  it('a signature that is not one is listed as the reason, not taken for "unsigned"', async () => {
    const err = await evaluatePolicy({ policy: BUILTIN_POLICY, file: undefined }, image, {
      keystore: keystore(),
      signatures: async () => [{ bytes: new Uint8Array([1, 2, 3]), source: 'https://sigs.test/x/signature-1' }],
      noSignatureHints: [],
    }).catch((e: unknown) => e);
    expect((err as TrustError).message).toMatch(/no signature is acceptable: signature https:\/\/sigs\.test\/x\/signature-1: not an OpenPGP signed message/);
  });
});
