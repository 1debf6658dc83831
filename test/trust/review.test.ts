// The `tspod trust` review flow with a fake terminal (PassThrough streams) and GnuPG-made keys.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';

import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';

import { TrustError, UsageError } from '../../src/errors.js';
import { closeAgents } from '../../src/http/client.js';
import { RecordingSyscalls } from '../../src/sys/recording.js';
import { Keystore } from '../../src/trust/keystore.js';
import { carriesIdentity, loadKeySources, resolveTrustTarget, reviewAndAddKeys, TRUST_QUESTION } from '../../src/trust/review.js';
import { GpgHome, hasGpg, type GpgKey } from '../support/gpg.js';
import { hasOpenssl, makeTestCa, respond, startServer, type TestCa, type TestServer } from '../support/https-server.js';

describe('resolveTrustTarget (--prefix / --root)', () => {
  it('takes --prefix or --root', () => {
    expect(resolveTrustTarget({ prefix: 'example.com/app' })).toEqual({ prefix: 'example.com/app' });
    expect(resolveTrustTarget({ root: true })).toEqual({ root: true });
  });
  it('refuses both, and neither', () => {
    expect(() => resolveTrustTarget({ prefix: 'example.com', root: true })).toThrow(/mutually exclusive/);
    expect(() => resolveTrustTarget({})).toThrow(UsageError);
    expect(() => resolveTrustTarget({})).toThrow(/give --prefix <image name prefix> or --root/);
  });
  it('refuses a prefix with a URL scheme like https://', () => {
    expect(() => resolveTrustTarget({ prefix: 'https://example.com/app' })).toThrow(/a URL is not a prefix/);
    expect(resolveTrustTarget({ prefix: 'docker://quay.io/x' })).toEqual({ prefix: 'docker://quay.io/x' });
  });
});

describe('carriesIdentity (WKD: the key must carry the address as a user id)', () => {
  it('matches the address of a user id, without case, bare or in angle brackets', () => {
    expect(carriesIdentity(['Alice <Alice@Example.test>'], 'alice@example.test')).toBe(true);
    expect(carriesIdentity(['alice@example.test'], 'Alice@EXAMPLE.test')).toBe(true);
    expect(carriesIdentity(['Eve <eve@example.test>', 'Alice'], 'alice@example.test')).toBe(false);
    expect(carriesIdentity(['Alice <alice@example.test.evil>'], 'alice@example.test')).toBe(false);
    expect(carriesIdentity([], 'alice@example.test')).toBe(false);
  });
});

/** A fake terminal: answers are written to `input` only once the question appears on `output`. */
function fakeTty(answers: string[]) {
  const input = new PassThrough();
  const output = new PassThrough();
  let transcript = '';
  output.on('data', (c: Buffer) => {
    transcript += c.toString();
    if (transcript.endsWith(TRUST_QUESTION)) {
      const a = answers.shift();
      if (a === undefined) input.end();
      else input.write(`${a}\n`);
    }
  });
  return { input, output, transcript: () => transcript };
}

describe.skipIf(!hasGpg)('reviewAndAddKeys (needs gpg)', () => {
  let gpg: GpgHome;
  let a: GpgKey;
  let b: GpgKey;
  let pubA: Buffer;
  let both: Buffer;
  let tmp: string;
  let ks: Keystore;

  beforeAll(() => {
    gpg = new GpgHome();
    a = gpg.genKey('Alice <alice@example.com>');
    b = gpg.genKey('Bob <bob@example.com>');
    pubA = gpg.exportPublic(a.fingerprint);
    both = gpg.run(['--armor', '--export', a.fingerprint, b.fingerprint]);
  });
  afterAll(() => gpg?.cleanup());
  beforeEach(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tspod-review-'));
    ks = new Keystore({ systemDir: path.join(tmp, 'sys'), localDir: path.join(tmp, 'local'), sys: new RecordingSyscalls() });
  });

  it('"yes" adds the key after showing prefix, grouped fingerprint, user ids and creation time', async () => {
    const tty = fakeTty(['yes']);
    const r = await reviewAndAddKeys({
      keystore: ks, keys: [pubA], sources: ['./alice.asc'], target: { prefix: 'example.com/app' },
      skipReview: false, input: tty.input, output: tty.output, isTTY: true,
    });
    expect(r.added.map((k) => k.fingerprint)).toEqual([a.fp]);
    const out = tty.transcript();
    expect(out).toContain('Prefix: "example.com/app"');
    expect(out).toContain('Key: "./alice.asc"');
    expect(out).toContain(`GPG key fingerprint is: ${a.fingerprint.match(/.{4}/g)!.join(' ')}`);
    expect(out).toContain('\tAlice <alice@example.com>');
    expect(out).toMatch(/Created: \d{4}-\d\d-\d\dT/);
    expect(out).toContain(TRUST_QUESTION);
    expect((await ks.list()).map((k) => [k.prefix, k.fingerprint])).toEqual([['example.com/app', a.fp]]);
  });

  it('"no" (and anything but yes/y, and end of input) does not add', async () => {
    for (const answers of [['no'], ['maybe'], []]) {
      const tty = fakeTty([...answers]);
      const r = await reviewAndAddKeys({
        keystore: ks, keys: [pubA], target: { root: true }, skipReview: false, input: tty.input, output: tty.output, isTTY: true,
      });
      expect(r).toEqual({ added: [], declined: [a.fp], skipped: [] });
      expect(tty.transcript()).toContain('Root key (trusted for every image name)');
    }
    expect(await ks.list()).toEqual([]);
  });

  it('asks once per key of a file holding two keys: "y" then "n"', async () => {
    const tty = fakeTty(['y', 'n']);
    const r = await reviewAndAddKeys({
      keystore: ks, keys: [both], target: { prefix: 'example.com' }, skipReview: false, input: tty.input, output: tty.output, isTTY: true,
    });
    expect(r.added.map((k) => k.fingerprint)).toEqual([a.fp]);
    expect(r.declined).toEqual([b.fp]);
  });

  it('refuses without a TTY unless --skip-fingerprint-review', async () => {
    const tty = fakeTty([]);
    const args = { keystore: ks, keys: [pubA], target: { prefix: 'example.com' }, input: tty.input, output: tty.output, isTTY: false };
    await expect(reviewAndAddKeys({ ...args, skipReview: false })).rejects.toThrow(UsageError);
    await expect(reviewAndAddKeys({ ...args, skipReview: false })).rejects.toThrow(/pass --skip-fingerprint-review/);
    expect(await ks.list()).toEqual([]);
    const r = await reviewAndAddKeys({ ...args, skipReview: true });
    expect(r.added.map((k) => k.fingerprint)).toEqual([a.fp]);
    expect(tty.transcript()).not.toContain(TRUST_QUESTION);
  });

  it('without a TTY the refusal names each key found (fingerprint, user ids, source) and the command to repeat', async () => {
    const tty = fakeTty([]);
    const err = await reviewAndAddKeys({
      keystore: ks, keys: [both], sources: ['https://example.com/keys.gpg'], target: { prefix: 'example.com' },
      skipReview: false, input: tty.input, output: tty.output, isTTY: false, keyArguments: [],
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UsageError);
    const { message, suggestions } = err as UsageError;
    expect(message).toContain(`${a.fp} (Alice <alice@example.com>) from https://example.com/keys.gpg`);
    expect(message).toContain(`${b.fp} (Bob <bob@example.com>) from https://example.com/keys.gpg`);
    expect(suggestions).toEqual(['tspod trust --prefix example.com --skip-fingerprint-review']);
  });

  it('shows where a discovered key was found', async () => {
    const tty = fakeTty(['yes']);
    await reviewAndAddKeys({
      keystore: ks, keys: [pubA], sources: ['dns OPENPGPKEY abc._openpgpkey.example.com'],
      origins: [{ foundThrough: 'DNS OPENPGPKEY record for alice@example.com, authenticated by DNSSEC', identity: 'alice@example.com' }],
      target: { prefix: 'example.com' }, skipReview: false, input: tty.input, output: tty.output, isTTY: true,
    });
    expect(tty.transcript()).toContain(
      'Key: "dns OPENPGPKEY abc._openpgpkey.example.com"\nFound through: DNS OPENPGPKEY record for alice@example.com, authenticated by DNSSEC\nGPG key fingerprint is:',
    );
  });

  it('leaves out a key found for an identity it does not carry, and one given twice; asks about the rest', async () => {
    const tty = fakeTty(['yes']);
    const r = await reviewAndAddKeys({
      keystore: ks, keys: [both, pubA], sources: ['wkd-url', 'again.asc'],
      origins: [{ foundThrough: 'WKD (advanced method) for ALICE@Example.COM', identity: 'ALICE@Example.COM' }, undefined],
      target: { prefix: 'example.com' }, skipReview: false, input: tty.input, output: tty.output, isTTY: true,
    });
    expect(r.added.map((k) => k.fingerprint)).toEqual([a.fp]);
    expect(r.skipped).toEqual([
      { fingerprint: b.fp, source: 'wkd-url', reason: 'none of its user ids is ALICE@Example.COM (it has Bob <bob@example.com>)' },
      { fingerprint: a.fp, source: 'again.asc', reason: 'the same key was found before' },
    ]);
    expect(tty.transcript()).toContain(`Leaving out key ${b.fp} from "wkd-url": none of its user ids is ALICE@Example.COM`);
    expect(tty.transcript().split(TRUST_QUESTION)).toHaveLength(2);
  });

  it('fails, naming each key and why, when every key found for an identity carries another one', async () => {
    const tty = fakeTty(['yes']);
    const err = await reviewAndAddKeys({
      keystore: ks, keys: [gpg.exportPublic(b.fingerprint)], sources: ['wkd-url'],
      origins: [{ foundThrough: 'WKD', identity: 'alice@example.com' }],
      target: { prefix: 'example.com' }, skipReview: true, input: tty.input, output: tty.output, isTTY: false,
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TrustError);
    expect((err as TrustError).message).toBe(
      `trust: no key left to review: key ${b.fp} from wkd-url: none of its user ids is alice@example.com (it has Bob <bob@example.com>)`,
    );
    expect(await ks.list()).toEqual([]);
  });

  it('fails on a private key before asking anything', async () => {
    const tty = fakeTty(['yes']);
    await expect(
      reviewAndAddKeys({
        keystore: ks, keys: [gpg.exportSecret(a.fingerprint)], target: { root: true }, skipReview: false,
        input: tty.input, output: tty.output, isTTY: true,
      }),
    ).rejects.toThrow(TrustError);
    expect(tty.transcript()).toBe('');
  });

  describe.skipIf(!hasOpenssl)('key sources (needs openssl)', () => {
    let ca: TestCa;
    let server: TestServer;
    beforeAll(async () => {
      ca = makeTestCa();
      server = await startServer({ tls: { cert: ca.cert, key: ca.key }, routes: { '/pubkeys.asc': respond.bytes(pubA) } });
    });
    afterAll(async () => {
      await closeAgents();
      await server?.close();
      ca?.cleanup();
    });

    it('loads a key from a file and from an HTTPS URL', async () => {
      const file = path.join(tmp, 'alice.asc');
      fs.writeFileSync(file, pubA);
      const sources = await loadKeySources([file, `${server.origin}/pubkeys.asc`], { ca: ca.caCert });
      expect(sources.map((s) => Buffer.from(s.bytes).equals(pubA))).toEqual([true, true]);
      await expect(loadKeySources([path.join(tmp, 'missing.asc')])).rejects.toThrow(/read key .*missing\.asc: enoent/i);
      await expect(loadKeySources([`${server.origin}/nope.asc`], { ca: ca.caCert })).rejects.toThrow(/404 Not Found/);
    });
  });
});
