// Detached-signature verification against the keystore, with keys and signatures made by GnuPG.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { TrustError } from '../../src/errors.js';
import { RecordingSyscalls } from '../../src/sys/recording.js';
import { Keystore } from '../../src/trust/keystore.js';
import { checkSigner, readSignature, verifyDetached } from '../../src/trust/verify.js';
import { daysAgo, GpgHome, hasGpg, type GpgKey } from '../support/gpg.js';

interface Fixture {
  gpg: GpgHome;
  dir: string;
  image: string;
  otherFile: string;
  keystore: Keystore;
  keys: Record<'good' | 'untrusted' | 'orgOnly' | 'expired' | 'revoked' | 'withSubkey' | 'root' | 'masked' | 'young', GpgKey>;
  subkeyId: string;
  sigs: Record<string, Buffer>;
}

let fx: Fixture;

async function expectTrustError(p: Promise<unknown>, pattern: RegExp): Promise<TrustError> {
  const err = await p.then(
    () => {
      throw new Error('expected a TrustError');
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(TrustError);
  expect((err as Error).message).toMatch(pattern);
  return err as TrustError;
}

async function verify(sigName: string, name: string, file?: string) {
  const signature = await readSignature(fx.sigs[sigName]!, `${sigName}.asc`);
  return verifyDetached({ signature, name, keystore: fx.keystore, data: fs.createReadStream(file ?? fx.image) });
}

describe.skipIf(!hasGpg)('verify detached signatures (needs gpg)', () => {
  beforeAll(async () => {
    const gpg = new GpgHome();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tspod-verify-'));
    const image = path.join(dir, 'app.aci');
    const otherFile = path.join(dir, 'other.aci');
    fs.writeFileSync(image, crypto.randomBytes(300_000));
    fs.writeFileSync(otherFile, crypto.randomBytes(1000));

    const keys = {
      good: gpg.genKey('Good Signer <good@example.com>'),
      untrusted: gpg.genKey('Stranger <stranger@example.com>', { algo: 'rsa2048' }),
      orgOnly: gpg.genKey('Org Signer <signer@example.org>'),
      // Created two years ago, valid for one year: expired now.
      expired: gpg.genKey('Expired <expired@example.com>', { algo: 'rsa2048', expire: '1y', at: daysAgo(730) }),
      revoked: gpg.genKey('Revoked <revoked@example.com>'),
      withSubkey: gpg.genKey('Subkey Owner <sub@example.com>', { at: daysAgo(10) }),
      root: gpg.genKey('Root <root@example.com>'),
      masked: gpg.genKey('Vendor <vendor@example.net>'),
      young: gpg.genKey('Young <young@example.com>', { at: daysAgo(1) }),
    };
    const subkeyId = gpg.addSigningSubkey(keys.withSubkey.fingerprint, 'ed25519', daysAgo(5));

    const sigs: Record<string, Buffer> = {
      good: gpg.signDetached(image, keys.good.fingerprint),
      goodBinary: gpg.signDetached(image, keys.good.fingerprint, { armor: false }),
      untrusted: gpg.signDetached(image, keys.untrusted.fingerprint),
      orgOnly: gpg.signDetached(image, keys.orgOnly.fingerprint),
      expired: gpg.signDetached(image, keys.expired.fingerprint, { at: daysAgo(700) }),
      revoked: gpg.signDetached(image, keys.revoked.fingerprint),
      subkey: gpg.signDetached(image, `${subkeyId}!`),
      root: gpg.signDetached(image, keys.root.fingerprint),
      masked: gpg.signDetached(image, keys.masked.fingerprint),
      // Made (faked clock) ten days before the key was created.
      beforeKey: gpg.signDetached(image, keys.young.fingerprint, { at: daysAgo(11) }),
      otherFile: gpg.signDetached(otherFile, keys.good.fingerprint),
    };
    gpg.revoke(keys.revoked.fingerprint); // after signing: the exported key carries the revocation

    const systemDir = path.join(dir, 'system');
    const localDir = path.join(dir, 'local');
    const keystore = new Keystore({ systemDir, localDir, sys: new RecordingSyscalls() });
    for (const k of [keys.good, keys.expired, keys.revoked, keys.withSubkey, keys.young]) {
      await keystore.add(gpg.exportPublic(k.fingerprint), { prefix: 'example.com' });
    }
    await keystore.add(gpg.exportPublic(keys.orgOnly.fingerprint), { prefix: 'example.org' });
    await keystore.add(gpg.exportPublic(keys.root.fingerprint), { root: true });
    // A vendor key in the system layer, masked by the admin with an empty local file.
    const sysPrefix = path.join(systemDir, 'trustedkeys', 'prefix.d', 'example.net');
    fs.mkdirSync(sysPrefix, { recursive: true });
    fs.writeFileSync(path.join(sysPrefix, keys.masked.fp), gpg.exportPublic(keys.masked.fingerprint));
    const localMask = path.join(localDir, 'trustedkeys', 'prefix.d', 'example.net');
    fs.mkdirSync(localMask, { recursive: true });
    fs.writeFileSync(path.join(localMask, keys.masked.fp), '');

    fx = { gpg, dir, image, otherFile, keystore, keys, subkeyId, sigs };
  });

  afterAll(() => {
    fx?.gpg.cleanup();
    if (fx) fs.rmSync(fx.dir, { recursive: true, force: true });
  });

  it('accepts a good armored signature by a prefix-trusted key and names the signer', async () => {
    const v = await verify('good', 'example.com/app');
    expect(v.signerFingerprint).toBe(fx.keys.good.fp);
    expect(v.keyId).toBe(fx.keys.good.keyId.toLowerCase());
    expect(v.userIds).toEqual(['Good Signer <good@example.com>']);
    expect(Number.isNaN(Date.parse(v.created))).toBe(false);
  });

  it('accepts a binary (unarmored) signature as fallback', async () => {
    const v = await verify('goodBinary', 'example.com/app');
    expect(v.signerFingerprint).toBe(fx.keys.good.fp);
  });

  it('accepts a Uint8Array as the signed data', async () => {
    const signature = await readSignature(fx.sigs.good!, 'good.asc');
    const v = await verifyDetached({ signature, name: 'example.com/app', keystore: fx.keystore, data: fs.readFileSync(fx.image) });
    expect(v.signerFingerprint).toBe(fx.keys.good.fp);
  });

  it('refuses a signature by a key not in the keystore, naming its fingerprint and the trust command', async () => {
    const err = await expectTrustError(verify('untrusted', 'example.com/app'), /signed by untrusted key/);
    expect(err.message).toBe(
      `image example.com/app: signed by untrusted key ${fx.keys.untrusted.fp}; trust it with: tspod trust --prefix example.com/app <key file or URL>`,
    );
    expect(err.suggestions).toEqual(['tspod trust --prefix example.com/app <key file or URL>']);
  });

  it('checkSigner refuses the untrusted signer before any data is read', async () => {
    const signature = await readSignature(fx.sigs.untrusted!, 'untrusted.asc');
    await expectTrustError(checkSigner({ signature, name: 'example.com/app', keystore: fx.keystore }), /untrusted key/);
    const ok = await checkSigner({ signature: await readSignature(fx.sigs.good!, 'g'), name: 'example.com/app', keystore: fx.keystore });
    expect(ok.fingerprint).toBe(fx.keys.good.fp);
  });

  it('refuses a key trusted only for another prefix (example.org key for example.com/app)', async () => {
    await expectTrustError(verify('orgOnly', 'example.com/app'), new RegExp(`untrusted key ${fx.keys.orgOnly.fp}`));
    const v = await verify('orgOnly', 'example.org/app');
    expect(v.signerFingerprint).toBe(fx.keys.orgOnly.fp);
  });

  it('prefix walk: an example.com key covers example.com/app and not example.org/app', async () => {
    await expect(verify('good', 'example.com/app/sub')).resolves.toMatchObject({ signerFingerprint: fx.keys.good.fp });
    await expectTrustError(verify('good', 'example.org/app'), /untrusted key/);
  });

  it('refuses a signature by an expired key (valid when signing, expired now)', async () => {
    const err = await expectTrustError(verify('expired', 'example.com/app'), /expired/);
    expect(err.message).toContain(fx.keys.expired.fp);
  });

  it('refuses a signature by a revoked key', async () => {
    const err = await expectTrustError(verify('revoked', 'example.com/app'), /revoked/);
    expect(err.message).toContain(fx.keys.revoked.fp);
  });

  it('refuses a signature dated before the key was created', async () => {
    const err = await expectTrustError(verify('beforeKey', 'example.com/app'), /older than the signing key/);
    expect(err.message).toContain(fx.keys.young.fp);
  });

  it('accepts a signature made by a signing-capable subkey of a trusted key', async () => {
    const v = await verify('subkey', 'example.com/app');
    expect(v.signerFingerprint).toBe(fx.keys.withSubkey.fp);
    expect(v.keyId).toBe(fx.subkeyId.toLowerCase());
  });

  it('refuses a truncated armored signature as not an OpenPGP signature', async () => {
    const sig = fx.sigs.good!;
    await expectTrustError(readSignature(sig.subarray(0, Math.floor(sig.length / 2)), 'app.aci.asc'), /^app\.aci\.asc: not an OpenPGP signature: /);
  });

  it('refuses a truncated binary signature and garbage bytes', async () => {
    const sig = fx.sigs.goodBinary!;
    await expectTrustError(readSignature(sig.subarray(0, sig.length - 20), 'app.aci.asc'), /not an OpenPGP signature/);
    await expectTrustError(readSignature(Buffer.from('hello, this is not a signature\n'), 'x.asc'), /not an OpenPGP signature/);
  });

  it('refuses the signature of another file (digest mismatch), naming the signer', async () => {
    const err = await expectTrustError(verify('otherFile', 'example.com/app'), /bad signature/);
    expect(err.message).toContain(`verify image example.com/app: signature by key ${fx.keys.good.fp}`);
  });

  it('a system key masked by an empty local file is not trusted', async () => {
    await expectTrustError(verify('masked', 'example.net/app'), /untrusted key/);
    const unmasked = new Keystore({
      systemDir: fx.keystore.systemDir,
      localDir: path.join(fx.dir, 'empty-local'),
      sys: new RecordingSyscalls(),
    });
    const signature = await readSignature(fx.sigs.masked!, 'm');
    const v = await verifyDetached({ signature, name: 'example.net/app', keystore: unmasked, data: fs.createReadStream(fx.image) });
    expect(v.signerFingerprint).toBe(fx.keys.masked.fp);
  });

  it('a root key trusts any image name', async () => {
    for (const name of ['example.com/app', 'quay.io/other', 'docker://library/nginx']) {
      await expect(verify('root', name)).resolves.toMatchObject({ signerFingerprint: fx.keys.root.fp });
    }
  });

  it('does not read the image when the signer is untrusted, and releases the stream', async () => {
    const signature = await readSignature(fx.sigs.untrusted!, 'untrusted.asc');
    const data = fs.createReadStream(fx.image);
    await expectTrustError(verifyDetached({ signature, name: 'example.com/app', keystore: fx.keystore, data }), /untrusted key/);
    expect(data.destroyed).toBe(true);
    expect(data.bytesRead).toBe(0);
  });

  it('reports an error of the data stream as a verification failure', async () => {
    const signature = await readSignature(fx.sigs.good!, 'good.asc');
    await expectTrustError(
      verifyDetached({ signature, name: 'example.com/app', keystore: fx.keystore, data: fs.createReadStream(path.join(fx.dir, 'missing')) }),
      /ENOENT|no such file/,
    );
  });
});
