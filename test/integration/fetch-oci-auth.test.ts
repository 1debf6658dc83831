// `tspod fetch docker://...` against registries that demand authentication, end to end through the
// CLI (bin/run.js): Debian's docker-registry behind an HTTPS front with a test CA (trusted through
// NODE_EXTRA_CA_CERTS) that speaks the Docker token protocol (test/support/token-registry.ts).
// Credentials come from podman's auth.json (REGISTRY_AUTH_FILE, or
// ${XDG_RUNTIME_DIR}/containers/auth.json); a token that expires mid-pull is renewed once for three
// layers in flight; an anonymous-token registry and a digest pull work; wrong credentials are
// refused with a suggestion and nothing stored. OCI fetches still need --insecure-options=image
// (simple signing is not there yet).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

import { TspodEnv } from '../support/cli.js';
import { hasOpenssl, makeTestCa, type TestCa } from '../support/https-server.js';
import { hasRegistryTools, pushLayeredImage, REGISTRY_SKIP_REASON, startRegistry, type LayeredImage, type TestRegistry } from '../support/registry.js';
import { startTokenRegistry, type TokenRegistry, type TokenRegistryOptions } from '../support/token-registry.js';

/** The CLI with the test CA trusted and registry credentials only where the test puts them. */
class AuthEnv extends TspodEnv {
  constructor(private readonly extra: NodeJS.ProcessEnv) {
    super();
  }

  override childEnv(): NodeJS.ProcessEnv {
    const env = { ...super.childEnv() };
    // No credentials of the machine's own: not ~/.docker, not a session's auth.json.
    for (const name of ['REGISTRY_AUTH_FILE', 'XDG_RUNTIME_DIR', 'DOCKER_CONFIG']) delete env[name];
    env.DOCKER_CONFIG = path.join(this.base, 'no-docker-config');
    return { ...env, ...this.extra };
  }
}


describe.skipIf(!hasRegistryTools || !hasOpenssl)(`tspod fetch from registries that demand tokens (${REGISTRY_SKIP_REASON}, openssl)`, () => {
  let registry: TestRegistry;
  let ca: TestCa;
  let image: LayeredImage;
  let work: string;
  let front: TokenRegistry | undefined;
  const envs: TspodEnv[] = [];

  beforeAll(async () => {
    registry = await startRegistry();
    ca = makeTestCa();
    image = await pushLayeredImage(registry, 'tspod/private:1', [{ 'one.txt': 'layer one\n' }, { 'two.txt': 'layer two\n' }, { 'three.txt': 'layer three\n' }]);
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'tspod-oci-auth-'));
  }, 60_000);

  afterEach(async () => {
    await front?.close();
    front = undefined;
  });

  afterAll(async () => {
    for (const env of envs) env.cleanup();
    await registry?.stop();
    ca?.cleanup();
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  const start = async (o: Omit<TokenRegistryOptions, 'registry' | 'tls'>): Promise<TokenRegistry> => {
    front = await startTokenRegistry({ registry, tls: { cert: ca.cert, key: ca.key }, ...o });
    return front;
  };
  /** podman's auth.json: `auths.<host>.auth` is base64 of `user:password`. */
  const authJson = (file: string, host: string, user: string, password: string): string => {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, JSON.stringify({ auths: { [host]: { auth: Buffer.from(`${user}:${password}`).toString('base64') } } }));
    return file;
  };
  const newEnv = (extra: NodeJS.ProcessEnv = {}): TspodEnv => {
    const env = new AuthEnv({ NODE_EXTRA_CA_CERTS: ca.caCertPath, ...extra });
    envs.push(env);
    return env;
  };
  const render = (env: TspodEnv, id: string): string => {
    const dest = path.join(env.base, `render-${envs.length}`);
    env.ok(['image', 'render', id, dest]);
    return path.join(dest, 'rootfs');
  };
  const nothingStored = (env: TspodEnv): void => {
    expect(env.json<unknown[]>(['image', 'list'])).toEqual([]);
    const tmp = path.join(env.dir, 'cas', 'tmp');
    const left = fs.existsSync(tmp) ? fs.readdirSync(tmp).filter((n) => n.startsWith('oci-')) : [];
    expect(left).toEqual([]);
  };

  it('fetches over https with credentials from REGISTRY_AUTH_FILE, renewing an expired token once for three layers in flight', async () => {
    // Tokens last two registry requests (the manifest and the config): the three layers, fetched
    // three at a time, are refused together and share one renewal.
    // A renewed token lasts for the three retries.
    const f = await start({ users: { alice: 'open:sesame' }, tokenUses: (n) => (n === 1 ? 2 : 10), tokenDelayMs: 150 });
    f.holdBlob401s = 3;
    const env = newEnv({ REGISTRY_AUTH_FILE: authJson(path.join(work, 'a', 'auth.json'), f.host, 'alice', 'open:sesame') });
    const result = await env.runAsync(['fetch', '--insecure-options=image', `docker://${f.host}/tspod/private:1`]);
    expect(result.status, result.stderr).toBe(0);
    const id = result.stdout.trim();
    expect(id).toMatch(/^sha512-[0-9a-f]{128}$/);
    const rootfs = render(env, id);
    expect(['one.txt', 'two.txt', 'three.txt'].map((n) => fs.readFileSync(path.join(rootfs, n), 'utf8'))).toEqual(['layer one\n', 'layer two\n', 'layer three\n']);

    const basic = `Basic ${Buffer.from('alice:open:sesame').toString('base64')}`;
    expect(f.tokenRequests().map((t) => [t.query.get('scope'), t.authorization])).toEqual([
      ['repository:tspod/private:pull', basic],
      ['repository:tspod/private:pull', basic],
    ]);
    const refusedBlobs = f.unauthorized().filter((s) => s.path.includes('/blobs/'));
    expect(refusedBlobs.map((s) => s.path).sort()).toEqual(image.layers.map((l) => `/v2/tspod/private/blobs/${l.digest}`).sort());
    const storage = f.seen.filter((s) => s.path.startsWith('/storage/'));
    expect(storage.length).toBe(4); // the config and three layers
    expect(storage.every((s) => s.authorization === undefined)).toBe(true);
  });

  it('fetches by digest (@sha256:...) with credentials from ${XDG_RUNTIME_DIR}/containers/auth.json', async () => {
    const f = await start({ users: { bob: 'hunter2' } });
    const runtime = path.join(work, 'xdg');
    authJson(path.join(runtime, 'containers', 'auth.json'), f.host, 'bob', 'hunter2');
    const env = newEnv({ XDG_RUNTIME_DIR: runtime });
    const result = await env.runAsync(['fetch', '--insecure-options=image', `docker://${f.host}/tspod/private@${image.manifestDigest}`]);
    expect(result.status, result.stderr).toBe(0);
    const id = result.stdout.trim();
    const manifest = JSON.parse(env.ok(['image', 'cat-manifest', id])) as { annotations: { name: string; value: string }[] };
    expect(manifest.annotations.find((a) => a.name === 'appc.io/oci/manifest-digest')?.value).toBe(image.manifestDigest);
    expect(f.seen.some((s) => s.path === `/v2/tspod/private/manifests/${image.manifestDigest}` && s.status === 200)).toBe(true);
    expect(f.tokenRequests().every((t) => t.authorization === `Basic ${Buffer.from('bob:hunter2').toString('base64')}`)).toBe(true);
  });

  it('fetches from a registry that gives anonymous tokens, with no credentials anywhere', async () => {
    const f = await start({});
    const env = newEnv();
    const result = await env.runAsync(['fetch', '--insecure-options=image', `docker://${f.host}/tspod/private:1`]);
    expect(result.status, result.stderr).toBe(0);
    expect(fs.readFileSync(path.join(render(env, result.stdout.trim()), 'two.txt'), 'utf8')).toBe('layer two\n');
    expect(f.tokenRequests().length).toBeGreaterThan(0);
    expect(f.tokenRequests().every((t) => t.authorization === undefined)).toBe(true);
  });

  it('refuses wrong credentials with a suggestion naming the auth file, and stores nothing', async () => {
    const f = await start({ users: { alice: 'right' } });
    const file = authJson(path.join(work, 'wrong', 'auth.json'), f.host, 'alice', 'wrong');
    const env = newEnv({ REGISTRY_AUTH_FILE: file });
    const result = await env.runAsync(['fetch', '--insecure-options=image', `docker://${f.host}/tspod/private:1`]);
    expect(result.status).toBe(254);
    expect(result.stderr).toMatch(/get a token for docker:\/\/127\.0\.0\.1:\d+\/tspod\/private:1 from https:\/\/127\.0\.0\.1:\d+: .*401/);
    expect(result.stderr).toContain(`check the credentials for ${f.host} in ${file} (${f.host})`);
    nothingStored(env);
  });

  it('refuses an anonymous fetch from a registry that wants credentials, suggesting podman login, and stores nothing', async () => {
    const f = await start({ users: { alice: 'right' } });
    const env = newEnv();
    const result = await env.runAsync(['fetch', '--insecure-options=image', `docker://${f.host}/tspod/private:1`]);
    expect(result.status).toBe(254);
    expect(result.stderr).toMatch(/401/);
    expect(result.stderr).toContain(`podman login ${f.host}`);
    nothingStored(env);
  });
});
