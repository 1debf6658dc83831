// Token renewal mid-pull (issue 6): the registry client against Debian's docker-registry behind an
// HTTPS front (test/support/token-registry.ts) whose bearer tokens expire after a few requests or a
// short time. A blob or manifest refused with 401 gets one fresh token (same scope, same
// credentials) and one retry; three blobs refused together share one renewal; a second 401 in a
// row, or a realm that refuses, is an error with a suggestion and leaves nothing in tmpDir.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

import { closeAgents } from '../../src/http/client.js';
import { NO_RETRY } from '../../src/http/retry.js';
import { parseReference } from '../../src/oci/reference.js';
import { RegistryClient, RegistryError, type RegistryClientOptions } from '../../src/oci/registry.js';
import { libcSyscalls } from '../../src/sys/index.js';
import { hasOpenssl, makeTestCa, type TestCa } from '../support/https-server.js';
import { hasRegistryTools, pushLayeredImage, REGISTRY_SKIP_REASON, startRegistry, type LayeredImage, type TestRegistry } from '../support/registry.js';
import { startTokenRegistry, type TokenRegistry, type TokenRegistryOptions } from '../support/token-registry.js';

const USERS = { alice: 'pa:ss' };
const CREDENTIALS = { user: 'alice', password: 'pa:ss', source: '/test/auth.json (127.0.0.1)' };

describe.skipIf(!hasRegistryTools || !hasOpenssl)(`bearer token renewal mid-pull (${REGISTRY_SKIP_REASON}, openssl)`, () => {
  let registry: TestRegistry;
  let ca: TestCa;
  let image: LayeredImage;
  let tmpDir: string;
  let front: TokenRegistry | undefined;

  beforeAll(async () => {
    registry = await startRegistry();
    ca = makeTestCa();
    image = await pushLayeredImage(registry, 'team/layers:1', [{ a: 'first layer\n' }, { b: 'second layer\n' }, { c: 'third layer\n' }]);
    tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tspod-reauth-'));
  }, 60_000);

  afterEach(async () => {
    await front?.close();
    front = undefined;
  });

  afterAll(async () => {
    await closeAgents();
    await registry?.stop();
    ca?.cleanup();
    fs.rmSync(tmpDir, { recursive: true, force: true });
  });

  const start = async (o: Omit<TokenRegistryOptions, 'registry' | 'tls'>): Promise<TokenRegistry> => {
    front = await startTokenRegistry({ registry, tls: { cert: ca.cert, key: ca.key }, ...o });
    return front;
  };
  const client = (f: TokenRegistry, extra: Partial<RegistryClientOptions> = {}): RegistryClient =>
    new RegistryClient(parseReference(`docker://${f.host}/team/layers:1`), { tmpDir, sys: libcSyscalls, ca: ca.caCert, retry: NO_RETRY, ...extra });
  const sha = (file: string): string => `sha256:${crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex')}`;
  const basic = `Basic ${Buffer.from('alice:pa:ss').toString('base64')}`;
  /**
   * Files that appeared in tmpDir since `before`, but for the empty resumable partials download.ts
   * keeps for a later run (`key`): nothing downloaded, nothing handed on.
   */
  const leftOver = (before: string[]): string[] =>
    fs.readdirSync(tmpDir).filter((n) => !before.includes(n) && !(n.endsWith('.partial') && fs.statSync(path.join(tmpDir, n)).size === 0));

  it('renews the token once while three blobs are in flight, retries each, and sends no credentials to storage', async () => {
    // A token is good for two registry requests: the manifest and the config; the three layers
    // are refused together (the front holds their 401s until all three wait), and the realm takes
    // 150 ms, so without a shared renewal each layer would ask for its own token.
    const f = await start({ users: USERS, tokenUses: 2, tokenDelayMs: 150 });
    f.holdBlob401s = 3;
    const c = client(f, { credentials: CREDENTIALS });
    const m = await c.getManifest();
    expect(m.digest).toBe(image.manifestDigest);
    await c.getBlobBytes(m.json.config!);
    expect(f.tokenRequests()).toHaveLength(1);
    f.tokenUses = 10; // the renewed token lasts for the three retries

    const blobs = await Promise.all(m.json.layers!.map((d) => c.fetchBlob(d)));
    expect(blobs.map((b) => sha(b.path))).toEqual(image.layers.map((l) => l.digest));
    for (const b of blobs) fs.rmSync(b.path);

    const tokens = f.tokenRequests();
    expect(tokens).toHaveLength(2);
    // The renewal asked for the same scope with the same credentials.
    expect(tokens.map((t) => [t.query.get('scope'), t.query.get('service'), t.authorization])).toEqual([
      ['repository:team/layers:pull', 'test-registry', basic],
      ['repository:team/layers:pull', 'test-registry', basic],
    ]);
    const refused = f.unauthorized().filter((s) => s.path.includes('/blobs/'));
    expect(refused.map((s) => s.authorization)).toEqual(['Bearer tok-1', 'Bearer tok-1', 'Bearer tok-1']);
    const retried = f.seen.filter((s) => s.path.includes('/blobs/') && s.status === 307 && s.authorization === 'Bearer tok-2');
    expect(retried.map((s) => s.path).sort()).toEqual(image.layers.map((l) => `/v2/team/layers/blobs/${l.digest}`).sort());
    const storage = f.seen.filter((s) => s.path.startsWith('/storage/'));
    expect(storage).toHaveLength(4); // config + 3 layers
    expect(storage.every((s) => s.authorization === undefined && s.host?.startsWith('localhost:'))).toBe(true);
  });

  it('renews an anonymous token that expired by time before a later manifest request', async () => {
    const f = await start({ tokenTtlMs: 300 });
    const c = client(f);
    await c.getManifest();
    await new Promise((r) => setTimeout(r, 400));
    const again = await c.getManifest(image.manifestDigest);
    expect(again.digest).toBe(image.manifestDigest);
    const tokens = f.tokenRequests();
    expect(tokens).toHaveLength(2);
    expect(tokens.every((t) => t.authorization === undefined)).toBe(true);
    expect(f.unauthorized().map((s) => s.authorization)).toEqual([undefined, 'Bearer tok-1']);
  });

  it('asks for the challenge with a HEAD when only blobs need a token (the manifest was anonymous)', async () => {
    const f = await start({ anonymousManifests: true });
    const c = client(f);
    const m = await c.getManifest();
    expect(f.tokenRequests()).toHaveLength(0);
    const blob = await c.fetchBlob(m.json.layers![2]!);
    expect(sha(blob.path)).toBe(image.layers[2]!.digest);
    fs.rmSync(blob.path);
    expect(f.unauthorized().map((s) => [s.method, s.authorization])).toEqual([
      ['GET', undefined],
      ['HEAD', undefined],
    ]);
    expect(f.tokenRequests()).toHaveLength(1);
  });

  it('fails on a second 401 in a row for a blob, naming the registry, and keeps nothing', async () => {
    const f = await start({ users: USERS, tokenUses: 1 });
    const c = client(f, { credentials: CREDENTIALS });
    const m = await c.getManifest();
    f.tokenUses = 0; // tokens from now on are refused at once
    const before = fs.readdirSync(tmpDir);
    const err = await c.fetchBlob(m.json.layers![0]!).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RegistryError);
    expect((err as Error).message).toMatch(new RegExp(`401 Unauthorized again: ${f.host.replace(/\./g, '\\.')} refused a fresh token`));
    expect((err as RegistryError).suggestions).toEqual([`check the credentials for ${f.host} in ${CREDENTIALS.source}`]);
    expect(f.tokenRequests()).toHaveLength(2);
    expect(leftOver(before)).toEqual([]);
  });

  it('fails on a second 401 in a row for a manifest, suggesting podman login when anonymous', async () => {
    const f = await start({ tokenUses: 0 });
    const err = await client(f).getManifest().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RegistryError);
    expect((err as Error).message).toMatch(/manifests\/1: 401 Unauthorized again: .* refused a fresh token \(an anonymous token from https:\/\/127\.0\.0\.1:\d+\)/);
    expect((err as RegistryError).suggestions.join(' ')).toMatch(/podman login 127\.0\.0\.1:\d+/);
    expect(f.tokenRequests()).toHaveLength(1);
  });

  it('reports the realm refusing the renewal (401) with the credentials to check, and keeps nothing', async () => {
    const f = await start({ users: USERS, tokenUses: 1 });
    const c = client(f, { credentials: CREDENTIALS });
    const m = await c.getManifest();
    f.refuseTokens = true;
    const before = fs.readdirSync(tmpDir);
    const err = await c.fetchBlob(m.json.layers![1]!).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RegistryError);
    expect((err as Error).message).toMatch(/fetch blob sha256:[0-9a-f]{64} of .*: get a token for .* from https:\/\/127\.0\.0\.1:\d+: .*401/);
    expect((err as RegistryError).suggestions).toEqual([`check the credentials for ${f.host} in ${CREDENTIALS.source}`]);
    expect(leftOver(before)).toEqual([]);
  });
});
