// End to end, as a user: ACIs built by Debian's actool, keys and signatures made by GnuPG,
// the real CLI in a child process, store and config in temp dirs.
import { execSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { validateDocument } from '../../src/appc/validate.js';
import { buildFixtures } from '../../fixtures/build-fixtures.js';
import { TspodEnv } from '../support/cli.js';
import { hasCommand } from '../support/tools.js';
import { GpgHome, hasGpg, type GpgKey } from '../support/gpg.js';

const hasActool = hasCommand('actool', ['version']);

const skip = !hasGpg || !hasActool;
const reason = 'needs gpg (gnupg) and actool (appc-spec); scripts/setup.sh installs them';

describe.skipIf(skip)(`tspod fetch / image / trust end to end (${reason})`, () => {
  let env: TspodEnv;
  let gpg: GpgHome;
  let signer: GpgKey;
  let stranger: GpgKey;
  let acis: Record<string, string>;
  let keyFile: string;

  beforeAll(async () => {
    env = new TspodEnv();
    gpg = new GpgHome();
    acis = await buildFixtures(path.join(env.base, 'acis'));
    signer = gpg.genKey('tspod test signer <signer@tspod.dev>');
    stranger = gpg.genKey('someone else <else@example.org>');
    keyFile = path.join(env.base, 'signer.asc');
    fs.writeFileSync(keyFile, gpg.exportPublic(signer.fingerprint));
    for (const aci of Object.values(acis)) fs.writeFileSync(`${aci}.asc`, gpg.signDetached(aci, signer.fingerprint));
  });

  afterAll(() => {
    gpg?.cleanup();
    env?.cleanup();
  });

  function uncompressedSha512(aci: string): string {
    return execSync(`gzip -dc '${aci}' | sha512sum`).toString().split(' ')[0]!;
  }

  it('refuses to trust a key without a terminal unless --skip-fingerprint-review is given', () => {
    const result = env.run(['trust', '--prefix', 'tspod.dev', keyFile]);
    expect(result.status).toBe(254);
    expect(result.stderr).toMatch(/--skip-fingerprint-review/);
  });

  it('refuses a fetch signed by a key nobody trusted, naming the key and the trust command', () => {
    const result = env.run(['fetch', acis.demo!]);
    expect(result.status).toBe(254);
    expect(result.stderr).toContain(signer.fp.slice(-16));
    expect(result.stderr).toMatch(/tspod trust --prefix tspod\.dev\/demo/);
    expect(env.json<unknown[]>(['image', 'list'])).toEqual([]);
  });

  it('trusts a key for a prefix and lists it (--json follows schemas/trust-list.json)', () => {
    env.ok(['trust', '--prefix', 'tspod.dev', '--skip-fingerprint-review', keyFile]);
    const keys = env.json<{ fingerprint: string; prefix: string | null }[]>(['trust', 'list']);
    validateDocument('trust-list', keys, 'trust list --json');
    expect(keys).toEqual([expect.objectContaining({ fingerprint: signer.fp, prefix: 'tspod.dev', layer: 'local' })]);
    expect(fs.existsSync(path.join(env.localConfig, 'trustedkeys', 'prefix.d', 'tspod.dev', signer.fp))).toBe(true);
  });

  it('fetches a signed ACI: the id is the sha512 of the uncompressed tar and the signer is recorded', () => {
    const result = env.run(['fetch', acis.demo!]);
    expect(result.status, result.stderr).toBe(0);
    expect(result.stdout.trim()).toBe(`sha512-${uncompressedSha512(acis.demo!)}`);
    expect(result.stderr).toContain(`signed by ${signer.fp}`);
    const images = env.json<{ id: string; signer: string | null; name: string }[]>(['image', 'list']);
    validateDocument('image-list', images, 'image list --json');
    expect(images).toEqual([expect.objectContaining({ id: result.stdout.trim(), name: 'tspod.dev/demo', signer: signer.fp })]);
  });

  it('refuses a signature made by another key, and a signature of another file', () => {
    const copy = path.join(env.base, 'other.aci');
    fs.copyFileSync(acis.plain!, copy);
    fs.writeFileSync(`${copy}.asc`, gpg.signDetached(copy, stranger.fingerprint));
    const wrongKey = env.run(['fetch', copy]);
    expect(wrongKey.status).toBe(254);
    expect(wrongKey.stderr).toContain(stranger.fp.slice(-16));
    fs.copyFileSync(`${acis.demo!}.asc`, `${copy}.asc`);
    const wrongFile = env.run(['fetch', copy]);
    expect(wrongFile.status).toBe(254);
    expect(wrongFile.stderr).toMatch(/signature/i);
    expect(env.json<{ name: string }[]>(['image', 'list']).map((i) => i.name)).toEqual(['tspod.dev/demo']);
  });

  it('resolves images by name, version and id prefix in cat-manifest', () => {
    const byName = JSON.parse(env.ok(['image', 'cat-manifest', 'tspod.dev/demo:1.0.0'])) as { name: string };
    expect(byName.name).toBe('tspod.dev/demo');
    const [image] = env.json<{ id: string }[]>(['image', 'list']);
    const byId = env.ok(['image', 'cat-manifest', '--no-pretty-print', image!.id.slice(0, 16)]);
    expect(byId.trim()).toBe(JSON.stringify(byName));
    const missing = env.run(['image', 'cat-manifest', 'tspod.dev/demo:9.9.9']);
    expect(missing.status).toBe(254);
    expect(missing.stderr).toMatch(/not in the store; stored versions: sha512-[0-9a-f]{32} \(version=1\.0\.0/);
  });

  it('exports the image byte-identical to the stored (uncompressed) tar', () => {
    const out = path.join(env.base, 'export.aci');
    env.ok(['image', 'export', 'tspod.dev/demo', out]);
    expect(crypto.createHash('sha512').update(fs.readFileSync(out)).digest('hex')).toBe(uncompressedSha512(acis.demo!));
    expect(env.run(['image', 'export', 'tspod.dev/demo', out]).stderr).toMatch(/already exists \(pass --overwrite/);
    env.ok(['image', 'export', '--overwrite', 'tspod.dev/demo', out]);
  });

  it('extracts one image with and without --rootfs-only', () => {
    const full = path.join(env.base, 'extract-full');
    env.ok(['image', 'extract', 'tspod.dev/demo', full]);
    expect(fs.readdirSync(full).sort()).toEqual(['manifest', 'rootfs']);
    expect(fs.lstatSync(path.join(full, 'rootfs/bin/sh')).isSymbolicLink()).toBe(true);
    const rootfs = path.join(env.base, 'extract-rootfs');
    env.ok(['image', 'extract', '--rootfs-only', 'tspod.dev/demo', rootfs]);
    expect(fs.statSync(path.join(rootfs, 'bin/busybox')).mode & 0o111).not.toBe(0);
  });

  it('renders an image with its dependency once the dependency is stored, honouring pathWhitelist', () => {
    env.ok(['fetch', acis['app-with-deps']!]);
    const dest = path.join(env.base, 'render-app');
    const missing = env.run(['image', 'render', 'tspod.dev/test/app-with-deps', dest]);
    expect(missing.status).toBe(254);
    expect(missing.stderr).toMatch(/dependency tspod\.dev\/test\/base.* is not in the store/);
    expect(missing.stderr).toMatch(/try: tspod fetch tspod\.dev\/test\/base/);
    expect(fs.existsSync(dest)).toBe(false);
    env.ok(['fetch', acis.base!]);
    env.ok(['image', 'render', 'tspod.dev/test/app-with-deps', dest]);
    const manifest = JSON.parse(fs.readFileSync(path.join(fixturesDir(), 'app-with-deps', 'manifest'), 'utf8')) as { pathWhitelist: string[] };
    const files = listFiles(path.join(dest, 'rootfs'));
    // Every regular file of the rendered tree is whitelisted, and every whitelisted path exists.
    for (const file of files) expect(manifest.pathWhitelist).toContain(file);
    for (const wanted of manifest.pathWhitelist) expect(fs.existsSync(path.join(dest, 'rootfs', wanted)), wanted).toBe(true);
  });

  it('removes images by name; the next listing does not show them and gc cleans up', () => {
    env.ok(['image', 'rm', 'tspod.dev/test/app-with-deps', 'tspod.dev/test/base']);
    expect(env.json<{ name: string }[]>(['image', 'list']).map((i) => i.name)).toEqual(['tspod.dev/demo']);
    const missing = env.run(['image', 'rm', 'tspod.dev/test/base']);
    expect(missing.status).toBe(254);
    const gc = env.json<{ removedImages: unknown[] }>(['image', 'gc', '--grace-period=0']);
    expect(gc.removedImages).toHaveLength(1);
    expect(env.json<unknown[]>(['image', 'list'])).toEqual([]);
  });

  it('removes a trusted key; later fetches are refused again', () => {
    env.ok(['trust', 'rm', signer.fp.slice(0, 12)]);
    expect(env.json<unknown[]>(['trust', 'list'])).toEqual([]);
    expect(env.run(['fetch', acis.demo!]).status).toBe(254);
  });

  it('refuses a truncated gzip ACI with exit 254; --debug adds the cause chain', () => {
    const truncated = path.join(env.base, 'truncated.aci');
    const bytes = fs.readFileSync(acis.demo!);
    fs.writeFileSync(truncated, bytes.subarray(0, bytes.length >> 1));
    const plain = env.run(['fetch', '--insecure-options=image', truncated]);
    expect(plain.status).toBe(254);
    expect(plain.stderr).toMatch(/^tspod: read .*truncated\.aci: corrupt gzip data/m);
    expect(plain.stderr).not.toMatch(/caused by/);
    const debug = env.run(['fetch', '--debug', '--insecure-options=image', truncated]);
    expect(debug.status).toBe(254);
    expect(debug.stderr).toMatch(/caused by: /);
    expect(fs.readdirSync(path.join(env.dir, 'cas', 'tmp'))).toEqual([]);
  });

  it('prints errors as JSON with --json, exit code 254', () => {
    const result = env.run(['image', 'rm', 'sha512-ffff', '--json']);
    expect(result.status).toBe(254);
    expect(JSON.parse(result.stdout)).toEqual({
      error: expect.objectContaining({ name: 'NotFoundError', exitCode: 254, message: expect.stringMatching(/sha512-ffff: no image with this id/) }),
    });
  });
});

function fixturesDir(): string {
  return path.resolve(import.meta.dirname, '../../fixtures/images');
}

function listFiles(root: string): string[] {
  const out: string[] = [];
  for (const entry of fs.readdirSync(root, { withFileTypes: true, recursive: true })) {
    if (entry.isDirectory()) continue;
    out.push(`/${path.relative(root, path.join(entry.parentPath, entry.name))}`);
  }
  return out.sort();
}
