// applyLayers as a pipeline (src/oci/layers.ts): a layer's open() may wait (its blob is still
// downloading) while the layers below it are applied; the layer above the current one is opened
// ahead; a layer read before its digest was checked reports the digest failure, not the corrupt
// data it caused; a hardlink in an upper layer may name a file of a lower one.
import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import zlib from 'node:zlib';

import { afterAll, describe, expect, it } from 'vitest';

import { ImageFormatError } from '../../src/errors.js';
import { applyLayers, type LayerSource } from '../../src/oci/layers.js';
import { libcSyscalls } from '../../src/sys/index.js';
import { scratchDirs } from '../support/scratch.js';
import { tarOf } from '../support/tar.js';

const { freshDir, cleanup } = scratchDirs('oci-layers-pipeline');
afterAll(cleanup);

const GZIP = 'application/vnd.oci.image.layer.v1.tar+gzip';

describe('applyLayers pipeline', () => {
  it('opens the next layer while the current one is extracted, and waits for a layer still arriving', async () => {
    const target = freshDir();
    const events: string[] = [];
    let release: () => void = () => {};
    const arrived = new Promise<void>((resolve) => (release = resolve));
    const lower = zlib.gzipSync(await tarOf([{ name: 'bin/tool', content: 'lower\n' }]));
    const upper = zlib.gzipSync(await tarOf([{ name: 'usr/tool', type: 'link', linkname: 'bin/tool' }, { name: 'usr/new', content: 'upper\n' }]));
    const layers: LayerSource[] = [
      { mediaType: GZIP, name: 'lower', open: () => (events.push('open lower'), Readable.from([lower])) },
      {
        mediaType: GZIP,
        name: 'upper',
        open: async () => {
          events.push('open upper');
          await arrived;
          events.push('upper arrived');
          return Readable.from([upper]);
        },
      },
    ];
    setTimeout(() => release(), 50);
    const reports = await applyLayers(target, layers, { sys: libcSyscalls, privileged: false, onLayer: (r) => events.push(`applied ${r.name}`) });
    expect(reports.map((r) => r.entries)).toEqual([1, 2]);
    // The upper layer was opened before the lower one was applied, and applied after it arrived.
    expect(events.indexOf('open upper')).toBeLessThan(events.indexOf('applied lower'));
    expect(events.indexOf('upper arrived')).toBeLessThan(events.indexOf('applied upper'));
    expect(fs.statSync(path.join(target, 'usr/tool')).ino).toBe(fs.statSync(path.join(target, 'bin/tool')).ino);
    expect(fs.readFileSync(path.join(target, 'usr/new'), 'utf8')).toBe('upper\n');
  });

  it('reports the digest failure of a layer read before its check, not the corrupt data', async () => {
    const target = freshDir();
    const good = zlib.gzipSync(await tarOf([{ name: 'f', content: 'x'.repeat(10_000) }]));
    const corrupt = Buffer.from(good);
    corrupt[corrupt.length - 12]! ^= 0xff;
    const digestError = new Error('fetch blob sha256:abc: the bytes hash to sha256:def; nothing was kept');
    const layers: LayerSource[] = [{ mediaType: GZIP, name: 'sha256:abc', open: () => Readable.from([corrupt]), verified: () => Promise.reject(digestError) }];
    await expect(applyLayers(target, layers, { sys: libcSyscalls, privileged: false })).rejects.toBe(digestError);
  });

  it('reports the extraction error when the layer was verified', async () => {
    const target = freshDir();
    const hostile = zlib.gzipSync(await tarOf([{ name: '../escape', content: 'x' }]));
    const layers: LayerSource[] = [{ mediaType: GZIP, name: 'sha256:abc', open: () => Readable.from([hostile]), verified: () => Promise.resolve() }];
    const err = await applyLayers(target, layers, { sys: libcSyscalls, privileged: false }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ImageFormatError);
    expect((err as Error).message).toMatch(/apply layer 1\/1 \(sha256:abc\).*escapes the target/);
  });

  it('a hardlink in the first layer to a file not in it is refused (nothing below to link to)', async () => {
    const target = freshDir();
    fs.writeFileSync(path.join(target, 'preexisting'), 'not from a layer\n');
    const layer = await tarOf([{ name: 'link', type: 'link', linkname: 'preexisting' }]);
    await expect(applyLayers(target, [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', name: 'l', open: () => Readable.from([layer]) }], { sys: libcSyscalls, privileged: false })).rejects.toThrow(
      /is not an earlier entry of the archive/,
    );
  });
});
