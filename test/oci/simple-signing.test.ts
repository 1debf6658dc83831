// src/oci/simple-signing.ts against signatures made by real tools: `skopeo standalone-sign` for the
// well-formed ones, and `gpg --sign` (the same OpenPGP signed-message form) over hand-written
// payloads for hostile ones: unknown critical members, duplicated members, wrong types, two
// signers, a detached signature, garbage. Plus the signedIdentity rules, table-driven.
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import * as openpgp from 'openpgp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { TrustError } from '../../src/errors.js';
import {
  firstDuplicateMember,
  identityMismatch,
  parseDockerIdentity,
  parseSignaturePayload,
  UntrustedSignerError,
  verifySimpleSignature,
  type SignedIdentity,
} from '../../src/oci/simple-signing.js';
import type { CandidateKey } from '../../src/trust/verify.js';
import { GpgHome, hasGpg, type GpgKey } from '../support/gpg.js';
import { hasCommand } from '../support/tools.js';

const hasSkopeo = hasCommand('skopeo', ['--version']);
const DIGEST = `sha256:${'a'.repeat(64)}`;

function payload(over: { critical?: object; optional?: object; raw?: string } = {}): string {
  if (over.raw !== undefined) return over.raw;
  return JSON.stringify({
    critical: over.critical ?? { type: 'atomic container signature', image: { 'docker-manifest-digest': DIGEST }, identity: { 'docker-reference': 'example.test/app:1.0' } },
    optional: over.optional ?? { creator: 'test', timestamp: 1700000000 },
  });
}

describe.skipIf(!hasGpg)('simple signatures (gpg)', () => {
  let gpg: GpgHome;
  let a: GpgKey;
  let b: GpgKey;
  let work: string;
  let keyA: CandidateKey;
  let keyB: CandidateKey;

  const gpgSign = (text: string, signers: GpgKey[] = [a], extra: string[] = []): Uint8Array => {
    const file = path.join(work, `p-${crypto.randomUUID()}`);
    fs.writeFileSync(file, text);
    return new Uint8Array(gpg.run([...signers.flatMap((k) => ['-u', k.fingerprint]), ...extra, '--output', '-', file]));
  };
  const verify = (bytes: Uint8Array, keys: CandidateKey[] = [keyA]) => verifySimpleSignature(bytes, { keys, name: 'docker://example.test/app', what: 'signature t' });

  beforeAll(async () => {
    gpg = new GpgHome();
    a = gpg.genKey('A <a@example.test>');
    b = gpg.genKey('B <b@example.test>');
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'tspod-simple-sig-'));
    const candidate = async (k: GpgKey): Promise<CandidateKey> => ({ fingerprint: k.fp, key: await openpgp.readKey({ armoredKey: gpg.exportPublic(k.fingerprint).toString() }) });
    keyA = await candidate(a);
    keyB = await candidate(b);
  });

  afterAll(() => {
    gpg?.cleanup();
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  it.skipIf(!hasSkopeo)('verifies what skopeo standalone-sign writes, digest of the manifest bytes and identity as signed', async () => {
    const manifest = Buffer.from('{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}');
    fs.writeFileSync(path.join(work, 'm.json'), manifest);
    execFileSync('skopeo', ['standalone-sign', path.join(work, 'm.json'), 'example.test/app:1.0', a.fingerprint, '-o', path.join(work, 'sig')], {
      env: { ...process.env, GNUPGHOME: gpg.home },
      stdio: 'pipe',
    });
    const v = await verify(new Uint8Array(fs.readFileSync(path.join(work, 'sig'))));
    expect(v.signerFingerprint).toBe(a.fp);
    expect(v.manifestDigest).toBe(`sha256:${crypto.createHash('sha256').update(manifest).digest('hex')}`);
    expect(v.dockerReference).toBe('example.test/app:1.0');
    expect(v.creator).toMatch(/^atomic /);
  });

  it('verifies a gpg --sign message over a well-formed payload (compressed and not)', async () => {
    for (const extra of [[], ['--compress-algo', 'none']]) {
      const v = await verify(gpgSign(payload(), [a], ['--sign', ...extra]));
      expect(v).toMatchObject({ signerFingerprint: a.fp, manifestDigest: DIGEST, dockerReference: 'example.test/app:1.0', creator: 'test', timestamp: 1700000000 });
    }
  });

  it('refuses a signature by a key that is not a candidate, naming its fingerprint and the trust command', async () => {
    const err = await verify(gpgSign(payload(), [b], ['--sign'])).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UntrustedSignerError);
    expect((err as UntrustedSignerError).message).toContain(`signed by key ${b.fp}, which is not trusted for docker://example.test/app`);
    expect((err as UntrustedSignerError).suggestions[0]).toMatch(/^tspod trust --prefix docker:\/\/example\.test\/app KEYFILE/);
    // With B among the candidates it verifies.
    await expect(verify(gpgSign(payload(), [b], ['--sign']), [keyA, keyB])).resolves.toMatchObject({ signerFingerprint: b.fp });
  });

  it('refuses two signatures in one message, a detached signature, a clearsigned text and garbage', async () => {
    await expect(verify(gpgSign(payload(), [a, b], ['--sign']), [keyA, keyB])).rejects.toThrow(/holds 2 signatures/);
    await expect(verify(gpgSign(payload(), [a], ['--detach-sign']))).rejects.toThrow(TrustError);
    await expect(verify(gpgSign(payload(), [a], ['--clearsign']))).rejects.toThrow(/not an OpenPGP signed message/);
    await expect(verify(new Uint8Array(crypto.randomBytes(200)))).rejects.toThrow(/not an OpenPGP signed message/);
    await expect(verify(new Uint8Array())).rejects.toThrow(TrustError);
  });

  it('refuses a tampered message: one byte of the literal data changed', async () => {
    const bytes = gpgSign(payload(), [a], ['--sign', '--compress-algo', 'none']);
    const text = Buffer.from(bytes);
    const at = text.indexOf('example.test/app:1.0');
    expect(at).toBeGreaterThan(0);
    text[at] = 'E'.charCodeAt(0);
    await expect(verify(new Uint8Array(text))).rejects.toThrow(new RegExp(`signature by key ${a.fp} does not verify`));
  });

  it('refuses hostile payloads even when correctly signed', async () => {
    const cases: [string, RegExp][] = [
      [payload({ critical: { type: 'atomic container signature', image: { 'docker-manifest-digest': DIGEST }, identity: { 'docker-reference': 'x.test/a:1' }, extra: 1 } }), /"critical" has unknown member "extra"/],
      [payload({ critical: { type: 'atomic container signature', image: { 'docker-manifest-digest': DIGEST, more: 'x' }, identity: { 'docker-reference': 'x.test/a:1' } } }), /"critical.image" has unknown member "more"/],
      [payload({ critical: { type: 'atomic container signature', image: { 'docker-manifest-digest': DIGEST }, identity: { 'docker-reference': 'x.test/a:1', x: 1 } } }), /"critical.identity" has unknown member "x"/],
      [payload({ critical: { type: 'cosign container image signature', image: { 'docker-manifest-digest': DIGEST }, identity: { 'docker-reference': 'x.test/a:1' } } }), /signature type "cosign container image signature"/],
      [payload({ critical: { type: 'atomic container signature', image: { 'docker-manifest-digest': 'not a digest' }, identity: { 'docker-reference': 'x.test/a:1' } } }), /is not a digest/],
      [payload({ critical: { type: 'atomic container signature', image: {}, identity: { 'docker-reference': 'x.test/a:1' } } }), /"critical.image" has no "docker-manifest-digest"/],
      [payload({ raw: `{"critical":{"type":"atomic container signature","image":{"docker-manifest-digest":"${DIGEST}"},"identity":{"docker-reference":"a.test/x:1","docker-reference":"b.test/y:1"}},"optional":{}}` }), /repeats the member "docker-reference"/],
      [payload({ raw: `{"critical":{"type":"atomic container signature","image":{"docker-manifest-digest":"${DIGEST}"},"identity":{"docker-reference":"a.test/x:1"}}}` }), /the payload has no "optional"/],
      [payload({ raw: `{"critical":{"type":"atomic container signature","image":{"docker-manifest-digest":"${DIGEST}"},"identity":{"docker-reference":"a.test/x:1"}},"optional":{},"extra":true}` }), /the payload has unknown member "extra"/],
      [payload({ optional: { timestamp: 'yesterday' } }), /"optional.timestamp" is not an integer/],
      [payload({ raw: '[1,2,3]' }), /the payload is not a JSON object/],
      [payload({ raw: 'not json' }), /not JSON/],
    ];
    for (const [text, re] of cases) {
      await expect(verify(gpgSign(text, [a], ['--sign'])), text).rejects.toThrow(re);
    }
    // Unknown optional members are accepted, as the format says.
    await expect(verify(gpgSign(payload({ optional: { creator: 'x', anything: { nested: [1] } } }), [a], ['--sign']))).resolves.toMatchObject({ creator: 'x' });
  });
});

describe('payload parsing without signatures', () => {
  it('finds duplicated members at any depth, not in arrays or strings', () => {
    expect(firstDuplicateMember('{"a":1,"b":{"c":1,"c":2}}')).toBe('c');
    expect(firstDuplicateMember('{"a":{"x":1},"b":{"x":1}}')).toBeUndefined();
    expect(firstDuplicateMember('{"a":["a","a"],"s":"{\\"a\\":1,\\"a\\":2}"}')).toBeUndefined();
    expect(firstDuplicateMember('{"a":1,"\\u0061":2}')).toBe('a');
  });

  it('refuses a payload that is not UTF-8', () => {
    expect(() => parseSignaturePayload(new Uint8Array([0x7b, 0xff, 0x7d]))).toThrow(/not UTF-8/);
  });
});

describe('signedIdentity rules', () => {
  const img = (ref: string) => parseDockerIdentity(ref);
  const cases: [SignedIdentity, string, string, boolean][] = [
    [{ type: 'matchRepoDigestOrExact' }, 'r.test/a/b:1.0', 'r.test/a/b:1.0', true],
    [{ type: 'matchRepoDigestOrExact' }, 'r.test/a/b:1.0', 'r.test/a/b:2.0', false],
    [{ type: 'matchRepoDigestOrExact' }, 'r.test/a/b:1.0', 'r.test/a/b', false],
    [{ type: 'matchRepoDigestOrExact' }, `r.test/a/b@${DIGEST}`, 'r.test/a/b:anything', true],
    [{ type: 'matchRepoDigestOrExact' }, `r.test/a/b@${DIGEST}`, 'r.test/a/c:1', false],
    [{ type: 'matchRepoDigestOrExact' }, 'busybox:1.36', 'docker.io/library/busybox:1.36', true],
    [{ type: 'matchExact' }, 'r.test/a:1', 'r.test/a:1', true],
    [{ type: 'matchExact' }, 'r.test/a:1', 'r.test/a', false],
    [{ type: 'matchExact' }, `r.test/a@${DIGEST}`, 'r.test/a:1', false],
    [{ type: 'matchRepository' }, 'r.test/a:1', 'r.test/a:2', true],
    [{ type: 'matchRepository' }, 'r.test/a:1', 'r.test/b:1', false],
    [{ type: 'exactReference', dockerReference: 'other.test/x:1' }, 'r.test/a:1', 'other.test/x:1', true],
    [{ type: 'exactReference', dockerReference: 'other.test/x:1' }, 'r.test/a:1', 'r.test/a:1', false],
    [{ type: 'exactRepository', dockerRepository: 'other.test/x' }, 'r.test/a:1', 'other.test/x:9', true],
    [{ type: 'exactRepository', dockerRepository: 'other.test/x' }, 'r.test/a:1', 'other.test/y:9', false],
    [{ type: 'matchRepository' }, 'r.test/a:1', 'docker://r.test/a:1', false],
    // remapIdentity: a mirror's images signed under the vendor's names, then matchRepoDigestOrExact.
    [{ type: 'remapIdentity', prefix: 'mirror.test:5000/vendor', signedPrefix: 'vendor.test' }, 'mirror.test:5000/vendor/p/app:1', 'vendor.test/p/app:1', true],
    [{ type: 'remapIdentity', prefix: 'mirror.test:5000/vendor', signedPrefix: 'vendor.test' }, 'mirror.test:5000/vendor/p/app:1', 'vendor.test/p/app:2', false],
    [{ type: 'remapIdentity', prefix: 'mirror.test:5000/vendor', signedPrefix: 'vendor.test' }, 'mirror.test:5000/vendor/p/app:1', 'mirror.test:5000/vendor/p/app:1', false],
    [{ type: 'remapIdentity', prefix: 'mirror.test:5000/vendor', signedPrefix: 'vendor.test' }, `mirror.test:5000/vendor/p/app@${DIGEST}`, 'vendor.test/p/app:any', true],
    // The prefix matches whole path components only, and the repository itself.
    [{ type: 'remapIdentity', prefix: 'mirror.test:5000/vendor', signedPrefix: 'vendor.test' }, 'mirror.test:5000/vendorx/app:1', 'mirror.test:5000/vendorx/app:1', true],
    [{ type: 'remapIdentity', prefix: 'mirror.test:5000/vendorx', signedPrefix: 'vendor.test/x' }, 'mirror.test:5000/vendor/app:1', 'vendor.test/x/app:1', false],
    [{ type: 'remapIdentity', prefix: 'mirror.test/lib/busybox', signedPrefix: 'docker.io/library/busybox' }, 'mirror.test/lib/busybox:1.36', 'busybox:1.36', true],
  ];
  it.each(cases)('%j: image %s, signed %s -> %s', (rule, image, signed, ok) => {
    const reason = identityMismatch(rule, img(image), signed);
    if (ok) expect(reason).toBeUndefined();
    else expect(reason).toEqual(expect.any(String));
  });

  it('says how remapIdentity read the image when the signature does not fit', () => {
    const rule: SignedIdentity = { type: 'remapIdentity', prefix: 'mirror.test/vendor', signedPrefix: 'vendor.test' };
    expect(identityMismatch(rule, img('mirror.test/vendor/app:1'), 'vendor.test/app:2')).toBe(
      'signed for vendor.test/app:2, not vendor.test/app:1 (matchRepoDigestOrExact), the image read as vendor.test/app:1 (remapIdentity mirror.test/vendor -> vendor.test)',
    );
    expect(identityMismatch(rule, undefined, 'vendor.test/app:1')).toMatch(/has no docker reference, so remapIdentity cannot match/);
  });

  it('an image without a docker name (oci layout) only matches the exact* rules', () => {
    expect(identityMismatch({ type: 'matchRepoDigestOrExact' }, undefined, 'r.test/a:1')).toMatch(/has no docker reference/);
    expect(identityMismatch({ type: 'exactRepository', dockerRepository: 'r.test/a' }, undefined, 'r.test/a:1')).toBeUndefined();
  });

  it('keeps a name-only reference name-only (no implied :latest)', () => {
    expect(parseDockerIdentity('r.test:5000/a/b')).toMatchObject({ name: 'r.test:5000/a/b', nameOnly: true, tag: undefined, full: 'r.test:5000/a/b' });
    expect(parseDockerIdentity('r.test:5000/a/b:latest')).toMatchObject({ nameOnly: false, tag: 'latest' });
  });
});
