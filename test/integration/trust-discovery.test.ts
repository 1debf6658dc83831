// `tspod trust` key discovery end to end, as a user runs it: the real CLI in a child process with
// TSPOD_NAMESERVER pointing at a real dnsmasq (names mapped to 127.53.N.x) and NODE_EXTRA_CA_CERTS
// holding the test CA of the HTTPS servers on those addresses at port 443 (loopback-net.ts).
// Keys are made by GnuPG; OPENPGPKEY records are GnuPG's own DANE export. A terminal is a pty made
// by util-linux `script`. The CLI runs asynchronously: the servers live in this test process.
import { spawn } from 'node:child_process';

import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';

import { openpgpkeyOwnerNames, wkdHash } from '../../src/discovery/signer-keys.js';
import { isRoot, startLoopbackNet, type LoopbackNet } from '../discovery/loopback-net.js';
import { TspodEnv, type CliResult } from '../support/cli.js';
import { DNSMASQ_MISSING, hasDnsmasq } from '../support/dnsmasq.js';
import { GpgHome, hasGpg, type GpgKey } from '../support/gpg.js';
import { hasOpenssl, respond } from '../support/https-server.js';
import { hasCommand } from '../support/tools.js';

const NEEDS = `needs root for port 443, openssl, gpg and ${DNSMASQ_MISSING}`;
const hasScript = hasCommand('script', ['--version']);

const html = (...tags: string[]): string => `<!DOCTYPE html>\n<html><head>\n${tags.join('\n')}\n</head><body></body></html>\n`;
const pubkeys = (prefix: string, url: string): string => `<meta name="ac-discovery-pubkeys" content="${prefix} ${url}">`;
const page = (...tags: string[]) => respond.bytes(html(...tags), { 'content-type': 'text/html; charset=utf-8' });

/** Single-quotes a word for sh -c. */
const quote = (word: string) => `'${word.replace(/'/g, `'\\''`)}'`;

interface TrustListEntry {
  fingerprint: string;
  prefix: string | null;
  scope: string;
  layer: string;
}

describe.skipIf(!isRoot || !hasOpenssl || !hasGpg || !hasDnsmasq)(`tspod trust key discovery over real DNS and HTTPS (${NEEDS})`, () => {
  let gpg: GpgHome;
  let net: LoopbackNet;
  let env: TspodEnv;
  let one: GpgKey;
  let two: GpgKey;
  let alice: GpgKey;
  let bob: GpgKey;
  let carol: GpgKey;
  let eve: GpgKey;
  let carolOwner: string;

  beforeAll(async () => {
    gpg = new GpgHome();
    one = gpg.genKey('Keys One <one@keys.test>');
    two = gpg.genKey('Keys Two <two@keys.test>');
    alice = gpg.genKey('Alice <alice@example.test>');
    bob = gpg.genKey('Bob <bob@direct.test>');
    carol = gpg.genKey('Carol <carol@dane.test>');
    eve = gpg.genKey('Eve <eve@example.test>');
    // GnuPG's DANE export names the owner of the OPENPGPKEY record (RFC 7929) to publish.
    const dane = gpg.run(['--export-options', 'export-dane', '--export', carol.fingerprint]).toString();
    carolOwner = `${/^([0-9a-f]{56}) TYPE61 /m.exec(dane)![1]!}.${/^\$ORIGIN (\S+)\.$/m.exec(dane)![1]!}`;
    const binary = (k: GpgKey) => respond.bytes(gpg.run(['--export', k.fingerprint]), { 'content-type': 'application/octet-stream' });
    const armored = (k: GpgKey) => respond.bytes(gpg.exportPublic(k.fingerprint), { 'content-type': 'application/pgp-keys' });
    net = await startLoopbackNet(
      {
        // Tags for the prefix keys.test, on the host's page: `--prefix keys.test/app` walks up to it.
        'keys.test': {
          https: {
            '/': page(
              pubkeys('other.test', 'https://keys.test/other.gpg'),
              pubkeys('keys.test', 'https://keys.test/one.gpg'),
              pubkeys('keys.test', 'https://keys.test/two.asc'),
            ),
            '/one.gpg': binary(one),
            '/two.asc': armored(two),
          },
        },
        // A page without pubkeys tags.
        'empty.test': { https: { '/': page() } },
        // Plain http only: discovery needs --insecure-options=http.
        'plain.test': { http: { '/': page(pubkeys('plain.test', 'http://plain.test/one.asc')), '/one.asc': armored(one) } },
        // WKD, advanced method; mallory's address serves Eve's key.
        'openpgpkey.example.test': {
          https: {
            [`/.well-known/openpgpkey/example.test/hu/${wkdHash('alice')}`]: binary(alice),
            [`/.well-known/openpgpkey/example.test/hu/${wkdHash('mallory')}`]: binary(eve),
          },
        },
        'example.test': {},
        // WKD, direct method (no openpgpkey.direct.test).
        'direct.test': { https: { [`/.well-known/openpgpkey/hu/${wkdHash('bob')}`]: binary(bob) } },
      },
      { rr: [{ name: carolOwner, type: 61, data: gpg.run(['--export', '--export-options', 'export-minimal', carol.fingerprint]) }] },
    );
  });

  afterAll(async () => {
    await net?.close();
    gpg?.cleanup();
  });

  beforeEach(() => {
    env = new TspodEnv();
  });
  afterEach(() => env?.cleanup());

  /** Runs tspod asynchronously (the servers answer from this process), on a pty with `tty`. */
  function tspod(args: string[], opts: { input?: string; tty?: boolean; trustTestCa?: boolean } = {}): Promise<CliResult> {
    const childEnv: NodeJS.ProcessEnv = { ...process.env, TSPOD_NAMESERVER: net.dns.nameserver };
    if (opts.trustTestCa !== false) childEnv.NODE_EXTRA_CA_CERTS = net.ca.caCertPath;
    else delete childEnv.NODE_EXTRA_CA_CERTS;
    const argv = env.argv(args);
    const child = opts.tty
      ? spawn('script', ['-qec', [process.execPath, ...argv].map(quote).join(' '), '/dev/null'], { env: childEnv })
      : spawn(process.execPath, argv, { env: childEnv });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdin.end(opts.input ?? '');
    return new Promise((resolve, reject) => {
      child.once('error', reject);
      child.once('close', (status) => resolve({ status, stdout, stderr }));
    });
  }

  async function trustList(): Promise<TrustListEntry[]> {
    const r = await tspod(['trust', 'list', '--json']);
    expect(r.status, r.stderr).toBe(0);
    return JSON.parse(r.stdout) as TrustListEntry[];
  }

  it('discovers the keys of a prefix through ac-discovery-pubkeys (walking up to the host) and adds them with --skip-fingerprint-review', async () => {
    const before = net.https['keys.test']!.requests.length;
    const r = await tspod(['trust', '--prefix', 'keys.test/app', '--skip-fingerprint-review', '--json']);
    expect(r.status, r.stderr).toBe(0);
    const added = JSON.parse(r.stdout) as TrustListEntry[];
    expect(added.map((k) => k.fingerprint)).toEqual([one.fp, two.fp]);
    expect(r.stderr).toContain('Key: "https://keys.test/one.gpg"\nFound through: ac-discovery-pubkeys of https://keys.test/?ac-discovery=1\n');
    expect(r.stderr).toContain('Key: "https://keys.test/two.asc"\n');
    // The walk: the prefix's own page (404), then the host's page, then the two keys; not other.gpg.
    expect(net.https['keys.test']!.requests.slice(before).map((q) => q.url)).toEqual(['/app?ac-discovery=1', '/?ac-discovery=1', '/one.gpg', '/two.asc']);
    const listed = await trustList();
    expect(listed.map((k) => [k.fingerprint, k.prefix, k.scope, k.layer])).toEqual(
      [one.fp, two.fp].sort().map((fp) => [fp, 'keys.test/app', 'prefix', 'local']),
    );
  });

  it('refuses without a terminal and without --skip-fingerprint-review, naming the keys found, and adds nothing', async () => {
    const r = await tspod(['trust', '--prefix', 'keys.test']);
    expect(r.status).toBe(254);
    expect(r.stderr).toContain('cannot ask for fingerprint review without a terminal');
    expect(r.stderr).toContain(`${one.fp} (Keys One <one@keys.test>) from https://keys.test/one.gpg`);
    expect(r.stderr).toContain(`${two.fp} (Keys Two <two@keys.test>) from https://keys.test/two.asc`);
    expect(r.stderr).toContain('tspod trust --prefix keys.test --skip-fingerprint-review');
    expect(await trustList()).toEqual([]);
  });

  it.skipIf(!hasScript)('on a terminal shows each discovered key and asks: "yes" adds the first, "no" declines the second', async () => {
    const r = await tspod(['trust', '--prefix', 'keys.test'], { tty: true, input: 'yes\nno\n' });
    // `script` merges the pty's output into its stdout, with CRLF line ends.
    const out = r.stdout.replace(/\r\n/g, '\n');
    expect(r.status, out).toBe(0);
    expect(out).toContain(`GPG key fingerprint is: ${one.fingerprint.match(/.{4}/g)!.join(' ')}`);
    expect(out).toContain('Found through: ac-discovery-pubkeys of https://keys.test/?ac-discovery=1');
    expect(out.split('Are you sure you want to trust this key (yes/no)?')).toHaveLength(3);
    expect(out).toContain(`Trusting "keys.test" for key ${one.fp}.`);
    expect(out).toContain(`Not trusting key ${two.fp}.`);
    expect((await trustList()).map((k) => [k.fingerprint, k.prefix])).toEqual([[one.fp, 'keys.test']]);
  });

  it('finds signer keys for identities by WKD (advanced and direct) and OPENPGPKEY, and shows where each came from', async () => {
    const identities = ['alice@example.test', 'bob@direct.test', 'carol@dane.test'];
    const r = await tspod(['trust', '--prefix', 'example.test', '--skip-fingerprint-review', ...identities]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toContain(
      `Key: "https://openpgpkey.example.test/.well-known/openpgpkey/example.test/hu/${wkdHash('alice')}?l=alice"\n` +
        'Found through: WKD (advanced method) for alice@example.test\n',
    );
    expect(r.stderr).toContain(
      `Key: "https://direct.test/.well-known/openpgpkey/hu/${wkdHash('bob')}?l=bob"\nFound through: WKD (direct method) for bob@direct.test\n`,
    );
    // dnsmasq does not validate DNSSEC, so the answer carries no AD bit, and the review says so.
    expect(r.stderr).toContain(
      `Key: "dns OPENPGPKEY ${carolOwner}"\n` +
        'Found through: DNS OPENPGPKEY record for carol@dane.test, not authenticated: no DNSSEC (the resolver did not set the AD bit)\n',
    );
    expect((await trustList()).map((k) => k.fingerprint).sort()).toEqual([alice.fp, bob.fp, carol.fp].sort());
  });

  it.skipIf(!hasScript)('on a terminal asks about a WKD key for alice@example.test: "y" adds it', async () => {
    const r = await tspod(['trust', '--prefix', 'example.test', 'alice@example.test'], { tty: true, input: 'y\n' });
    const out = r.stdout.replace(/\r\n/g, '\n');
    expect(r.status, out).toBe(0);
    expect(out).toContain('Found through: WKD (advanced method) for alice@example.test');
    expect(out).toContain('\tAlice <alice@example.test>');
    expect((await trustList()).map((k) => k.fingerprint)).toEqual([alice.fp]);
  });

  it('leaves out a key served for an identity it does not carry (WKD for mallory@ serving Eve\'s key)', async () => {
    const r = await tspod(['trust', '--prefix', 'example.test', '--skip-fingerprint-review', 'mallory@example.test']);
    expect(r.status).toBe(254);
    expect(r.stderr).toContain(`Leaving out key ${eve.fp}`);
    expect(r.stderr).toContain(`trust: no key left to review: key ${eve.fp} from https://openpgpkey.example.test/`);
    expect(r.stderr).toContain('none of its user ids is mallory@example.test (it has Eve <eve@example.test>)');
    expect(await trustList()).toEqual([]);
  });

  it('when nothing is found, the error lists every URL and record tried', async () => {
    const ns = net.dns.nameserver;
    const prefix = await tspod(['trust', '--prefix', 'empty.test/app', '--skip-fingerprint-review']);
    expect(prefix.status).toBe(254);
    expect(prefix.stderr).toContain(
      'tspod: discover public keys for prefix empty.test/app: tried https://empty.test/app?ac-discovery=1: 404 Not Found; ' +
        'tried https://empty.test?ac-discovery=1: no ac-discovery-pubkeys meta tag for empty.test/app; ' +
        `tried dns TXT _appc-discovery.empty.test: no such domain (NXDOMAIN from ${ns})`,
    );
    const nohost = await tspod(['trust', '--prefix', 'nohost.test', '--skip-fingerprint-review']);
    expect(nohost.status).toBe(254);
    expect(nohost.stderr).toMatch(/tried https:\/\/nohost\.test\?ac-discovery=1: .*resolve A nohost\.test: no such domain/);
    expect(nohost.stderr).toContain('tried dns TXT _appc-discovery.nohost.test: no such domain');

    const identity = await tspod(['trust', '--prefix', 'example.test', '--skip-fingerprint-review', 'nobody@example.test']);
    expect(identity.status).toBe(254);
    expect(identity.stderr).toContain(
      'tspod: discover keys for nobody@example.test: ' +
        `tried WKD https://openpgpkey.example.test/.well-known/openpgpkey/example.test/hu/${wkdHash('nobody')}?l=nobody: 404 Not Found; ` +
        `tried dns OPENPGPKEY ${openpgpkeyOwnerNames('nobody@example.test')[0]}: no such domain (NXDOMAIN from ${ns})`,
    );
    expect(await trustList()).toEqual([]);
  });

  it('uses plain http for discovery and keys only with --insecure-options=http', async () => {
    const refused = await tspod(['trust', '--prefix', 'plain.test', '--skip-fingerprint-review']);
    expect(refused.status).toBe(254);
    expect(refused.stderr).toMatch(/tried https:\/\/plain\.test\?ac-discovery=1: .*ECONNREFUSED/);
    expect(refused.stderr).not.toContain('tried http://');
    expect(refused.stderr).toContain('--insecure-options=http');
    const r = await tspod(['trust', '--insecure-options=http', '--prefix', 'plain.test', '--skip-fingerprint-review']);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toContain('Found through: ac-discovery-pubkeys of http://plain.test/?ac-discovery=1');
    expect((await trustList()).map((k) => k.fingerprint)).toEqual([one.fp]);
  });

  it('checks the servers\' certificates unless --insecure-options=tls', async () => {
    const refused = await tspod(['trust', '--prefix', 'keys.test', '--skip-fingerprint-review'], { trustTestCa: false });
    expect(refused.status).toBe(254);
    expect(refused.stderr).toMatch(/tried https:\/\/keys\.test\?ac-discovery=1: .*certificate/i);
    const r = await tspod(['trust', '--insecure-options=tls', '--prefix', 'keys.test', '--skip-fingerprint-review'], { trustTestCa: false });
    expect(r.status, r.stderr).toBe(0);
    expect((await trustList()).map((k) => k.fingerprint).sort()).toEqual([one.fp, two.fp].sort());
  });
});
