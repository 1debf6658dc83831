// `tspod prepare` end to end, with actool-built ACIs and the real CLI: the pod directory follows
// stage1/contract.ts, list/status/cat-manifest see it, rm removes it, failures leave no pod.
import fs from 'node:fs';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { validateDocument, validatePodManifest } from '../../src/appc/validate.js';
import { buildFixtures } from '../../fixtures/build-fixtures.js';
import { TspodEnv } from '../support/cli.js';
import { hasCommand } from '../support/tools.js';

const hasActool = hasCommand('actool', ['version']);

describe.skipIf(!hasActool)('tspod prepare end to end (needs actool from appc-spec)', () => {
  let env: TspodEnv;
  let acis: Record<string, string>;

  beforeAll(async () => {
    env = new TspodEnv();
    acis = await buildFixtures(path.join(env.base, 'acis'));
  });
  afterAll(() => env?.cleanup());

  const podsIn = (state: string) => {
    const dir = path.join(env.dir, 'pods', state);
    return fs.existsSync(dir) ? fs.readdirSync(dir).filter((n) => !n.startsWith('.')) : [];
  };

  it('refuses an unsigned image file and leaves no pod behind', () => {
    const result = env.run(['prepare', acis.demo!]);
    expect(result.status).toBe(254);
    expect(result.stderr).toMatch(/no signature at/);
    for (const state of ['embryo', 'prepare', 'prepared']) expect(podsIn(state)).toEqual([]);
  });

  it('refuses an image whose dependency is not in the store, before creating the pod', () => {
    const result = env.run(['prepare', '--insecure-options=image', acis['app-with-deps']!]);
    expect(result.status).toBe(254);
    expect(result.stderr).toMatch(/dependency tspod\.dev\/test\/base.* is not in the store/);
    expect(podsIn('prepared')).toEqual([]);
  });

  it('prepares a two-app pod with per-app flags; the pod directory follows the stage1 contract', () => {
    env.ok(['fetch', '--insecure-options=image', acis.base!]);
    const uuidFile = path.join(env.base, 'uuid');
    const uuid = env
      .ok([
        'prepare',
        '--insecure-options=image',
        '--uuid-file-save',
        uuidFile,
        '--volume',
        'shared,kind=empty,mode=0750',
        acis.demo!,
        '--mount',
        'volume=shared,target=/shared',
        '--exec',
        '/bin/sh',
        '--',
        '-c',
        'echo hi > /shared/x',
        '---',
        'tspod.dev/test/app-with-deps',
        '--name',
        'reader',
        '--set-env',
        'GREETING=hello',
        '--mount',
        'volume=shared,target=/shared',
      ])
      .trim();
    expect(uuid).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    expect(fs.readFileSync(uuidFile, 'utf8').trim()).toBe(uuid);
    expect(podsIn('prepared')).toEqual([uuid]);

    const podDir = path.join(env.dir, 'pods', 'prepared', uuid);
    const manifest = validatePodManifest(JSON.parse(fs.readFileSync(path.join(podDir, 'pod'), 'utf8')));
    expect(manifest.apps.map((a) => a.name)).toEqual(['demo', 'reader']);
    expect(manifest.apps[0]!.app?.exec).toEqual(['/bin/sh', '-c', 'echo hi > /shared/x']);
    expect(manifest.apps[1]!.app?.environment).toContainEqual({ name: 'GREETING', value: 'hello' });
    expect(manifest.volumes).toEqual([expect.objectContaining({ name: 'shared', kind: 'empty', mode: '0750' })]);
    const options = JSON.parse(fs.readFileSync(path.join(podDir, 'run-options.json'), 'utf8')) as { interfaceVersion: number; stopTimeoutMs: number };
    expect(options).toMatchObject({ interfaceVersion: 1, stopTimeoutMs: 10_000 });
    for (const app of ['demo', 'reader']) {
      const treeId = fs.readFileSync(path.join(podDir, 'apps', app, 'tree'), 'utf8').trim();
      expect(fs.existsSync(path.join(env.dir, 'trees', treeId, 'rootfs', 'bin', 'busybox')), `tree of ${app}`).toBe(true);
      expect(JSON.parse(fs.readFileSync(path.join(podDir, 'apps', app, 'image-manifest'), 'utf8'))).toHaveProperty('acKind', 'ImageManifest');
    }
  });

  it('shows the prepared pod in list, status and cat-manifest', () => {
    const [uuid] = podsIn('prepared');
    const pods = env.json<{ name: string; state: string; apps: { name: string }[] }[]>(['list']);
    validateDocument('pod-list', pods, 'list --json');
    expect(pods).toEqual([expect.objectContaining({ name: uuid, state: 'prepared' })]);
    expect(pods[0]!.apps.map((a) => a.name)).toEqual(['demo', 'reader']);
    expect(env.ok(['status', uuid!.slice(0, 8)])).toMatch(/^state=prepared$/m);
    const manifest = JSON.parse(env.ok(['cat-manifest', uuid!])) as { acKind: string };
    expect(manifest.acKind).toBe('PodManifest');
  });

  it('removes the prepared pod with rm', () => {
    const [uuid] = podsIn('prepared');
    env.ok(['rm', uuid!]);
    expect(podsIn('prepared')).toEqual([]);
    expect(env.json<unknown[]>(['list'])).toEqual([]);
  });

  it('reports rkt-grammar mistakes as usage errors naming the flag', () => {
    const result = env.run(['prepare', '--exec', '/bin/true']);
    expect(result.status).toBe(254);
    expect(result.stderr).toMatch(/--exec/);
  });
});
