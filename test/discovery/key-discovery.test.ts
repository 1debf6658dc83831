// Signer key discovery end to end: keys made by GnuPG, served by WKD over real HTTPS (advanced
// and direct method) and as OPENPGPKEY records by a real dnsmasq, found through tspod's resolver.
import { readKey } from 'openpgp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { discoverSignerKeys, openpgpkeyOwnerNames, SignerKeyDiscoveryError, wkdHash } from '../../src/discovery/signer-keys.js';
import { DNSMASQ_MISSING, hasDnsmasq } from '../support/dnsmasq.js';
import { GpgHome, hasGpg, type GpgKey } from '../support/gpg.js';
import { hasOpenssl, respond } from '../support/https-server.js';
import { isRoot, startLoopbackNet, type LoopbackNet } from './loopback-net.js';

const NEEDS = `needs root for port 443, openssl, gpg and ${DNSMASQ_MISSING}`;

async function fingerprintOf(bytes: Uint8Array): Promise<string> {
  return (await readKey({ binaryKey: bytes })).getFingerprint();
}

describe.skipIf(!isRoot || !hasOpenssl || !hasGpg || !hasDnsmasq)(`WKD and OPENPGPKEY key discovery (${NEEDS})`, () => {
  let gpg: GpgHome;
  let net: LoopbackNet;
  let alice: GpgKey;
  let bob: GpgKey;
  let dave: GpgKey;
  let daveOwner: string;

  beforeAll(async () => {
    gpg = new GpgHome();
    alice = gpg.genKey('Alice <Alice@wkd.test>');
    bob = gpg.genKey('Bob <bob@wkddirect.test>');
    dave = gpg.genKey('Dave <Dave.Doe@dane.test>');
    // GnuPG's own DANE export gives the owner name and RDATA to publish (a binary key).
    const dane = gpg.run(['--export-options', 'export-dane', '--export', dave.fingerprint]).toString();
    const origin = /^\$ORIGIN (\S+)\.$/m.exec(dane)![1]!;
    const label = /^([0-9a-f]{56}) TYPE61 /m.exec(dane)![1]!;
    daveOwner = `${label}.${origin}`;
    const exported = (k: GpgKey) => respond.bytes(gpg.run(['--export', k.fingerprint]), { 'content-type': 'application/octet-stream' });
    net = await startLoopbackNet(
      {
        'openpgpkey.wkd.test': { https: { [`/.well-known/openpgpkey/wkd.test/hu/${wkdHash('alice')}`]: exported(alice) } },
        'wkddirect.test': { https: { [`/.well-known/openpgpkey/hu/${wkdHash('bob')}`]: exported(bob) } },
      },
      { rr: [{ name: daveOwner, type: 61, data: gpg.run(['--export', '--export-options', 'export-minimal', dave.fingerprint]) }] },
    );
  });

  afterAll(async () => {
    await net?.close();
    gpg?.cleanup();
  });

  it('gets the key by the WKD advanced method when openpgpkey.<domain> exists', async () => {
    const found = await discoverSignerKeys('Alice <Alice@wkd.test>', { get: net.get, dns: net.resolver });
    expect(found.address).toBe('Alice@wkd.test');
    expect(found.keys).toHaveLength(1);
    expect(found.keys[0]).toMatchObject({
      method: 'wkd-advanced',
      location: `https://openpgpkey.wkd.test/.well-known/openpgpkey/wkd.test/hu/${wkdHash('alice')}?l=Alice`,
    });
    expect(await fingerprintOf(found.keys[0]!.bytes)).toBe(alice.fp);
    expect(found.tried).toEqual([]);
    expect(net.https['openpgpkey.wkd.test']!.requests.at(-1)!.headers.host).toBe('openpgpkey.wkd.test');
  });

  it('uses the direct method when openpgpkey.<domain> does not exist', async () => {
    const found = await discoverSignerKeys('bob@wkddirect.test', { get: net.get, dns: net.resolver });
    expect(found.keys.map((k) => [k.method, k.location])).toEqual([
      ['wkd-direct', `https://wkddirect.test/.well-known/openpgpkey/hu/${wkdHash('bob')}?l=bob`],
    ]);
    expect(found.tried).toEqual(['tried WKD advanced method: openpgpkey.wkddirect.test does not exist, so the direct method applies']);
    expect(await fingerprintOf(found.keys[0]!.bytes)).toBe(bob.fp);
  });

  it('learns that the advanced host is missing from the connection when no resolver is given', async () => {
    const found = await discoverSignerKeys('bob@wkddirect.test', { get: net.get, methods: ['wkd'] });
    expect(found.keys[0]!.method).toBe('wkd-direct');
    expect(found.tried).toHaveLength(1);
    expect(found.tried[0]).toMatch(/^tried WKD https:\/\/openpgpkey\.wkddirect\.test\/.*: resolve A openpgpkey\.wkddirect\.test: no such domain/);
  });

  it('finds an OPENPGPKEY record that GnuPG exported, at the lowercased owner name, after WKD fails', async () => {
    expect(openpgpkeyOwnerNames('Dave.Doe@dane.test')[1]).toBe(daveOwner);
    const found = await discoverSignerKeys('Dave <Dave.Doe@dane.test>', { get: net.get, dns: net.resolver });
    expect(found.keys.map((k) => [k.method, k.location, k.authenticated])).toEqual([['openpgpkey', `dns OPENPGPKEY ${daveOwner}`, false]]);
    expect(await fingerprintOf(found.keys[0]!.bytes)).toBe(dave.fp);
    const ns = net.dns.nameserver;
    expect(found.tried).toEqual([
      'tried WKD advanced method: openpgpkey.dane.test does not exist, so the direct method applies',
      `tried WKD https://dane.test/.well-known/openpgpkey/hu/${wkdHash('dave.doe')}?l=Dave.Doe: resolve A dane.test: no such domain (NXDOMAIN from ${ns})`,
      `tried dns OPENPGPKEY ${openpgpkeyOwnerNames('Dave.Doe@dane.test')[0]}: no such domain (NXDOMAIN from ${ns})`,
    ]);
  });

  it('does not fall back to the direct method when the advanced host exists but has no key, and lists every step', async () => {
    let err: unknown;
    try {
      await discoverSignerKeys('carol@wkd.test', { get: net.get, dns: net.resolver });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SignerKeyDiscoveryError);
    const tried = (err as SignerKeyDiscoveryError).tried;
    expect(tried).toEqual([
      `tried WKD https://openpgpkey.wkd.test/.well-known/openpgpkey/wkd.test/hu/${wkdHash('carol')}?l=carol: 404 Not Found`,
      `tried dns OPENPGPKEY ${openpgpkeyOwnerNames('carol@wkd.test')[0]}: no such domain (NXDOMAIN from ${net.dns.nameserver})`,
    ]);
    expect((err as SignerKeyDiscoveryError).message).toBe(`discover keys for carol@wkd.test: ${tried.join('; ')}`);
  });
});
