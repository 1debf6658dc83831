// fetchDependencies without a network: dependencies already in the store are walked to any depth,
// a loop is named, and a missing dependency that cannot be fetched is an error for run/prepare
// (strict) and a warning for `tspod fetch` (the image stays stored; rendering will name it).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import type { Dependency, ImageManifest } from '../../src/appc/types.js';
import { ImageFormatError, NotFoundError } from '../../src/errors.js';
import type { FetchContext } from '../../src/fetch/context.js';
import { DependencyLoopError, fetchDependencies } from '../../src/fetch/dependencies.js';
import { SECURE } from '../../src/fetch/insecure-options.js';
import type { ImageRecord } from '../../src/store/catalog.js';
import { Store } from '../../src/store/store.js';
import { libcSyscalls } from '../../src/sys/index.js';
import { imageIdOf, makeAciTar, manifestFor, writeTmp } from '../support/aci.js';

let dir: string;
let store: Store;
let warnings: string[];
let networkAsked: number;

function context(): FetchContext {
  return {
    store,
    keystore: async () => {
      throw new Error('no keystore in this test');
    },
    insecure: SECURE,
    onWarning: (m) => warnings.push(m),
    network: async () => {
      networkAsked += 1;
      throw new NotFoundError('no network in this test');
    },
  };
}

async function add(name: string, dependencies: Dependency[] = []): Promise<ImageRecord> {
  const manifest: ImageManifest = manifestFor(name, dependencies.length > 0 ? { dependencies } : {});
  const tar = await makeAciTar(manifest, { [`${name.replace(/\//g, '_')}.txt`]: name });
  const { record } = await store.commitImage({
    id: imageIdOf(tar),
    tmpTarPath: writeTmp(store.layout.tmp, tar),
    size: tar.length,
    manifest,
    manifestBytes: Buffer.from(JSON.stringify(manifest)),
    source: { kind: 'file', location: `/images/${name}.aci`, signer: null },
  });
  return record;
}

const dep = (imageName: string): Dependency => ({ imageName, labels: [{ name: 'os', value: 'linux' }] });

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tspod-deps-'));
  store = new Store({ dir, sys: libcSyscalls }).init();
  warnings = [];
  networkAsked = 0;
});

afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('fetchDependencies', () => {
  it('needs nothing when every dependency, at any depth, is in the store', async () => {
    await add('example.com/c');
    await add('example.com/b', [dep('example.com/c')]);
    const a = await add('example.com/a', [dep('example.com/b'), dep('example.com/c')]);
    expect(await fetchDependencies(a, context(), { strict: true, fetchMissing: true })).toEqual({ fetched: [], missing: [] });
    expect(networkAsked).toBe(0);
  });

  it('names the cycle of a loop through stored images: a -> b -> c -> a', async () => {
    // c depends on a by name; a is added last, so every link resolves in the store.
    await add('example.com/c', [dep('example.com/a')]);
    await add('example.com/b', [dep('example.com/c')]);
    const a = await add('example.com/a', [dep('example.com/b')]);
    const err = await fetchDependencies(a, context(), { strict: false, fetchMissing: false }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DependencyLoopError);
    expect(err).toBeInstanceOf(ImageFormatError);
    expect((err as Error).message).toBe('image example.com/a: dependency loop: example.com/a -> example.com/b -> example.com/c -> example.com/a');
  });

  it('names an image that depends on itself', async () => {
    const self = await add('example.com/self', [dep('example.com/self')]);
    await expect(fetchDependencies(self, context(), { strict: true, fetchMissing: true })).rejects.toThrow('dependency loop: example.com/self -> example.com/self');
  });

  it('walks a diamond once per image and finds no loop in it', async () => {
    await add('example.com/d');
    await add('example.com/b', [dep('example.com/d')]);
    await add('example.com/c', [dep('example.com/d')]);
    const a = await add('example.com/a', [dep('example.com/b'), dep('example.com/c')]);
    expect(await fetchDependencies(a, context(), { strict: true, fetchMissing: true })).toEqual({ fetched: [], missing: [] });
  });

  it('strict (run, prepare): a missing dependency that cannot be fetched is an error naming it and the cause', async () => {
    const a = await add('example.com/a', [dep('example.com/missing')]);
    const err = await fetchDependencies(a, context(), { strict: true, fetchMissing: true }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NotFoundError);
    expect((err as NotFoundError).message).toBe(
      'image example.com/a: dependency example.com/missing,os=linux is not in the store and could not be fetched: no network in this test',
    );
    expect((err as NotFoundError).suggestions).toContain('tspod fetch example.com/missing,os=linux');
    expect(networkAsked).toBe(1);
  });

  it('lenient (tspod fetch): a missing dependency is a warning and listed; the walk goes on', async () => {
    await add('example.com/c');
    const a = await add('example.com/a', [dep('example.com/missing'), dep('example.com/c')]);
    const report = await fetchDependencies(a, context(), { strict: false, fetchMissing: true });
    expect(report.missing).toEqual([
      { dependent: 'example.com/a', imageName: 'example.com/missing', labels: [{ name: 'os', value: 'linux' }], imageID: null, reason: 'no network in this test' },
    ]);
    expect(warnings).toEqual(['image example.com/a: dependency example.com/missing,os=linux could not be fetched: no network in this test']);
  });

  it('--pull-policy=never: nothing is fetched, and missing dependencies are left to rendering', async () => {
    const a = await add('example.com/a', [dep('example.com/missing')]);
    expect(await fetchDependencies(a, context(), { strict: true, fetchMissing: false })).toEqual({ fetched: [], missing: [] });
    expect(networkAsked).toBe(0);
  });
});
