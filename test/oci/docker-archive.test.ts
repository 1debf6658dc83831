// readDockerArchive on archives made here in the `docker save` shape: choosing an image by RepoTag
// or @index, the derived Docker schema 2 manifest, and refusals (paths outside the archive, a
// layer that does not match its diff_id, an archive of several images named by nothing).
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { ImageFormatError, NotFoundError, UsageError } from '../../src/errors.js';
import { readDockerArchive } from '../../src/oci/docker-archive.js';
import { libcSyscalls } from '../../src/sys/index.js';
import { scratchDirs } from '../support/scratch.js';
import { tarOf, type TarEntry } from '../support/tar.js';

const { freshDir, cleanup } = scratchDirs('docker-archive');
afterAll(cleanup);

const sha = (b: Buffer): string => `sha256:${crypto.createHash('sha256').update(b).digest('hex')}`;

/** An archive of images, each one layer with one file; `edit` may change manifest.json's entries. */
async function archiveOf(images: { tags: string[]; file: string }[], edit: (entries: Record<string, unknown>[]) => void = () => {}): Promise<string> {
  const entries: TarEntry[] = [];
  const manifest: Record<string, unknown>[] = [];
  for (const [i, image] of images.entries()) {
    const layer = await tarOf([{ name: image.file, content: `${image.file}\n` }]);
    const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: { Cmd: ['/bin/sh'] }, rootfs: { type: 'layers', diff_ids: [sha(layer)] } }));
    entries.push({ name: `layer${i}/layer.tar`, content: layer }, { name: `config${i}.json`, content: config });
    manifest.push({ Config: `config${i}.json`, RepoTags: image.tags, Layers: [`layer${i}/layer.tar`] });
  }
  edit(manifest);
  entries.push({ name: 'manifest.json', content: JSON.stringify(manifest) });
  const file = path.join(freshDir(), 'saved.tar');
  fs.writeFileSync(file, await tarOf(entries));
  return file;
}

const read = (file: string, reference?: string) => readDockerArchive(file, freshDir(), { ...(reference === undefined ? {} : { reference }), sys: libcSyscalls });
const TWO = [
  { tags: ['example.com/a:1'], file: 'a' },
  { tags: ['busybox:latest', 'example.com/b:2'], file: 'b' },
];

describe('readDockerArchive', () => {
  it('takes the only image, with a Docker schema 2 manifest of its config and layer digests', async () => {
    const image = await read(await archiveOf([TWO[0]!]));
    expect(image.repoTag).toBe('example.com/a:1');
    expect(image.tag).toBe('1');
    expect(image.manifest.mediaType).toBe('application/vnd.docker.distribution.manifest.v2+json');
    expect(image.manifest.layers).toHaveLength(1);
    expect(image.manifest.layers[0]!.digest).toBe((image.config as { rootfs: { diff_ids: string[] } }).rootfs.diff_ids[0]);
    expect(image.manifestDigest).toBe(sha(image.manifestBytes));
    expect(image.manifest.config.digest).toBe(sha(image.configBytes));
  });

  it('chooses by RepoTag (docker.io/library/ spelled out or not) or by @index', async () => {
    const file = await archiveOf(TWO);
    expect((await read(file, 'example.com/b:2')).repoTag).toBe('example.com/b:2');
    expect((await read(file, 'docker.io/library/busybox:latest')).repoTag).toBe('busybox:latest');
    const second = await read(file, '@1');
    expect(second.manifest.layers[0]!.digest).toBe((await read(file, 'example.com/b:2')).manifest.layers[0]!.digest);
    await expect(read(file, '@2')).rejects.toThrow(NotFoundError);
    await expect(read(file, 'example.com/c:3')).rejects.toThrow(/no image tagged example.com\/c:3 \(tags: example.com\/a:1, busybox:latest, example.com\/b:2\)/);
  });

  it('refuses to guess among several images', async () => {
    await expect(read(await archiveOf(TWO))).rejects.toThrow(UsageError);
  });

  it.each([
    ['../outside/layer.tar', /is not a path inside the archive/],
    ['/etc/passwd', /is not a path inside the archive/],
    ['missing/layer.tar', /is not in the archive/],
  ])('refuses a layer path %s', async (layerPath, message) => {
    const file = await archiveOf([TWO[0]!], (entries) => (entries[0]!.Layers = [layerPath]));
    await expect(read(file)).rejects.toThrow(ImageFormatError);
    await expect(read(file)).rejects.toThrow(message);
  });

  it('refuses a layer whose bytes are not its diff_id, and a config that lists a different number of layers', async () => {
    const swapped = await archiveOf(TWO, (entries) => (entries[0]!.Layers = ['layer1/layer.tar']));
    await expect(read(swapped, '@0')).rejects.toThrow(/the config's rootfs.diff_ids says/);
    const extra = await archiveOf([TWO[0]!], (entries) => (entries[0]!.Layers = ['layer0/layer.tar', 'layer0/layer.tar']));
    await expect(read(extra)).rejects.toThrow(/lists 1 rootfs.diff_ids for 2 layers/);
  });

  it('refuses an archive without manifest.json', async () => {
    const file = path.join(freshDir(), 'plain.tar');
    fs.writeFileSync(file, await tarOf([{ name: 'x', content: 'x' }]));
    await expect(read(file)).rejects.toThrow(/no manifest.json \(not a docker save archive\)/);
  });
});
