// WKD and OPENPGPKEY names and hashes, checked against GnuPG (gpg-wks-client --print-wkd-hash,
// gpg --with-wkd-hash, gpg --export-options export-dane) and the example of RFC 7929 §3.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { openpgpkeyOwnerNames, parseMailbox, wkdHash, wkdUrls, zbase32 } from '../../src/discovery/signer-keys.js';
import { UsageError } from '../../src/errors.js';
import { GpgHome, hasGpg } from '../support/gpg.js';

/** gpg-wks-client lives in GnuPG's libexec directory, not on PATH. */
const wksClient = ((): string | undefined => {
  try {
    const libexec = execFileSync('gpgconf', ['--list-dirs', 'libexecdir'], { encoding: 'utf8' }).trim();
    const p = path.join(libexec, 'gpg-wks-client');
    return fs.existsSync(p) ? p : undefined;
  } catch {
    return undefined;
  }
})();

const ADDRESSES = ['hugh@example.com', 'Joe.Doe@Example.ORG', 'first.last+tag@sub.example.net', 'a@b.c', 'ALLCAPS@EXAMPLE.TEST'];

describe('zbase32', () => {
  it('encodes 5 bits per character, most significant first, without padding', () => {
    expect(zbase32(new Uint8Array([]))).toBe('');
    // 0x00 -> 00000 000(00): "yy"; 0xff -> 11111 111(00): "9h" (alphabet index 31 and 28).
    expect(zbase32(new Uint8Array([0x00]))).toBe('yy');
    expect(zbase32(new Uint8Array([0xff]))).toBe('9h');
    expect(zbase32(new Uint8Array(20)).length).toBe(32);
  });
});

describe.skipIf(wksClient === undefined)('WKD hashes against gpg-wks-client (needs gnupg)', () => {
  it.each(ADDRESSES)('wkdHash and the advanced URL of %s match gpg-wks-client --print-wkd-hash/--print-wkd-url', (address) => {
    const printed = execFileSync(wksClient!, ['--print-wkd-hash', address], { encoding: 'utf8' }).trim();
    const [hash, mbox] = printed.split(' ');
    const { local, domain } = parseMailbox(address);
    expect(wkdHash(local)).toBe(hash);
    expect(`${local.toLowerCase()}@${domain}`).toBe(mbox);
    const url = execFileSync(wksClient!, ['--print-wkd-url', address], { encoding: 'utf8' }).trim();
    // gpg-wks-client prints l= from its lowercased mailbox; the draft's own example keeps the
    // case (`?l=Joe.Doe`), and tspod escapes "+" so form decoders do not read a space.
    const [base, query] = wkdUrls(address).advanced.split('?');
    expect(base).toBe(url.split('?')[0]);
    expect(query).toBe(`l=${encodeURIComponent(local)}`);
  });
});

describe('WKD URLs and RFC 7929 owner names', () => {
  it('builds the advanced and direct WKD URLs with the unchanged local part in l=', () => {
    expect(wkdUrls('Joe Doe <Joe.Doe@Example.ORG>')).toEqual({
      advanced: 'https://openpgpkey.example.org/.well-known/openpgpkey/example.org/hu/iy9q119eutrkn8s1mk4r39qejnbu3n5q?l=Joe.Doe',
      direct: 'https://example.org/.well-known/openpgpkey/hu/iy9q119eutrkn8s1mk4r39qejnbu3n5q?l=Joe.Doe',
    });
  });

  it('gives the owner name of the RFC 7929 §3 example (hugh@example.com)', () => {
    expect(openpgpkeyOwnerNames('hugh@example.com')).toEqual(['c93f1e400f26708f98cb19d936620da35eec8f72e57f9eec01c1afd6._openpgpkey.example.com']);
  });

  it('tries the local part as given, then lowercased', () => {
    const names = openpgpkeyOwnerNames('Joe.Doe@Example.ORG');
    expect(names).toHaveLength(2);
    expect(names[1]).toBe(openpgpkeyOwnerNames('joe.doe@example.org')[0]);
    expect(names[0]).not.toBe(names[1]);
  });

  it.each(['no-at-sign', '@example.com', 'user@', 'two words@example.com'])('refuses %j as a mailbox', (identity) => {
    expect(() => parseMailbox(identity)).toThrow(UsageError);
  });

  it('takes the mailbox out of a user id and puts the domain in lowercase IDNA form', () => {
    expect(parseMailbox('Jane (work) <jane@Bücher.Example>')).toEqual({ local: 'jane', domain: 'xn--bcher-kva.example' });
  });
});

describe.skipIf(!hasGpg)('OPENPGPKEY owner names against gpg --export-options export-dane (needs gpg)', () => {
  let gpg: GpgHome;
  beforeAll(() => {
    gpg = new GpgHome();
  });
  afterAll(() => gpg?.cleanup());

  it.each(['hugh@example.com', 'Joe.Doe@Example.ORG'])('finds the owner name GnuPG publishes for %s among its candidates', (address) => {
    const key = gpg.genKey(`Test <${address}>`);
    const dane = gpg.run(['--export-options', 'export-dane', '--export', key.fingerprint]).toString();
    const origin = /^\$ORIGIN (\S+)\.$/m.exec(dane)![1]!;
    const label = /^([0-9a-f]{56}) TYPE61 /m.exec(dane)![1]!;
    expect(openpgpkeyOwnerNames(address)).toContain(`${label}.${origin}`);
    // gpg --with-wkd-hash prints the same WKD hash as wkdHash.
    const listing = gpg.run(['--with-wkd-hash', '--list-keys', key.fingerprint]).toString();
    expect(listing).toContain(`${wkdHash(parseMailbox(address).local)}@${parseMailbox(address).domain}`);
  });
});
