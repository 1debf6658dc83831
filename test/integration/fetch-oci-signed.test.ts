// `tspod fetch` of OCI images signed with "simple signing" (containers-signature(5)), end to end
// through the CLI: images pushed with skopeo to Debian's docker-registry, reached through a plain
// http front that logs every request (so a refusal can be shown to have requested no layer) and
// serves the registry signature extension; signatures made by `skopeo standalone-sign` with keys
// of a real GnuPG home; lookasides configured in registries.d as file:// and as https:// on a
// loopback server with a test CA; policy.json scopes; an oci: layout with --signature.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { TspodEnv } from '../support/cli.js';
import { GpgHome, hasGpg, type GpgKey } from '../support/gpg.js';
import { hasOpenssl, makeTestCa, startServer, respond, type TestCa, type TestServer } from '../support/https-server.js';
import { sha256 } from '../support/oci-layout.js';
import { hasRegistryTools, pushImage, REGISTRY_SKIP_REASON, startRegistry, type BuiltImage, type TestRegistry } from '../support/registry.js';

class SignedEnv extends TspodEnv {
  constructor(private readonly extra: NodeJS.ProcessEnv = {}) {
    super();
  }

  override childEnv(): NodeJS.ProcessEnv {
    return { ...super.childEnv(), DOCKER_CONFIG: path.join(this.base, 'no-docker-config'), ...this.extra };
  }
}


describe.skipIf(!hasRegistryTools || !hasGpg || !hasOpenssl)(`tspod fetch of signed OCI images (${REGISTRY_SKIP_REASON}, gpg, openssl)`, () => {
  let registry: TestRegistry;
  let gpg: GpgHome;
  let signer: GpgKey;
  let stranger: GpgKey;
  let ca: TestCa;
  let work: string;
  let front: http.Server;
  /** `127.0.0.1:PORT` of the front: the registry every reference names. */
  let host: string;
  const requests: string[] = [];
  /** Extension documents the front serves: repository -> digest -> signatures (binary). */
  const extension = new Map<string, Map<string, Buffer[]>>();
  const images = new Map<string, BuiltImage & { manifest: Buffer; digest: string }>();
  const envs: TspodEnv[] = [];
  let lookaside: string;

  const newEnv = (extra: NodeJS.ProcessEnv = {}): TspodEnv => {
    const env = new SignedEnv(extra);
    envs.push(env);
    return env;
  };
  const keyFile = (key: GpgKey): string => {
    const file = path.join(work, `${key.fp}.asc`);
    if (!fs.existsSync(file)) fs.writeFileSync(file, gpg.exportPublic(key.fingerprint));
    return file;
  };
  const trust = (env: TspodEnv, prefix: string, key: GpgKey = signer): void => {
    env.ok(['trust', '--skip-fingerprint-review', '--prefix', prefix, keyFile(key)]);
  };
  /** `skopeo standalone-sign` of manifest bytes for a docker reference. */
  const sign = (manifest: Buffer, dockerRef: string, key: GpgKey = signer): Buffer => {
    const dir = fs.mkdtempSync(path.join(work, 'sign-'));
    fs.writeFileSync(path.join(dir, 'manifest.json'), manifest);
    execFileSync('skopeo', ['standalone-sign', path.join(dir, 'manifest.json'), dockerRef, key.fingerprint, '-o', path.join(dir, 'sig')], {
      env: { ...process.env, GNUPGHOME: gpg.home },
      stdio: 'pipe',
    });
    return fs.readFileSync(path.join(dir, 'sig'));
  };
  /** Puts a signature at `<base>/<repo>@sha256=<hex>/signature-<n>`. */
  const putLookaside = (base: string, repo: string, digest: string, sig: Buffer, n = 1): void => {
    const dir = path.join(base, `${repo}@${digest.replace(':', '=')}`);
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, `signature-${n}`), sig);
  };
  const registriesD = (env: TspodEnv, yaml: string): void => {
    fs.mkdirSync(path.join(env.localConfig, 'registries.d'), { recursive: true });
    fs.writeFileSync(path.join(env.localConfig, 'registries.d', 'test.yaml'), yaml);
  };
  const policy = (env: TspodEnv, doc: object): void => {
    fs.mkdirSync(env.localConfig, { recursive: true });
    fs.writeFileSync(path.join(env.localConfig, 'policy.json'), JSON.stringify(doc));
  };
  const layerRequested = (repo: string): boolean => {
    const img = images.get(repo)!;
    return requests.some((r) => r.includes(`/blobs/${img.layerDigest}`));
  };
  const nothingStored = (env: TspodEnv): void => {
    expect(env.json<unknown[]>(['image', 'list'])).toEqual([]);
  };
  const lastJson = <T>(stdout: string): T => JSON.parse(stdout.trim().split('\n').at(-1)!) as T;

  beforeAll(async () => {
    registry = await startRegistry();
    gpg = new GpgHome();
    signer = gpg.genKey('Signer <signer@example.test>');
    stranger = gpg.genKey('Stranger <stranger@example.test>');
    ca = makeTestCa();
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'tspod-oci-signed-'));
    lookaside = path.join(work, 'lookaside');
    front = http.createServer((req, res) => {
      const pathname = new URL(req.url ?? '/', 'http://x').pathname;
      requests.push(pathname);
      const ext = /^\/extensions\/v2\/(.+)\/signatures\/(sha256:[0-9a-f]{64})$/.exec(pathname);
      if (ext) {
        const sigs = extension.get(ext[1]!)?.get(ext[2]!);
        if (sigs === undefined) return void res.writeHead(404).end();
        const body = JSON.stringify({ signatures: sigs.map((s, i) => ({ version: 2, type: 'atomic', name: `${ext[2]}@sig${i}`, content: s.toString('base64') })) });
        return void res.writeHead(200, { 'content-type': 'application/json' }).end(body);
      }
      const up = http.get(`http://${registry.host}${pathname}`, { headers: { accept: req.headers.accept ?? '*/*' } }, (upRes) => {
        const out: http.OutgoingHttpHeaders = {};
        for (const h of ['content-type', 'content-length', 'docker-content-digest']) if (upRes.headers[h]) out[h] = upRes.headers[h];
        res.writeHead(upRes.statusCode ?? 502, out);
        upRes.pipe(res);
      });
      up.on('error', () => res.writeHead(502).end());
    });
    await new Promise<void>((r) => front.listen(0, '127.0.0.1', () => r()));
    host = `127.0.0.1:${(front.address() as AddressInfo).port}`;
    for (const repo of ['team/app', 'team/unsigned', 'team/rejected', 'team/ext', 'other/app']) {
      const img = await pushImage(registry, `${repo}:1.0`, { hello: `${repo}\n` });
      const manifest = execFileSync('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${registry.host}/${repo}:1.0`]);
      images.set(repo, { ...img, manifest, digest: sha256(manifest) });
    }
    const app = images.get('team/app')!;
    putLookaside(lookaside, 'team/app', app.digest, sign(app.manifest, `${host}/team/app:1.0`));
  }, 120_000);

  afterAll(async () => {
    for (const env of envs) env.cleanup();
    await new Promise<void>((r) => {
      front?.closeAllConnections();
      front?.close(() => r());
    });
    await registry?.stop();
    gpg?.cleanup();
    ca?.cleanup();
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  it('accepts an image signed by a key trusted for docker://HOST/team (file:// lookaside); the signer is in --json and image list', async () => {
    const env = newEnv();
    trust(env, `docker://${host}/team`);
    registriesD(env, `docker:\n  ${host}/team:\n    lookaside: file://${lookaside}\n`);
    const result = await env.runAsync(['fetch', '--json', '--insecure-options=http', `docker://${host}/team/app:1.0`]);
    expect(result.status, result.stderr).toBe(0);
    expect(result.stderr).not.toMatch(/signature not checked/);
    const out = lastJson<{ signer: string; record: { source: { signer: string } } }>(result.stdout);
    expect(out.signer).toBe(signer.fp);
    expect(out.record.source.signer).toBe(signer.fp);
    const listed = env.json<{ signer: string | null }[]>(['image', 'list']);
    expect(listed.map((i) => i.signer)).toEqual([signer.fp]);
  });

  it('refuses an unsigned image before any layer is requested, nothing stored', async () => {
    const env = newEnv();
    trust(env, `docker://${host}/team`);
    registriesD(env, `default-docker:\n  lookaside: file://${lookaside}\n`);
    requests.length = 0;
    const result = await env.runAsync(['fetch', '--insecure-options=http', `docker://${host}/team/unsigned:1.0`]);
    expect(result.status).toBe(254);
    expect(result.stderr).toMatch(/scope default: requirement 1 \(signedBy\): a signature is required, but the image has none/);
    expect(result.stderr).toMatch(/tspod fetch --insecure-options=image docker:/);
    // The manifest was read (and the extension asked), the layer never.
    expect(requests.some((r) => r.includes('/manifests/'))).toBe(true);
    expect(requests.some((r) => r.startsWith('/extensions/v2/team/unsigned/signatures/'))).toBe(true);
    expect(layerRequested('team/unsigned')).toBe(false);
    nothingStored(env);
  });

  it('refuses a signature by an untrusted key, naming its fingerprint and the trust command', async () => {
    const env = newEnv();
    trust(env, `docker://${host}/team`);
    const base = path.join(work, 'lookaside-stranger');
    const app = images.get('team/app')!;
    putLookaside(base, 'team/app', app.digest, sign(app.manifest, `${host}/team/app:1.0`, stranger));
    registriesD(env, `docker:\n  ${host}:\n    lookaside: file://${base}\n`);
    requests.length = 0;
    const result = await env.runAsync(['fetch', '--insecure-options=http', `docker://${host}/team/app:1.0`]);
    expect(result.status).toBe(254);
    expect(result.stderr).toContain(`signed by key ${stranger.fp}, which is not trusted for docker://${host}/team/app`);
    expect(result.stderr).toContain(`tspod trust --prefix docker://${host}/team/app KEYFILE`);
    expect(layerRequested('team/app')).toBe(false);
    nothingStored(env);
  });

  it('refuses a signature made for another manifest digest', async () => {
    const env = newEnv();
    trust(env, `docker://${host}/team`);
    const base = path.join(work, 'lookaside-digest');
    const app = images.get('team/app')!;
    const other = images.get('other/app')!;
    // Signed for the right name, but over other/app's manifest, and stored under team/app's digest.
    putLookaside(base, 'team/app', app.digest, sign(other.manifest, `${host}/team/app:1.0`));
    registriesD(env, `default-docker:\n  lookaside: file://${base}\n`);
    const result = await env.runAsync(['fetch', '--insecure-options=http', `docker://${host}/team/app:1.0`]);
    expect(result.status).toBe(254);
    expect(result.stderr).toContain(`is for manifest ${other.digest}, not ${app.digest}`);
    nothingStored(env);
  });

  it('refuses a signature for another identity (matchRepoDigestOrExact: a tag needs the exact name:tag)', async () => {
    const env = newEnv();
    trust(env, `docker://${host}/team`);
    const base = path.join(work, 'lookaside-identity');
    const app = images.get('team/app')!;
    putLookaside(base, 'team/app', app.digest, sign(app.manifest, `${host}/team/app:2.0`));
    registriesD(env, `default-docker:\n  lookaside: file://${base}\n`);
    const result = await env.runAsync(['fetch', '--insecure-options=http', `docker://${host}/team/app:1.0`]);
    expect(result.status).toBe(254);
    expect(result.stderr).toContain(`signed for ${host}/team/app:2.0, not ${host}/team/app:1.0 (matchRepoDigestOrExact)`);
    nothingStored(env);
    // By digest, the repository is what must match: the same signature is accepted.
    const byDigest = await env.runAsync(['fetch', '--insecure-options=http', `docker://${host}/team/app@${app.digest}`]);
    expect(byDigest.status, byDigest.stderr).toBe(0);
  });

  it('policy.json: reject and insecureAcceptAnything scopes, the most specific scope winning', async () => {
    const env = newEnv();
    trust(env, `docker://${host}/team`);
    registriesD(env, `default-docker:\n  lookaside: file://${lookaside}\n`);
    policy(env, {
      default: [{ type: 'reject' }],
      transports: {
        docker: {
          [`${host}/team`]: [{ type: 'signedBy', keyType: 'GPGKeys' }],
          [`${host}/team/unsigned`]: [{ type: 'insecureAcceptAnything' }],
          [`${host}/team/rejected:1.0`]: [{ type: 'reject' }],
        },
      },
    });
    const policyFile = path.join(env.localConfig, 'policy.json');
    requests.length = 0;
    const rejected = await env.runAsync(['fetch', '--insecure-options=http', `docker://${host}/team/rejected:1.0`]);
    expect(rejected.status).toBe(254);
    expect(rejected.stderr).toContain(`refused by ${policyFile}, scope transports.docker["${host}/team/rejected:1.0"]: requirement 1 (reject) rejects every image there`);
    expect(layerRequested('team/rejected')).toBe(false);
    const other = await env.runAsync(['fetch', '--insecure-options=http', `docker://${host}/other/app:1.0`]);
    expect(other.status).toBe(254);
    expect(other.stderr).toContain('scope default: requirement 1 (reject)');
    nothingStored(env);

    const unsigned = await env.runAsync(['fetch', '--insecure-options=http', `docker://${host}/team/unsigned:1.0`]);
    expect(unsigned.status, unsigned.stderr).toBe(0);
    expect(unsigned.stderr).toContain(`accepted without a signature by ${policyFile} (transports.docker["${host}/team/unsigned"])`);
    expect(env.json<{ signer: string | null }[]>(['image', 'list']).map((i) => i.signer)).toEqual([null]);
    const signed = await env.runAsync(['fetch', '--json', '--insecure-options=http', `docker://${host}/team/app:1.0`]);
    expect(signed.status, signed.stderr).toBe(0);
    expect(lastJson<{ signer: string | null }>(signed.stdout).signer).toBe(signer.fp);
  });

  it('policy.json: a wildcard scope covers the registry\'s domain (127.0.0.1 is under *.0.0.1), and remapIdentity accepts a mirror\'s image signed under the vendor\'s name', async () => {
    const app = images.get('team/app')!;
    const base = path.join(work, 'lookaside-vendor');
    putLookaside(base, 'team/app', app.digest, sign(app.manifest, 'vendor.test/team/app:1.0'));
    const wildcard = '*.0.0.1';
    const signedBy = (signedIdentity?: object) => [{ type: 'signedBy', keyType: 'GPGKeys', keyPath: keyFile(signer), ...(signedIdentity === undefined ? {} : { signedIdentity }) }];

    // The wildcard scope applies, not "" (which would accept anything).
    const rejecting = newEnv();
    policy(rejecting, { default: [{ type: 'insecureAcceptAnything' }], transports: { docker: { '': [{ type: 'insecureAcceptAnything' }], [wildcard]: [{ type: 'reject' }] } } });
    const refused = await rejecting.runAsync(['fetch', '--insecure-options=http', `docker://${host}/team/unsigned:1.0`]);
    expect(refused.status).toBe(254);
    expect(refused.stderr).toContain(`scope transports.docker["${wildcard}"]: requirement 1 (reject) rejects every image there`);
    nothingStored(rejecting);

    // Signed as vendor.test/team/app:1.0, pulled from HOST/team/app:1.0: refused as it is...
    const plain = newEnv();
    registriesD(plain, `default-docker:\n  lookaside: file://${base}\n`);
    policy(plain, { default: [{ type: 'reject' }], transports: { docker: { [wildcard]: signedBy() } } });
    const mismatch = await plain.runAsync(['fetch', '--insecure-options=http', `docker://${host}/team/app:1.0`]);
    expect(mismatch.status).toBe(254);
    expect(mismatch.stderr).toContain(`scope transports.docker["${wildcard}"]`);
    expect(mismatch.stderr).toContain(`signed for vendor.test/team/app:1.0, not ${host}/team/app:1.0 (matchRepoDigestOrExact)`);
    nothingStored(plain);

    // ...and accepted once the policy maps the mirror's names to the vendor's.
    const remapped = newEnv();
    registriesD(remapped, `default-docker:\n  lookaside: file://${base}\n`);
    policy(remapped, { default: [{ type: 'reject' }], transports: { docker: { [wildcard]: signedBy({ type: 'remapIdentity', prefix: `${host}/team`, signedPrefix: 'vendor.test/team' }) } } });
    const ok = await remapped.runAsync(['fetch', '--json', '--insecure-options=http', `docker://${host}/team/app:1.0`]);
    expect(ok.status, ok.stderr).toBe(0);
    expect(lastJson<{ signer: string }>(ok.stdout).signer).toBe(signer.fp);
    // The remapped tag still has to be the signed one.
    const otherTag = newEnv();
    registriesD(otherTag, `default-docker:\n  lookaside: file://${base}\n`);
    policy(otherTag, { default: [{ type: 'reject' }], transports: { docker: { [wildcard]: signedBy({ type: 'remapIdentity', prefix: `${host}/team`, signedPrefix: 'vendor.test/other' }) } } });
    const wrong = await otherTag.runAsync(['fetch', '--insecure-options=http', `docker://${host}/team/app:1.0`]);
    expect(wrong.status).toBe(254);
    expect(wrong.stderr).toContain(`the image read as vendor.test/other/app:1.0 (remapIdentity ${host}/team -> vendor.test/other)`);
  });

  it('policy.json signedBy with keyPath: the key file, not the keystore, decides', async () => {
    const env = newEnv();
    registriesD(env, `default-docker:\n  lookaside: file://${lookaside}\n`);
    policy(env, { default: [{ type: 'signedBy', keyType: 'GPGKeys', keyPath: keyFile(signer) }] });
    const ok = await env.runAsync(['fetch', '--json', '--insecure-options=http', `docker://${host}/team/app:1.0`]);
    expect(ok.status, ok.stderr).toBe(0);
    expect(lastJson<{ signer: string }>(ok.stdout).signer).toBe(signer.fp);

    const env2 = newEnv();
    trust(env2, `docker://${host}/team`); // trusted in the keystore, but the policy names another key
    registriesD(env2, `default-docker:\n  lookaside: file://${lookaside}\n`);
    policy(env2, { default: [{ type: 'signedBy', keyType: 'GPGKeys', keyPath: keyFile(stranger) }] });
    const refused = await env2.runAsync(['fetch', '--insecure-options=http', `docker://${host}/team/app:1.0`]);
    expect(refused.status).toBe(254);
    expect(refused.stderr).toContain(`signed by key ${signer.fp}`);
    expect(refused.stderr).toMatch(/add the key .* to the keys of this signedBy/);
    nothingStored(env2);
  });

  it('finds signatures through the registry extension API', async () => {
    const env = newEnv();
    trust(env, `docker://${host}/team/ext`);
    const ext = images.get('team/ext')!;
    extension.set('team/ext', new Map([[ext.digest, [sign(ext.manifest, `${host}/team/ext:1.0`)]]]));
    const result = await env.runAsync(['fetch', '--json', '--insecure-options=http', `docker://${host}/team/ext:1.0`]);
    expect(result.status, result.stderr).toBe(0);
    expect(lastJson<{ signer: string }>(result.stdout).signer).toBe(signer.fp);
  });

  it('reads a lookaside over https (test CA), walking signature-1, -2 until a 404', async () => {
    const app = images.get('team/app')!;
    const dir = `/sigs/team/app@${app.digest.replace(':', '=')}`;
    const server: TestServer = await startServer({
      tls: { cert: ca.cert, key: ca.key },
      routes: {
        // The first signature is by a stranger, the second by the trusted key.
        [`${dir}/signature-1`]: respond.bytes(sign(app.manifest, `${host}/team/app:1.0`, stranger)),
        [`${dir}/signature-2`]: respond.bytes(sign(app.manifest, `${host}/team/app:1.0`)),
      },
    });
    try {
      const env = newEnv({ NODE_EXTRA_CA_CERTS: ca.caCertPath });
      trust(env, `docker://${host}/team/app`);
      registriesD(env, `docker:\n  ${host}/team/app:\n    sigstore: ${server.origin}/sigs/\n  ${host}/team:\n    lookaside: file:///nonexistent\n`);
      const result = await env.runAsync(['fetch', '--json', '--insecure-options=http', `docker://${host}/team/app:1.0`]);
      expect(result.status, result.stderr).toBe(0);
      expect(lastJson<{ signer: string }>(result.stdout).signer).toBe(signer.fp);
      expect(server.requests.map((r) => r.url)).toEqual([`${dir}/signature-1`, `${dir}/signature-2`, `${dir}/signature-3`]);
    } finally {
      await server.close();
    }
  });

  it('oci: layout: refused without a signature, accepted with --signature by a key trusted for the signed repository', async () => {
    const app = images.get('team/app')!;
    const layout = path.join(work, 'layout');
    execFileSync('skopeo', ['copy', '--quiet', '--src-tls-verify=false', `docker://${registry.host}/team/app:1.0`, `oci:${layout}:1.0`], { stdio: 'pipe' });
    // skopeo copy keeps the manifest bytes: the registry's signature fits the layout too.
    const sigFile = path.join(work, 'layout.sig');
    fs.writeFileSync(sigFile, sign(app.manifest, 'example.test/team/app:1.0'));
    const env = newEnv();
    const refused = await env.runAsync(['fetch', `oci:${layout}:1.0`]);
    expect(refused.status).toBe(254);
    expect(refused.stderr).toContain('a signature is required, but the image has none');
    expect(refused.stderr).toContain(`tspod fetch --signature SIGFILE oci:${layout}:1.0`);
    const untrusted = await env.runAsync(['fetch', '--signature', sigFile, `oci:${layout}:1.0`]);
    expect(untrusted.status).toBe(254);
    expect(untrusted.stderr).toContain(`tspod trust --prefix docker://example.test/team/app KEYFILE`);
    nothingStored(env);
    trust(env, 'docker://example.test/team');
    const ok = await env.runAsync(['fetch', '--json', '--signature', sigFile, `oci:${layout}:1.0`]);
    expect(ok.status, ok.stderr).toBe(0);
    expect(lastJson<{ signer: string }>(ok.stdout).signer).toBe(signer.fp);
    // An insecureAcceptAnything entry for the layout's path accepts it unsigned.
    const env2 = newEnv();
    policy(env2, { default: [{ type: 'reject' }], transports: { oci: { [layout]: [{ type: 'insecureAcceptAnything' }] } } });
    const accepted = await env2.runAsync(['fetch', `oci:${layout}:1.0`]);
    expect(accepted.status, accepted.stderr).toBe(0);
    expect(accepted.stderr).toContain(`transports.oci["${layout}"]`);
  });
});
