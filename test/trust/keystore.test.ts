// The keystore's rkt layout and semantics: layers, overrides, masks, prefix walk, add/list/remove.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';

import { NotFoundError, TrustError, UsageError } from '../../src/errors.js';
import { RecordingSyscalls } from '../../src/sys/recording.js';
import { formatFingerprint, Keystore, prefixToRelDir } from '../../src/trust/keystore.js';
import { GpgHome, hasGpg, type GpgKey } from '../support/gpg.js';

describe('prefixToRelDir (appc identifier as nested dirs)', () => {
  it('maps a prefix to nested directories', () => {
    expect(prefixToRelDir('example.com/app')).toBe('example.com/app');
    expect(prefixToRelDir('coreos.com/etcd~x_y')).toBe('coreos.com/etcd~x_y');
  });

  it('stores docker:// prefixes under docker/<rest>', () => {
    expect(prefixToRelDir('docker://registry-1.docker.io/library/nginx')).toBe('docker/registry-1.docker.io/library/nginx');
  });

  it.each([
    ['Example.com', /lowercase/],
    ['', /empty/],
    ['/example.com', /begin or end/],
    ['example.com/', /begin or end/],
    ['example.com/../etc', /"\.\."/],
    ['example.com//app', /path component/],
    ['exa mple.com', /lowercase/],
    ['docker://', /empty/],
    ['https://example.com/app', /a URL is not a prefix/],
  ])('rejects %j', (prefix, pattern) => {
    expect(() => prefixToRelDir(prefix)).toThrow(UsageError);
    expect(() => prefixToRelDir(prefix)).toThrow(pattern);
  });

  it('formats a fingerprint in groups of four', () => {
    expect(formatFingerprint('0123456789abcdef0123456789abcdef01234567')).toBe(
      '0123 4567 89AB CDEF 0123 4567 89AB CDEF 0123 4567',
    );
  });
});

describe.skipIf(!hasGpg)('Keystore (needs gpg)', () => {
  let gpg: GpgHome;
  let a: GpgKey;
  let b: GpgKey;
  let c: GpgKey;
  let pub: Record<string, Buffer>;
  let tmp: string;
  let systemDir: string;
  let localDir: string;
  let sys: RecordingSyscalls;
  let ks: Keystore;

  const sysFile = (rel: string, data: Buffer | string): string => {
    const p = path.join(systemDir, 'trustedkeys', rel);
    fs.mkdirSync(path.dirname(p), { recursive: true });
    fs.writeFileSync(p, data);
    return p;
  };
  const localFile = (rel: string, data: Buffer | string): string => {
    const p = path.join(localDir, 'trustedkeys', rel);
    fs.mkdirSync(path.dirname(p), { recursive: true });
    fs.writeFileSync(p, data);
    return p;
  };
  const fps = async (name: string) => (await ks.keysForName(name)).map((k) => k.fingerprint).sort();

  beforeAll(() => {
    gpg = new GpgHome();
    a = gpg.genKey('Alice <alice@example.com>');
    b = gpg.genKey('Bob <bob@example.com>', { expire: '2y' });
    c = gpg.genKey('Carol <carol@example.org>', { algo: 'rsa2048' });
    pub = { a: gpg.exportPublic(a.fingerprint), b: gpg.exportPublic(b.fingerprint), c: gpg.exportPublic(c.fingerprint) };
  });
  afterAll(() => gpg?.cleanup());

  beforeEach(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tspod-ks-'));
    systemDir = path.join(tmp, 'usr-lib-tspod');
    localDir = path.join(tmp, 'etc-tspod');
    sys = new RecordingSyscalls();
    ks = new Keystore({ systemDir, localDir, sys });
  });

  it('add stores the armored key under local prefix.d/<prefix>/<fingerprint> atomically and list shows it', async () => {
    const info = await ks.add(pub.a!, { prefix: 'example.com/app' });
    const file = path.join(localDir, 'trustedkeys', 'prefix.d', 'example.com', 'app', a.fp);
    expect(info).toMatchObject({ fingerprint: a.fp, scope: 'prefix', prefix: 'example.com/app', layer: 'local', path: file });
    expect(fs.readFileSync(file, 'utf8')).toMatch(/^-----BEGIN PGP PUBLIC KEY BLOCK-----/);
    expect(sys.calls).toContainEqual({ syscall: 'fsyncPath', args: [path.dirname(file)] });
    expect(fs.readdirSync(path.dirname(file))).toEqual([a.fp]); // no temporaries left
    const list = await ks.list();
    expect(list).toEqual([
      {
        fingerprint: a.fp,
        scope: 'prefix',
        prefix: 'example.com/app',
        layer: 'local',
        path: file,
        userIds: ['Alice <alice@example.com>'],
        created: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
        expires: null,
      },
    ]);
  });

  it('add accepts a binary key, stores it armored, and reports the expiry', async () => {
    const binary = gpg.run(['--export', b.fingerprint]);
    const info = await ks.add(binary, { root: true });
    expect(info.path).toBe(path.join(localDir, 'trustedkeys', 'root.d', b.fp));
    expect(fs.readFileSync(info.path, 'utf8')).toContain('BEGIN PGP PUBLIC KEY BLOCK');
    expect(info.expires).not.toBeNull();
    expect(Date.parse(info.expires!)).toBeGreaterThan(Date.now());
  });

  it('add refuses a private key', async () => {
    await expect(ks.add(gpg.exportSecret(a.fingerprint), { root: true })).rejects.toThrow(/refusing a private key/);
    expect(fs.existsSync(path.join(localDir, 'trustedkeys', 'root.d'))).toBe(false);
  });

  it('add refuses garbage and a prefix that is not an identifier', async () => {
    await expect(ks.add(Buffer.from('not a key'), { root: true })).rejects.toThrow(TrustError);
    await expect(ks.add(pub.a!, { prefix: 'Example.com' })).rejects.toThrow(UsageError);
  });

  it('stores docker:// prefixes under prefix.d/docker and lists them back with the scheme', async () => {
    await ks.add(pub.a!, { prefix: 'docker://quay.io/coreos' });
    expect(fs.existsSync(path.join(localDir, 'trustedkeys', 'prefix.d', 'docker', 'quay.io', 'coreos', a.fp))).toBe(true);
    expect((await ks.list())[0]!.prefix).toBe('docker://quay.io/coreos');
    expect(await fps('docker://quay.io/coreos/etcd')).toEqual([a.fp]);
  });

  it('reads a hand-built rkt-style tree: root.d and nested prefix.d in both layers', async () => {
    sysFile(`root.d/${a.fp}`, pub.a!);
    sysFile(`prefix.d/coreos.com/etcd/${b.fp}`, pub.b!);
    localFile(`prefix.d/example.org/${c.fp}`, pub.c!);
    localFile(`prefix.d/example.org/.${c.fp}.tmp-abc`, 'half-written'); // ignored
    const list = await ks.list();
    expect(list.map((k) => [k.scope, k.prefix, k.layer, k.fingerprint])).toEqual([
      ['root', null, 'system', a.fp],
      ['prefix', 'coreos.com/etcd', 'system', b.fp],
      ['prefix', 'example.org', 'local', c.fp],
    ]);
    expect(await fps('coreos.com/etcd')).toEqual([a.fp, b.fp].sort());
    expect(await fps('example.org/app')).toEqual([a.fp, c.fp].sort());
    expect(await fps('example.net/app')).toEqual([a.fp]); // root key only
  });

  it('prefix walk: prefix.d/example.com covers example.com/app but not example.org/app', async () => {
    localFile(`prefix.d/example.com/${a.fp}`, pub.a!);
    expect(await fps('example.com/app')).toEqual([a.fp]);
    expect(await fps('example.com')).toEqual([a.fp]);
    expect(await fps('example.org/app')).toEqual([]);
  });

  it('prefix walk follows rkt string-prefix matching: coreos.com/ace-validator covers coreos.com/ace-validator-main', async () => {
    localFile(`prefix.d/coreos.com/ace-validator/${a.fp}`, pub.a!);
    expect(await fps('coreos.com/ace-validator-main')).toEqual([a.fp]);
    expect(await fps('coreos.com/ace')).toEqual([]);
  });

  it('a local key at the same place overrides the system copy', async () => {
    const sysPath = sysFile(`prefix.d/example.com/${a.fp}`, pub.a!);
    const localPath = localFile(`prefix.d/example.com/${a.fp}`, pub.a!);
    const list = await ks.list();
    expect(list).toHaveLength(1);
    expect(list[0]).toMatchObject({ layer: 'local', path: localPath });
    expect(list[0]!.path).not.toBe(sysPath);
  });

  it('a zero-length local file masks the system key at the same place only', async () => {
    sysFile(`root.d/${a.fp}`, pub.a!);
    sysFile(`prefix.d/example.com/${b.fp}`, pub.b!);
    localFile(`root.d/${a.fp}`, '');
    localFile(`prefix.d/example.com/${b.fp}`, '');
    sysFile(`prefix.d/example.org/${b.fp}`, pub.b!); // another place: not masked
    expect(await fps('example.com/app')).toEqual([]);
    expect(await fps('example.org/app')).toEqual([b.fp]);
    expect((await ks.list()).map((k) => k.prefix)).toEqual(['example.org']);
  });

  it('refuses a key file whose name does not match the fingerprint, naming the file', async () => {
    const p = localFile(`prefix.d/example.com/${b.fp}`, pub.a!);
    await expect(ks.keysForName('example.com/app')).rejects.toThrow(
      `keystore file ${p}: fingerprint mismatch: the file is named ${b.fp} but holds key ${a.fp}`,
    );
    await expect(ks.list()).rejects.toThrow(TrustError);
  });

  it('refuses a key file named by something other than a fingerprint', async () => {
    const p = localFile(`root.d/alice.asc`, pub.a!);
    await expect(ks.list()).rejects.toThrow(`keystore file ${p}: the name is not a lowercase hex key fingerprint`);
  });

  it('remove deletes the local entries of a fingerprint in every scope, by unique prefix of 8+ hex', async () => {
    await ks.add(pub.a!, { root: true });
    await ks.add(pub.a!, { prefix: 'example.com' });
    await ks.add(pub.b!, { prefix: 'example.com' });
    const removed = await ks.remove(a.fp.slice(0, 8).toUpperCase());
    expect(removed.map((r) => [r.action, r.scope])).toEqual([
      ['deleted', 'root'],
      ['deleted', 'prefix'],
    ]);
    expect((await ks.list()).map((k) => k.fingerprint)).toEqual([b.fp]);
  });

  it('remove masks a system-only key with an empty local file and says so', async () => {
    sysFile(`prefix.d/example.com/${a.fp}`, pub.a!);
    const [r] = await ks.remove(a.fp);
    const mask = path.join(localDir, 'trustedkeys', 'prefix.d', 'example.com', a.fp);
    expect(r).toMatchObject({ action: 'masked', layer: 'system', changedPath: mask });
    expect(fs.statSync(mask).size).toBe(0);
    expect(await ks.list()).toEqual([]);
    // Trusting it again unmasks.
    await ks.add(pub.a!, { prefix: 'example.com' });
    expect((await ks.list()).map((k) => k.layer)).toEqual(['local']);
  });

  it('remove: NotFoundError for an unknown fingerprint, UsageError below 8 digits', async () => {
    await ks.add(pub.a!, { root: true });
    await expect(ks.remove('0'.repeat(40))).rejects.toThrow(NotFoundError);
    await expect(ks.remove(a.fp.slice(0, 7))).rejects.toThrow(UsageError);
    await expect(ks.remove(a.fp)).resolves.toHaveLength(1);
  });
});
