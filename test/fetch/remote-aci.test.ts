// Fetching an ACI from an https:// URL, in process, against a real HTTPS server on 127.0.0.1 with a
// test CA (no DNS, no root): the signature is checked before the body is requested, the bytes are
// verified and imported as they stream, a download that restarts makes both readers start over,
// and every refusal leaves nothing listed and nothing in the store's tmp area. The end-to-end
// suite (test/integration/fetch-remote.test.ts) covers names, DNS and the CLI.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';

import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';

import { ImageFormatError, TrustError } from '../../src/errors.js';
import type { FetchContext } from '../../src/fetch/context.js';
import { fetchImage } from '../../src/fetch/index.js';
import { SECURE } from '../../src/fetch/insecure-options.js';
import { Store } from '../../src/store/store.js';
import { libcSyscalls } from '../../src/sys/index.js';
import { Keystore } from '../../src/trust/keystore.js';
import { imageIdOf, makeAciTar, manifestFor } from '../support/aci.js';
import { GpgHome, hasGpg, type GpgKey } from '../support/gpg.js';
import { fileRoute, servedFile } from '../support/http-scenarios.js';
import { hasOpenssl, makeTestCa, respond, startServer, type TestCa, type TestServer } from '../support/https-server.js';

interface Signed {
  aci: Buffer;
  id: string;
  asc: Buffer;
}

describe.skipIf(!hasGpg || !hasOpenssl)('fetching an ACI from an https:// URL (needs gpg and openssl)', () => {
  let ca: TestCa;
  let server: TestServer;
  let gpg: GpgHome;
  let signer: GpgKey;
  let scratch: string;
  let dir: string;
  let store: Store;
  let keystore: Keystore;
  let warnings: string[];

  async function signedAci(name: string, files: Record<string, string> = { 'hello.txt': 'hello\n' }): Promise<Signed> {
    const tar = await makeAciTar(manifestFor(name), files);
    const aci = zlib.gzipSync(tar);
    const file = path.join(scratch, `${name.replace(/\//g, '_')}.aci`);
    fs.writeFileSync(file, aci);
    return { aci, id: imageIdOf(tar), asc: gpg.signDetached(file, signer.fingerprint) };
  }

  function context(): FetchContext {
    return {
      store,
      keystore: async () => keystore,
      insecure: SECURE,
      onWarning: (m) => warnings.push(m),
      network: async () => ({ resolver: { resolveTxt: async () => [] }, http: { ca: ca.caCert } }),
    };
  }

  const tmpFiles = () => fs.readdirSync(store.layout.tmp);
  const requested = () => server.requests.map((r) => r.url);

  beforeAll(async () => {
    ca = makeTestCa();
    server = await startServer({ tls: { cert: ca.cert, key: ca.key } });
    gpg = new GpgHome();
    signer = gpg.genKey('url signer <signer@url.test>');
    scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'tspod-remote-aci-'));
  });

  afterAll(async () => {
    await server?.close();
    gpg?.cleanup();
    ca?.cleanup();
    fs.rmSync(scratch, { recursive: true, force: true });
  });

  beforeEach(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tspod-remote-store-'));
    store = new Store({ dir, sys: libcSyscalls }).init();
    keystore = new Keystore({ systemDir: path.join(dir, 'usr-lib'), localDir: path.join(dir, 'etc'), sys: libcSyscalls });
    warnings = [];
    server.requests.length = 0;
  });

  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('stores a signed image from a URL with its signer, source and ETag; the .asc is requested first', async () => {
    await keystore.add(gpg.exportPublic(signer.fingerprint), { prefix: 'url.test' });
    const image = await signedAci('url.test/one');
    server.route('/one.aci', fileRoute(servedFile(image.aci, { etag: '"one"' })));
    server.route('/one.aci.asc', respond.bytes(image.asc));
    const result = await fetchImage(`${server.origin}/one.aci`, context());
    expect(result).toMatchObject({ outcome: 'fetched', stored: true, signer: signer.fp, dependencies: [], missingDependencies: [] });
    expect(result.record).toMatchObject({ id: image.id, name: 'url.test/one' });
    expect(result.record.source).toMatchObject({ kind: 'https', location: `${server.origin}/one.aci`, signer: signer.fp, etag: '"one"' });
    expect(requested()).toEqual(['/one.aci.asc', '/one.aci']);
    expect(tmpFiles()).toEqual([]);
  });

  it('refuses a signer no prefix or root key matches before requesting the body', async () => {
    const image = await signedAci('url.test/two');
    server.route('/two.aci', fileRoute(servedFile(image.aci)));
    server.route('/two.aci.asc', respond.bytes(image.asc));
    const err = await fetchImage(`${server.origin}/two.aci`, context()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TrustError);
    expect((err as TrustError).message).toContain(`signed by untrusted key ${signer.fp}, which no prefix or root key matches; the image was not downloaded`);
    expect(requested()).toEqual(['/two.aci.asc']);
  });

  it('refuses a signer trusted for another prefix once the manifest names the image, and stores nothing', async () => {
    await keystore.add(gpg.exportPublic(signer.fingerprint), { prefix: 'elsewhere.test' });
    const image = await signedAci('url.test/three');
    server.route('/three.aci', fileRoute(servedFile(image.aci)));
    server.route('/three.aci.asc', respond.bytes(image.asc));
    const err = await fetchImage(`${server.origin}/three.aci`, context()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TrustError);
    expect((err as TrustError).message).toMatch(/image url\.test\/three: signed by untrusted key/);
    expect((err as TrustError).suggestions).toContain('tspod trust --prefix url.test/three <key file or URL>');
    expect(store.listImages()).toEqual([]);
    expect(tmpFiles()).toEqual([]);
  });

  it('starts both readers over when a resumed download restarts (the server ignored Range after a cut)', async () => {
    await keystore.add(gpg.exportPublic(signer.fingerprint), { prefix: 'url.test' });
    const image = await signedAci('url.test/four', { 'big.txt': 'x'.repeat(300_000) + Math.random() });
    const file = servedFile(image.aci, { etag: '"four"', ranges: false, faults: [{ cutAfter: Math.floor(image.aci.length / 2) }] });
    server.route('/four.aci', fileRoute(file));
    server.route('/four.aci.asc', respond.bytes(image.asc));
    const result = await fetchImage(`${server.origin}/four.aci`, context());
    expect(result.record.id).toBe(image.id);
    expect(file.served).toBe(2);
    expect(server.requests.filter((r) => r.url === '/four.aci')[1]!.headers.range).toMatch(/^bytes=\d+-$/);
    expect(tmpFiles()).toEqual([]);
  });

  it('refuses bytes that do not match the signature (the file was replaced), leaving nothing behind', async () => {
    await keystore.add(gpg.exportPublic(signer.fingerprint), { prefix: 'url.test' });
    const signedOne = await signedAci('url.test/five');
    const other = await signedAci('url.test/five', { 'other.txt': 'not what was signed\n' });
    server.route('/five.aci', fileRoute(servedFile(other.aci)));
    server.route('/five.aci.asc', respond.bytes(signedOne.asc));
    const err = await fetchImage(`${server.origin}/five.aci`, context()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TrustError);
    expect((err as TrustError).message).toMatch(/bad signature/);
    expect(store.listImages()).toEqual([]);
    expect(tmpFiles()).toEqual([]);
  });

  it('refuses bytes that are not an image as they arrive, and discards the partial file', async () => {
    await keystore.add(gpg.exportPublic(signer.fingerprint), { prefix: 'url.test' });
    const garbage = Buffer.alloc(4 << 20, 'not an archive ');
    const file = path.join(scratch, 'garbage.aci');
    fs.writeFileSync(file, garbage);
    server.route('/six.aci', fileRoute(servedFile(garbage)));
    server.route('/six.aci.asc', respond.bytes(gpg.signDetached(file, signer.fingerprint)));
    const err = await fetchImage(`${server.origin}/six.aci`, context()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ImageFormatError);
    expect((err as ImageFormatError).message).toMatch(/unknown image format/);
    expect(tmpFiles()).toEqual([]);
  });

  it('skips the signature with --insecure-options=image, with a warning, and never asks for the .asc', async () => {
    const image = await signedAci('url.test/seven');
    server.route('/seven.aci', fileRoute(servedFile(image.aci)));
    const result = await fetchImage(`${server.origin}/seven.aci`, { ...context(), insecure: { ...SECURE, image: true } });
    expect(result).toMatchObject({ signer: null, record: { id: image.id } });
    expect(requested()).toEqual(['/seven.aci']);
    expect(warnings).toEqual([`image ${server.origin}/seven.aci: signature not checked (--insecure-options=image)`]);
  });
});
