import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import type { ImageManifest } from '../../src/appc/types.js';
import { NotFoundError } from '../../src/errors.js';
import { resolveRecord, type ImageRecord } from '../../src/store/catalog.js';
import { collectGarbage, removeImage } from '../../src/store/gc.js';
import { tryLock } from '../../src/store/lock.js';
import { Store } from '../../src/store/store.js';
import { listTrees, renderTree } from '../../src/store/trees.js';
import { libcSyscalls } from '../../src/sys/index.js';
import { imageIdOf, makeAciTar, manifestFor, writeTmp, type TestEntry } from '../support/aci.js';

let dir: string;
let clock: Date;
let warnings: string[];
let store: Store;

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tspod-store-'));
  clock = new Date('2026-11-01T00:00:00Z');
  warnings = [];
  store = new Store({ dir, sys: libcSyscalls, now: () => clock, onWarning: (m) => warnings.push(m) }).init();
});

afterEach(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

async function add(manifest: ImageManifest, files: Record<string, TestEntry> = {}) {
  const bytes = await makeAciTar(manifest, files);
  const id = imageIdOf(bytes);
  const result = await store.commitImage({
    id,
    tmpTarPath: writeTmp(store.layout.tmp, bytes),
    size: bytes.length,
    manifest,
    manifestBytes: Buffer.from(JSON.stringify(manifest)),
    source: { kind: 'file', location: '/test.aci', signer: null },
  });
  return { id, bytes, ...result };
}

describe('image store', () => {
  it('commits an image: blob byte-identical to the tar, record listed, tmp file gone', async () => {
    const { id, bytes, stored, record } = await add(manifestFor('example.com/app'), { 'a.txt': 'hello' });
    expect(stored).toBe(true);
    expect(fs.readFileSync(store.blobPath(id))).toEqual(bytes);
    expect(store.listImages().map((r) => r.id)).toEqual([id]);
    expect(record).toMatchObject({ name: 'example.com/app', size: bytes.length, importTime: clock.toISOString() });
    expect(fs.readdirSync(store.layout.tmp)).toEqual([]);
  });

  it('stores an image once when it is committed twice', async () => {
    const manifest = manifestFor('example.com/app');
    const first = await add(manifest);
    const second = await add(manifest);
    expect(second.id).toBe(first.id);
    expect(second.stored).toBe(false);
    expect(store.listImages()).toHaveLength(1);
    expect(fs.readdirSync(store.layout.tmp)).toEqual([]);
  });

  it('resolves unique id prefixes and names with version labels; newest import wins', async () => {
    const v1 = await add(manifestFor('example.com/app', { labels: [{ name: 'version', value: '1.0' }] }));
    clock = new Date('2026-11-02T00:00:00Z');
    const v2 = await add(manifestFor('example.com/app', { labels: [{ name: 'version', value: '2.0' }] }));
    expect(store.resolveImage(v1.id.slice(0, 20)).id).toBe(v1.id);
    expect(store.resolveImage('example.com/app:1.0').id).toBe(v1.id);
    expect(store.resolveImage('example.com/app').id).toBe(v2.id);
    expect(store.resolveImage('example.com/app', [{ name: 'version', value: '1.0' }]).id).toBe(v1.id);
  });

  it('refuses an ambiguous id prefix (sha512-ab) and names the candidates', () => {
    const record = (hex: string): ImageRecord => ({
      id: `sha512-${hex}`,
      name: 'example.com/a',
      labels: [],
      importTime: clock.toISOString(),
      lastUsed: clock.toISOString(),
      size: 1,
      source: { kind: 'file', location: '/a.aci', signer: null },
    });
    const records = [record(`ab1${'0'.repeat(125)}`), record(`ab2${'0'.repeat(125)}`)];
    expect(() => resolveRecord(records, 'sha512-ab')).toThrow(/sha512-ab: id prefix is ambiguous, it matches sha512-ab10+, sha512-ab20+/);
    expect(resolveRecord(records, 'sha512-ab2').id).toBe(records[1]!.id);
    expect(() => resolveRecord(records, 'sha512-')).toThrow(/not a valid image id/);
  });

  it('reports a missing name with the stored versions and a fetch suggestion', async () => {
    await add(manifestFor('example.com/app', { labels: [{ name: 'version', value: '1.0' }] }));
    try {
      store.resolveImage('example.com/app:9.9');
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(NotFoundError);
      expect((err as NotFoundError).message).toMatch(/example\.com\/app with version=9\.9: not in the store; stored versions: sha512-[0-9a-f]{32} \(version=1\.0\)/);
      expect((err as NotFoundError).suggestions).toEqual(['tspod fetch example.com/app:9.9']);
    }
  });

  it('skips a damaged catalog record with a warning instead of failing the listing', async () => {
    const { id } = await add(manifestFor('example.com/good'));
    fs.writeFileSync(path.join(store.layout.images, `${'0'.repeat(128)}.json`), '{"id": 12');
    expect(store.listImages().map((r) => r.id)).toEqual([id]);
    expect(warnings.join('\n')).toMatch(/damaged image record/);
  });

  it('removes an image: record, manifest and blob', async () => {
    const { id } = await add(manifestFor('example.com/app'));
    const removal = await removeImage(store, id);
    expect(removal.image.id).toBe(id);
    expect(store.listImages()).toEqual([]);
    expect(fs.existsSync(store.blobPath(id))).toBe(false);
    await expect(removeImage(store, id)).rejects.toThrow(NotFoundError);
  });
});

describe('rendered trees', () => {
  it('renders a tree once and serves it from the cache the second time', async () => {
    const { id } = await add(manifestFor('example.com/app'), { 'etc/': { type: 'directory' }, 'etc/hello': 'hi' });
    const first = await renderTree(store, id);
    expect(first.cached).toBe(false);
    expect(fs.readFileSync(path.join(first.rootfs, 'etc/hello'), 'utf8')).toBe('hi');
    const second = await renderTree(store, id);
    expect(second.cached).toBe(true);
    expect(second.info.treeId).toBe(first.info.treeId);
    expect(listTrees(store)).toHaveLength(1);
  });

  it('includes dependencies in the tree and its id', async () => {
    const base = await add(manifestFor('example.com/base'), { 'base.txt': 'base' });
    const app = await add(manifestFor('example.com/app', { dependencies: [{ imageName: 'example.com/base' }] }), { 'app.txt': 'app' });
    const tree = await renderTree(store, app.id);
    expect(tree.info.layers).toEqual([base.id, app.id]);
    expect(fs.readFileSync(path.join(tree.rootfs, 'base.txt'), 'utf8')).toBe('base');
    expect(fs.readFileSync(path.join(tree.rootfs, 'app.txt'), 'utf8')).toBe('app');
  });

  it('image rm defers a tree that a pod holds, and gc removes it once released', async () => {
    const { id } = await add(manifestFor('example.com/app'), { 'x': 'x' });
    const tree = await renderTree(store, id, { hold: true });
    const removal = await removeImage(store, id);
    expect(removal.deferred).toEqual([tree.info.treeId]);
    // The pod's view is intact although the image is gone.
    expect(fs.readFileSync(path.join(tree.rootfs, 'x'), 'utf8')).toBe('x');
    const gcWhileHeld = await collectGarbage(store, { gracePeriodMs: 0 });
    expect(gcWhileHeld.deferredTrees).toEqual([tree.info.treeId]);
    tree.lock?.release();
    const gc = await collectGarbage(store, { gracePeriodMs: 0 });
    expect(gc.removedTrees).toEqual([tree.info.treeId]);
    expect(fs.existsSync(tree.dir)).toBe(false);
  });
});

describe('concurrent render and removal', () => {
  it('a render racing an image rm either completes whole or fails cleanly; nothing half-made stays', async () => {
    const files: Record<string, TestEntry> = {};
    for (let i = 0; i < 300; i++) files[`f${i}`] = 'x'.repeat(4096);
    const { id } = await add(manifestFor('example.com/app'), files);
    const [render, removal] = await Promise.allSettled([renderTree(store, id), removeImage(store, id)]);
    expect(removal.status).toBe('fulfilled');
    if (render.status === 'fulfilled') {
      // The render won the image lock first: its tree is complete (or was removed whole by rm).
      const rootfs = render.value.rootfs;
      if (fs.existsSync(rootfs)) expect(fs.readdirSync(rootfs)).toHaveLength(300);
    } else {
      expect(String(render.reason)).toMatch(/not in the store|missing from the store/);
    }
    await collectGarbage(store, { gracePeriodMs: 0 });
    expect(fs.readdirSync(store.layout.trees)).toEqual([]);
    expect(store.listImages()).toEqual([]);
  });
});

describe('image gc', () => {
  it('removes images unused past the grace period and keeps recent ones', async () => {
    const old = await add(manifestFor('example.com/old'));
    clock = new Date('2026-11-03T00:00:00Z');
    const recent = await add(manifestFor('example.com/recent'));
    const report = await collectGarbage(store, { gracePeriodMs: 24 * 3600_000 });
    expect(report.removedImages.map((r) => r.id)).toEqual([old.id]);
    expect(store.listImages().map((r) => r.id)).toEqual([recent.id]);
  });

  it('removes leftovers of killed imports: tmp files, blobs without a record, half-rendered trees', async () => {
    const { id } = await add(manifestFor('example.com/app'));
    fs.writeFileSync(path.join(store.layout.tmp, 'aci-dead.tar'), 'partial');
    const orphanHex = 'ab'.repeat(64);
    fs.mkdirSync(path.join(store.layout.blobs, 'ab'), { recursive: true });
    fs.writeFileSync(path.join(store.layout.blobs, 'ab', orphanHex), 'orphan');
    fs.mkdirSync(path.join(store.layout.trees, '.deps-x.tmp-123', 'rootfs'), { recursive: true });
    const report = await collectGarbage(store, { gracePeriodMs: Infinity });
    expect(report.removedImages).toEqual([]);
    expect(report.removedLeftovers).toHaveLength(3);
    expect(fs.readdirSync(store.layout.tmp)).toEqual([]);
    expect(fs.existsSync(store.blobPath(id))).toBe(true);
  });

  it('waits for the store lock: gc does not run while an import holds it shared', async () => {
    const held = await store.lockStore('shared');
    let done = false;
    const gc = collectGarbage(store, { gracePeriodMs: Infinity }).then(() => {
      done = true;
    });
    await new Promise((r) => setTimeout(r, 100));
    expect(done).toBe(false);
    held.release();
    await gc;
    expect(done).toBe(true);
    expect(tryLock(libcSyscalls, path.join(store.layout.locks, 'store.lock'), 'exclusive')).toBeDefined();
  });
});
