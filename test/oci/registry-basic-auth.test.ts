// Basic auth against a real registry: docker-registry with htpasswd (bcrypt, made by `htpasswd
// -nbB`) over https with a test CA, credentials from ~/.docker/config.json.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { closeAgents } from '../../src/http/client.js';
import { NO_RETRY } from '../../src/http/retry.js';
import { findRegistryCredentials } from '../../src/oci/docker-auth.js';
import { parseReference } from '../../src/oci/reference.js';
import { RegistryClient, RegistryError } from '../../src/oci/registry.js';
import { libcSyscalls } from '../../src/sys/index.js';
import { hasOpenssl, makeTestCa, type TestCa } from '../support/https-server.js';
import { hasRegistryTools, pushImage, REGISTRY_SKIP_REASON, startRegistry, type BuiltImage, type TestRegistry } from '../support/registry.js';
import { hasCommand } from '../support/tools.js';

const ready = hasRegistryTools && hasOpenssl && hasCommand('htpasswd', ['-nbB', 'u', 'p']);

describe.skipIf(!ready)(`basic auth with htpasswd over https (${REGISTRY_SKIP_REASON}, openssl and htpasswd from apache2-utils)`, () => {
  let ca: TestCa;
  let registry: TestRegistry;
  let image: BuiltImage;
  let base: string;

  beforeAll(async () => {
    ca = makeTestCa();
    const htpasswd = execFileSync('htpasswd', ['-nbB', 'bob', 'pa:ss']).toString();
    registry = await startRegistry({ tls: { cert: ca.cert, key: ca.key }, htpasswd });
    image = await pushImage(registry, 'private/app:2', { secret: 'x\n' }, { creds: 'bob:pa:ss' });
    base = fs.mkdtempSync(path.join(os.tmpdir(), 'tspod-basic-'));
  }, 60_000);

  afterAll(async () => {
    await closeAgents();
    await registry?.stop();
    ca?.cleanup();
    fs.rmSync(base, { recursive: true, force: true });
  });

  function homeWith(user: string, password: string): string {
    const home = fs.mkdtempSync(path.join(base, 'home-'));
    fs.mkdirSync(path.join(home, '.docker'));
    fs.writeFileSync(path.join(home, '.docker', 'config.json'), JSON.stringify({ auths: { [registry.host]: { auth: Buffer.from(`${user}:${password}`).toString('base64') } } }));
    return home;
  }

  function clientFor(home: string): RegistryClient {
    const ref = parseReference(`docker://${registry.host}/private/app:2`);
    const credentials = findRegistryCredentials(ref, { env: {}, home });
    return new RegistryClient(ref, { tmpDir: base, sys: libcSyscalls, ca: ca.caCert, credentials, retry: NO_RETRY });
  }

  it('pulls manifest and layer with credentials from ~/.docker/config.json', async () => {
    const c = clientFor(homeWith('bob', 'pa:ss'));
    const m = await c.getManifest();
    expect(m.json.layers?.[0]?.digest).toBe(image.layerDigest);
    const blob = await c.fetchBlob(m.json.layers![0]!);
    expect(blob.size).toBe(image.layerSize);
    fs.rmSync(blob.path);
  });

  it('fails with 401 and names the credentials file when the password is wrong', async () => {
    const err = await clientFor(homeWith('bob', 'wrong')).getManifest().catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/401 Unauthorized/);
    expect((err as RegistryError).suggestions.join(' ')).toMatch(/config\.json/);
  });

  it('says there are no credentials when anonymous', async () => {
    const err = await clientFor(path.join(base, 'nohome')).getManifest().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RegistryError);
    expect((err as Error).message).toMatch(/asks for basic credentials and there are none/);
  });
});
