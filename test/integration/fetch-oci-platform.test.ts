// --os/--arch/--variant end to end, through the real CLI: an index of linux/amd64 and
// linux/arm64/v8 pushed to Debian's docker-registry on loopback; `tspod fetch --arch arm64` and
// the default each store the manifest of their platform (its digest shown by `image list --json`),
// a platform the index lacks is refused with the list of those it has, and `run`/`prepare` (the
// fast path and oclif) take the flags, refusing to run an image of another architecture before
// any pod exists.
import fs from 'node:fs';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { ociArchitecture } from '../../src/oci/platform.js';
import { makeAciTar, manifestFor } from '../support/aci.js';
import { TspodEnv, TspodEnvs } from '../support/cli.js';
import { hasRegistryTools, pushImage, pushMultiArch, REGISTRY_SKIP_REASON, startRegistry, type BuiltImage, type TestRegistry } from '../support/registry.js';

interface Listed {
  id: string;
  labels: { name: string; value: string }[];
  ociDigest: string | null;
}

const arch = (e: Listed): string | undefined => e.labels.find((l) => l.name === 'arch')?.value;

/** Every pod directory of the env's store, whatever its state. */
function pods(env: TspodEnv): string[] {
  const root = path.join(env.dir, 'pods');
  if (!fs.existsSync(root)) return [];
  return fs.readdirSync(root).flatMap((state) => fs.readdirSync(path.join(root, state)).map((uuid) => `${state}/${uuid}`));
}

describe.skipIf(!hasRegistryTools)(`tspod fetch/run --os/--arch/--variant (${REGISTRY_SKIP_REASON})`, () => {
  let registry: TestRegistry;
  let images: BuiltImage[];
  let ref: string;
  const envs = new TspodEnvs();
  const newEnv = (): TspodEnv => envs.make();

  beforeAll(async () => {
    registry = await startRegistry();
    ({ images } = await pushMultiArch(registry, 'tspod/multi:1'));
    ref = `docker://${registry.host}/tspod/multi:1`;
  }, 60_000);

  afterAll(async () => {
    envs.cleanup();
    await registry?.stop();
  });

  it('fetches the arm64 manifest with --arch arm64 and this machine\'s by default, each with its digest listed', () => {
    const env = newEnv();
    const [amd64, arm64] = images as [BuiltImage, BuiltImage];
    const armId = env.ok(['fetch', '--insecure-options=image,http', '--arch', 'arm64', ref]).trim();
    let listed = env.json<Listed[]>(['image', 'list']);
    expect(listed).toHaveLength(1);
    expect(listed[0]).toMatchObject({ id: armId, ociDigest: arm64.manifestDigest });
    expect(arch(listed[0]!)).toBe('aarch64');

    const defaultId = env.ok(['fetch', '--insecure-options=image,http', ref]).trim();
    expect(defaultId).not.toBe(armId);
    listed = env.json<Listed[]>(['image', 'list']);
    const here = listed.find((e) => e.id === defaultId)!;
    const mine = ociArchitecture() === 'arm64' ? arm64 : amd64;
    expect(here.ociDigest).toBe(mine.manifestDigest);
    // The appc spelling of the same platform selects the same manifest.
    const again = env.run(['fetch', '--json', '--insecure-options=image,http', '--arch', 'aarch64', '--variant', 'v8', ref]);
    expect(again.status, again.stderr).toBe(0);
    expect((JSON.parse(again.stdout.trim().split('\n').at(-1)!) as { record: { id: string } }).record.id).toBe(armId);
  });

  it('refuses a platform the index lacks, listing the ones it has; nothing stored', () => {
    const env = newEnv();
    const result = env.run(['fetch', '--insecure-options=image,http', '--arch', 's390x', ref]);
    expect(result.status).toBe(254);
    expect(result.stderr).toContain('select platform linux/s390x from');
    expect(result.stderr).toContain('no manifest for it; available: linux/amd64, linux/arm64/v8');
    expect(result.stderr).toMatch(/try: pass --os, --arch and --variant for one of them, e\.g\. --arch=amd64/);
    expect(env.json<unknown[]>(['image', 'list'])).toEqual([]);
  });

  it.skipIf(ociArchitecture() !== 'amd64')('refuses to run a foreign-arch image, on the fast path and in prepare alike, before any pod exists', () => {
    const env = newEnv();
    const fast = env.run(['run', '--insecure-options=image,http', '--arch', 'arm64', ref]);
    expect(fast.status).toBe(254);
    expect(fast.stderr).toContain(`run image ${ref}: it is built for linux/aarch64, and this machine runs linux/amd64, i386`);
    const oclif = env.run(['prepare', '--insecure-options=image,http', '--arch', 'arm64', ref]);
    expect(oclif.status).toBe(254);
    // The first one fetched the image (progress, warning); the second took it from the store.
    const refusal = (stderr: string): string => stderr.slice(stderr.indexOf('tspod: run image'));
    expect(refusal(oclif.stderr)).toBe(refusal(fast.stderr));
    expect(oclif.stderr).not.toMatch(/downloading/);
    expect(pods(env)).toEqual([]);
    // The image was fetched (and only stored); `run` without --arch does not take it for this machine.
    expect(env.json<Listed[]>(['image', 'list']).map(arch)).toEqual(['aarch64']);
    const prepared = env.run(['prepare', '--insecure-options=image,http', ref]);
    expect(prepared.status, prepared.stderr).toBe(0);
    expect(env.json<Listed[]>(['image', 'list']).map(arch).sort()).toEqual(['aarch64', 'amd64']);
    expect(pods(env)).toHaveLength(1);
  });

  it('takes a single-manifest image whatever its platform, warning when --arch asked for another', async () => {
    const env = newEnv();
    await pushImage(registry, 'tspod/single:1');
    const single = `docker://${registry.host}/tspod/single:1`;
    const result = env.run(['fetch', '--insecure-options=image,http', '--arch', 'arm64', single]);
    expect(result.status, result.stderr).toBe(0);
    expect(result.stderr).toContain(`image ${single}: the image is for linux/amd64, not linux/arm64 (the reference names one image, not an index)`);
    const quiet = env.run(['fetch', '--insecure-options=image,http', '--arch', 'amd64', single]);
    expect(quiet.stderr).not.toMatch(/the image is for/);
  });

  it('gives run and prepare the same flag errors', () => {
    const env = newEnv();
    const fast = env.run(['run', '--arch', 'Not/AnArch', 'a.aci']);
    const oclif = env.run(['prepare', '--arch', 'Not/AnArch', 'a.aci']);
    expect(fast.status).toBe(254);
    expect(fast.stderr).toMatch(/--arch "Not\/AnArch": not a platform word/);
    expect(oclif.stderr).toBe(fast.stderr);
  });
});

describe('--arch for an ACI file is --label arch=... in appc spelling', () => {
  const env = new TspodEnv();
  afterAll(() => env.cleanup());

  it('refuses an amd64 ACI with --arch arm64 and takes it with --arch amd64', async () => {
    const aci = path.join(env.base, 'app.aci');
    fs.mkdirSync(env.base, { recursive: true });
    fs.writeFileSync(aci, await makeAciTar(manifestFor('example.com/plat', { labels: [{ name: 'version', value: '1' }, { name: 'os', value: 'linux' }, { name: 'arch', value: 'amd64' }] })));
    const refused = env.run(['fetch', '--insecure-options=image', '--arch', 'arm64', aci]);
    expect(refused.status).toBe(254);
    expect(refused.stderr).toMatch(/does not carry the labels os=linux,arch=aarch64/);
    const contradicting = env.run(['fetch', aci, '--insecure-options=image', '--arch', 'arm64', '--label', 'arch=amd64']);
    expect(contradicting.status).toBe(254);
    expect(contradicting.stderr).toMatch(/--arch means arch=aarch64, but --label gives arch=amd64/);
    expect(env.json<unknown[]>(['image', 'list'])).toEqual([]);
    const ok = env.run(['fetch', '--insecure-options=image', '--arch', 'amd64', aci]);
    expect(ok.status, ok.stderr).toBe(0);
  });
});
