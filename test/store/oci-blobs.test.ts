// The store's OCI layer blobs (src/store/oci-blobs.ts): published by rename and read-only, opened
// by digest, recorded per image, and collected when no listed image names them.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { collectOciBlobs, ociBlobPath, openOciBlob, publishOciBlob, recordOciLayers } from '../../src/store/oci-blobs.js';
import { Store } from '../../src/store/store.js';
import { libcSyscalls } from '../../src/sys/index.js';
import { scratchDirs } from '../support/scratch.js';

const { freshDir, cleanup } = scratchDirs('oci-blobs');
afterAll(cleanup);

function blob(store: Store, content: string): string {
  const digest = `sha256:${crypto.createHash('sha256').update(content).digest('hex')}`;
  const tmp = path.join(store.layout.tmp, `dl-${crypto.randomBytes(4).toString('hex')}`);
  fs.writeFileSync(tmp, content);
  publishOciBlob(store, tmp, digest);
  return digest;
}

const imageId = (n: number): string => `sha512-${String(n).repeat(128).slice(0, 128)}`;

describe('OCI layer blobs in the store', () => {
  it('publishes read-only by digest and opens what is there', () => {
    const store = new Store({ dir: freshDir(), sys: libcSyscalls }).init();
    const digest = blob(store, 'layer bytes');
    const file = ociBlobPath(store.layout, digest)!;
    expect(fs.statSync(file).mode & 0o777).toBe(0o444);
    const fd = openOciBlob(store.layout, digest)!;
    expect(fs.readFileSync(fd, 'utf8')).toBe('layer bytes');
    fs.closeSync(fd);
    expect(openOciBlob(store.layout, `sha256:${'0'.repeat(64)}`)).toBeUndefined();
    expect(ociBlobPath(store.layout, 'sha512:abc')).toBeUndefined();
    expect(fs.readdirSync(store.layout.tmp)).toEqual([]);
  });

  it('keeps blobs a listed image names; removes the rest and the records of unlisted images', () => {
    const store = new Store({ dir: freshDir(), sys: libcSyscalls }).init();
    const shared = blob(store, 'shared');
    const onlyA = blob(store, 'only a');
    const onlyB = blob(store, 'only b');
    const stray = blob(store, 'nobody');
    recordOciLayers(store, imageId(1), [shared, onlyA]);
    recordOciLayers(store, imageId(2), [shared, onlyB, shared]);
    const listed = new Set([imageId(1), imageId(2)]);
    expect(collectOciBlobs(store, listed).map((f) => path.basename(f))).toEqual([stray.slice(7)]);

    // image rm of 1: only its record is dropped (2's record stays even if 2 were unlisted).
    collectOciBlobs(store, new Set(), imageId(1));
    expect(fs.readdirSync(store.layout.ociBlobs).sort()).toEqual([shared.slice(7), onlyB.slice(7)].sort());
    // gc: 2 is not listed any more.
    collectOciBlobs(store, new Set());
    expect(fs.readdirSync(store.layout.ociBlobs)).toEqual([]);
    expect(fs.readdirSync(store.layout.ociImages)).toEqual([]);
  });
});
