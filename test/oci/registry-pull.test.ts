// The registry client against a real registry: Debian's docker-registry on loopback, images built
// by hand and pushed with skopeo (test/support/registry.ts); an https front that demands a bearer
// token and redirects blobs to another host (test/support/token-registry.ts), for the auth cases.
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { closeAgents } from '../../src/http/client.js';
import { findRegistryCredentials } from '../../src/oci/docker-auth.js';
import { parseReference } from '../../src/oci/reference.js';
import { RegistryClient, RegistryError, resolveImage, type RegistryClientOptions } from '../../src/oci/registry.js';
import { libcSyscalls } from '../../src/sys/index.js';
import { NotFoundError } from '../../src/errors.js';
import { hasOpenssl, makeTestCa, type TestCa } from '../support/https-server.js';
import { hasRegistryTools, pushImage, remoteManifestDigest, pushMultiArch, REGISTRY_SKIP_REASON, startRegistry, type BuiltImage, type TestRegistry } from '../support/registry.js';
import { startTokenRegistry, type TokenRegistry } from '../support/token-registry.js';

import { NO_RETRY } from '../../src/http/retry.js';

describe.skipIf(!hasRegistryTools)(`registry client against docker-registry (${REGISTRY_SKIP_REASON})`, () => {
  let registry: TestRegistry;
  let tmpDir: string;
  let single: BuiltImage;
  let multi: { indexDigest: string; images: BuiltImage[] };

  beforeAll(async () => {
    registry = await startRegistry();
    tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tspod-oci-tmp-'));
    single = await pushImage(registry, 'team/app:1.0');
    multi = await pushMultiArch(registry, 'team/multi:latest');
  }, 60_000);

  afterAll(async () => {
    await closeAgents();
    await registry?.stop();
    fs.rmSync(tmpDir, { recursive: true, force: true });
  });

  const client = (ref: string, extra: Partial<RegistryClientOptions> = {}): RegistryClient =>
    new RegistryClient(parseReference(ref), { tmpDir, sys: libcSyscalls, allowHttp: true, retry: NO_RETRY, ...extra });

  const sha = (file: string): string => `sha256:${crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex')}`;

  it('pulls manifest, config and layer by tag, each verified by digest', async () => {
    const c = client(`docker://${registry.host}/team/app:1.0`);
    const m = await c.getManifest();
    expect(m.digest).toBe(single.manifestDigest);
    expect(m.mediaType).toBe('application/vnd.oci.image.manifest.v1+json');
    const config = JSON.parse(Buffer.from(await c.getBlobBytes(m.json.config!)).toString()) as { architecture: string };
    expect(config.architecture).toBe('amd64');
    const layer = await c.fetchBlob(m.json.layers![0]!);
    expect(sha(layer.path)).toBe(single.layerDigest);
    fs.rmSync(layer.path);
  });

  it('pulls by digest and refuses a digest the registry does not have (404)', async () => {
    const m = await client(`docker://${registry.host}/team/app@${single.manifestDigest}`).getManifest();
    expect(m.digest).toBe(single.manifestDigest);
    const missing = `sha256:${'0'.repeat(64)}`;
    await expect(client(`docker://${registry.host}/team/app@${missing}`).getManifest()).rejects.toThrow(/404/);
  });

  it('refuses plain http without allowHttp', async () => {
    await expect(client(`docker://${registry.host}/team/app:1.0`, { allowHttp: false }).getManifest()).rejects.toThrow(/https|http/);
  });

  it('selects linux/arm64 and linux/amd64 from an index of two platforms', async () => {
    const arm = await resolveImage(client(`docker://${registry.host}/team/multi`), { os: 'linux', architecture: 'arm64' });
    expect(arm.index?.digest).toBe(multi.indexDigest);
    expect(arm.manifest.digest).toBe(multi.images[1]!.manifestDigest);
    const amd = await resolveImage(client(`docker://${registry.host}/team/multi`), { os: 'linux', architecture: 'amd64' });
    expect(amd.manifest.digest).toBe(multi.images[0]!.manifestDigest);
  });

  it('names the available platforms when none matches (linux/s390x)', async () => {
    const err = await resolveImage(client(`docker://${registry.host}/team/multi`), { os: 'linux', architecture: 's390x' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NotFoundError);
    expect((err as Error).message).toMatch(/linux\/s390x.*available: linux\/amd64, linux\/arm64\/v8/);
  });

  it('refuses a corrupted blob (digest mismatch) and keeps nothing', async () => {
    const img = await pushImage(registry, 'team/corrupt:1', { hello: 'to be corrupted\n' });
    const file = registry.blobPath(img.layerDigest);
    const bytes = fs.readFileSync(file);
    bytes[0] = bytes[0]! ^ 0xff; // same size, other bytes
    fs.writeFileSync(file, bytes);
    const before = fs.readdirSync(tmpDir);
    const err = await client(`docker://${registry.host}/team/corrupt:1`).fetchBlob({ digest: img.layerDigest, size: img.layerSize }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RegistryError);
    expect((err as Error).message).toMatch(/the bytes hash to sha256:.*nothing was kept/);
    expect(fs.readdirSync(tmpDir)).toEqual(before);
  });

  it('refuses a blob longer than its descriptor says', async () => {
    const err = await client(`docker://${registry.host}/team/app:1.0`).fetchBlob({ digest: single.layerDigest, size: single.layerSize - 1 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RegistryError);
    expect((err as Error).message).toMatch(/exceeds the limit/);
  });

  it('pulls a Docker schema 2 manifest (skopeo --format v2s2)', async () => {
    const img = await pushImage(registry, 'team/docker:1', { d: 'docker\n' }, { format: 'v2s2' });
    const m = await client(`docker://${registry.host}/team/docker:1`).getManifest();
    expect(m.mediaType).toBe('application/vnd.docker.distribution.manifest.v2+json');
    expect(m.digest).toBe(remoteManifestDigest(registry, 'team/docker:1'));
    expect(m.json.layers?.[0]?.digest).toBe(img.layerDigest);
  });

  describe('through a plain http front that misbehaves', () => {
    let front: http.Server;
    let host: string;
    let mode: 'cut-blob' | 'tamper-manifest' | 'lie-digest' | 'basic' | 'pass' = 'pass';
    const ranges: (string | undefined)[] = [];

    beforeAll(async () => {
      front = http.createServer((req, res) => {
        const pathname = new URL(req.url ?? '/', 'http://x').pathname;
        const headers: http.OutgoingHttpHeaders = { accept: req.headers.accept ?? '*/*' };
        if (req.headers.range) headers.range = req.headers.range;
        if (req.headers['if-range']) headers['if-range'] = String(req.headers['if-range']);
        if (pathname.includes('/blobs/')) ranges.push(req.headers.range);
        if (mode === 'basic') {
          res.writeHead(401, { 'www-authenticate': 'Basic realm="plain"' }).end();
          return;
        }
        const up = http.get(`http://${registry.host}${pathname}`, { headers }, (upRes) => {
          const out: http.OutgoingHttpHeaders = {};
          for (const h of ['content-type', 'content-length', 'content-range', 'docker-content-digest', 'etag', 'last-modified']) if (upRes.headers[h]) out[h] = upRes.headers[h];
          const chunks: Buffer[] = [];
          upRes.on('data', (c: Buffer) => chunks.push(c));
          upRes.on('end', () => {
            let body = Buffer.concat(chunks);
            if (mode === 'cut-blob' && pathname.includes('/blobs/') && req.headers.range === undefined) {
              // The connection dies half way through the body: the client must resume with Range.
              res.writeHead(upRes.statusCode ?? 502, out);
              res.write(body.subarray(0, Math.floor(body.length / 2)), () => res.destroy());
              return;
            }
            if (pathname.includes('/manifests/') && mode === 'tamper-manifest') {
              body = Buffer.from(body.toString().replace('"schemaVersion":2', '"schemaVersion": 2'));
              out['content-length'] = body.length;
            }
            if (pathname.includes('/manifests/') && mode === 'lie-digest') out['docker-content-digest'] = `sha256:${'1'.repeat(64)}`;
            res.writeHead(upRes.statusCode ?? 502, out).end(body);
          });
        });
        up.on('error', () => res.writeHead(502).end());
      });
      await new Promise<void>((r) => front.listen(0, '127.0.0.1', () => r()));
      host = `127.0.0.1:${(front.address() as AddressInfo).port}`;
    });

    afterAll(async () => {
      await new Promise<void>((r) => {
        front.closeAllConnections();
        front.close(() => r());
      });
    });

    it('resumes a blob cut short with Range and still verifies its digest', async () => {
      mode = 'cut-blob';
      ranges.length = 0;
      const c = client(`docker://${host}/team/app:1.0`, { retry: { ...NO_RETRY, attempts: 3 }, sleep: async () => undefined });
      const blob = await c.fetchBlob({ digest: single.layerDigest, size: single.layerSize });
      expect(sha(blob.path)).toBe(single.layerDigest);
      fs.rmSync(blob.path);
      expect(ranges[0]).toBeUndefined();
      expect(ranges[1]).toMatch(/^bytes=\d+-$/);
      expect(ranges[1]).not.toBe('bytes=0-');
    });

    it('refuses a manifest whose bytes do not hash to the requested digest', async () => {
      mode = 'tamper-manifest';
      const err = await client(`docker://${host}/team/app@${single.manifestDigest}`).getManifest().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(RegistryError);
      expect((err as Error).message).toMatch(/sent a manifest whose digest is sha256:/);
    });

    it('does not send credentials over plain http, even with allowHttp (401 Basic)', async () => {
      mode = 'basic';
      const credentials = { user: 'u', password: 'p', source: 'test' };
      const err = await client(`docker://${host}/team/app:1.0`, { credentials }).getManifest().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(RegistryError);
      expect((err as Error).message).toMatch(/asks for credentials over plain http; tspod sends credentials over https only/);
    });

    it('refuses a tag whose Docker-Content-Digest disagrees with the bytes', async () => {
      mode = 'lie-digest';
      const err = await client(`docker://${host}/team/app:1.0`).getManifest().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(RegistryError);
      expect((err as Error).message).toMatch(/Docker-Content-Digest says sha256:1{64} but the bytes hash to/);
    });
  });

  describe.skipIf(!hasOpenssl)('behind an https front demanding a bearer token (needs openssl)', () => {
    let ca: TestCa;
    let front: TokenRegistry;
    let origin: string;
    let authFile: string;

    beforeAll(async () => {
      ca = makeTestCa();
      // Docker token protocol (test/support/token-registry.ts): Basic credentials in, a token out;
      // blobs redirected to "storage" on another host name, which must see no Authorization.
      front = await startTokenRegistry({ registry, tls: { cert: ca.cert, key: ca.key }, users: { alice: 's3cret:x' } });
      origin = front.origin;
      const runtime = fs.mkdtempSync(path.join(os.tmpdir(), 'tspod-xdg-'));
      fs.mkdirSync(path.join(runtime, 'containers'));
      authFile = path.join(runtime, 'containers', 'auth.json');
      fs.writeFileSync(authFile, JSON.stringify({ auths: { [front.host]: { auth: Buffer.from('alice:s3cret:x').toString('base64') } } }));
    });

    afterAll(async () => {
      await front?.close();
      ca?.cleanup();
      if (authFile) fs.rmSync(path.dirname(path.dirname(authFile)), { recursive: true, force: true });
    });

    it('gets a bearer token with credentials from auth.json and pulls; the redirect to storage carries no credentials', async () => {
      const ref = parseReference(`docker://${new URL(origin).host}/team/app:1.0`);
      const credentials = findRegistryCredentials(ref, { env: { XDG_RUNTIME_DIR: path.dirname(path.dirname(authFile)) }, home: '/nonexistent' });
      expect(credentials?.user).toBe('alice');
      const c = new RegistryClient(ref, { tmpDir, sys: libcSyscalls, ca: ca.caCert, credentials, retry: NO_RETRY });
      const m = await c.getManifest();
      expect(m.digest).toBe(single.manifestDigest);
      const layer = await c.fetchBlob(m.json.layers![0]!);
      expect(sha(layer.path)).toBe(single.layerDigest);
      fs.rmSync(layer.path);
      const storage = front.seen.filter((s) => s.path.startsWith('/storage/'));
      expect(storage.length).toBeGreaterThan(0);
      expect(storage.every((s) => s.authorization === undefined)).toBe(true);
      expect(front.tokenRequests().map((t) => [t.query.get('scope'), t.authorization])).toEqual([['repository:team/app:pull', `Basic ${Buffer.from('alice:s3cret:x').toString('base64')}`]]);
      expect(front.seen.some((s) => s.path.startsWith('/v2/team/app/blobs/') && s.authorization === 'Bearer tok-1')).toBe(true);
    });

    it('fails with a suggestion naming podman login when anonymous and the token server says 401', async () => {
      const ref = parseReference(`docker://${new URL(origin).host}/team/app:1.0`);
      const c = new RegistryClient(ref, { tmpDir, sys: libcSyscalls, ca: ca.caCert, retry: NO_RETRY });
      const err = await c.getManifest().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(RegistryError);
      expect((err as Error).message).toMatch(/get a token for .* 401/);
      expect((err as RegistryError).suggestions.join(' ')).toMatch(/podman login/);
    });
  });
});
