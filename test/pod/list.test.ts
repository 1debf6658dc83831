// listPods over every state, the api/v1 JSON (validated against schemas/pod-list.json and
// pod-status.json), the listing cache of finished pods, and `tspod list` / `tspod status`.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';

import { createAjv } from '../../src/appc/validate.js';
import { listPods, toApiPod, toApiPodStatus, type ApiPod } from '../../src/pod/list.js';
import { markExited, POD_STATES, readPod } from '../../src/pod/state.js';
import { libcSyscalls as sys } from '../../src/sys/index.js';
import { TspodEnv } from '../support/cli.js';
import { fabricatePod, holdPodLock, type LockHolder } from '../support/pods.js';

// Our own Ajv until src/appc/validate.ts knows these documents (DOCUMENT_SCHEMAS).
const ajv = createAjv();
const validateList = ajv.getSchema('https://tspod.dev/schemas/pod-list.json')!;
const validateStatus = ajv.getSchema('https://tspod.dev/schemas/pod-status.json')!;

let dir: string;
const holders: LockHolder[] = [];
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tspod-pod-list-'));
});
afterEach(async () => {
  for (const h of holders.splice(0)) await h.kill();
  fs.rmSync(dir, { recursive: true, force: true });
});

/** One pod in every state, created a minute apart, oldest first. */
async function fabricateEveryState(): Promise<Map<string, string>> {
  const uuids = new Map<string, string>();
  const base = Date.parse('2026-03-01T00:00:00Z');
  for (const [i, state] of POD_STATES.entries()) {
    const fake = fabricatePod(dir, {
      state,
      created: new Date(base + i * 60_000),
      apps: [
        { name: 'web', version: '2.1', created: true, started: true, exitCode: ['exited', 'exited garbage'].includes(state) ? 0 : undefined },
        { name: 'db', created: true, started: true, exitCode: ['exited', 'exited garbage'].includes(state) ? 137 : undefined },
      ],
    });
    if (fake.needsLock) holders.push(await holdPodLock(fake.path));
    uuids.set(state, fake.uuid);
  }
  return uuids;
}

describe('listPods', () => {
  it('lists a pod in every state with its apps, oldest first', async () => {
    const uuids = await fabricateEveryState();
    const pods = listPods(dir, sys);
    expect(pods.map((p) => p.state)).toEqual([...POD_STATES]);
    expect(pods.map((p) => p.uuid)).toEqual([...uuids.values()]);
    const exited = pods.find((p) => p.state === 'exited')!;
    expect(exited.apps.map((a) => [a.name, a.state, a.exitCode])).toEqual([
      ['web', 'exited', 0],
      ['db', 'exited', 137],
    ]);
    const running = pods.find((p) => p.state === 'running')!;
    expect(running.apps.map((a) => a.state)).toEqual(['running', 'running']);
  });

  it('gives JSON valid against schemas/pod-list.json, in the api/v1 shape', async () => {
    await fabricateEveryState();
    const json = listPods(dir, sys).map(toApiPod);
    expect(validateList(json), JSON.stringify(validateList.errors)).toBe(true);
    const exited = json.find((p) => p.state === 'exited')!;
    expect(Object.keys(exited).sort()).toEqual(['apps', 'created_at', 'name', 'networks', 'started_at', 'state', 'user_annotations', 'user_labels']);
    expect(exited.apps[1]).toMatchObject({ name: 'db', state: 'exited', exit_code: 137, image_name: 'example.com/db' });
    expect(exited.apps[1]!.finished_at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    // Absent times are left out, not null.
    const embryo = json.find((p) => p.state === 'embryo')!;
    expect(embryo).not.toHaveProperty('started_at');
    expect(embryo.apps).toEqual([]);
  });

  it('gives status JSON valid against schemas/pod-status.json', async () => {
    const uuids = await fabricateEveryState();
    for (const uuid of uuids.values()) {
      const status = toApiPodStatus(readPod(dir, sys, uuid));
      expect(validateStatus(status), JSON.stringify(validateStatus.errors)).toBe(true);
    }
    expect(validateStatus({ ...toApiPodStatus(readPod(dir, sys, uuids.get('exited')!)), extra: 1 })).toBe(false);
    expect(validateList([{ ...toApiPod(readPod(dir, sys, uuids.get('exited')!)), pid: 1 }])).toBe(false);
  });

  it('returns nothing for a data dir without pods', () => {
    expect(listPods(path.join(dir, 'none'), sys)).toEqual([]);
  });

  it('skips hidden work-in-progress entries and files that are not uuids', () => {
    fabricatePod(dir, { state: 'exited' });
    fs.mkdirSync(path.join(dir, 'pods', 'embryo', '.0000.tmp-x'));
    fs.writeFileSync(path.join(dir, 'pods', 'run', 'README'), '');
    expect(listPods(dir, sys)).toHaveLength(1);
  });
});

describe('the listing cache of finished pods', () => {
  it('serves exited pods from pods/.list-cache.json and still follows their state', () => {
    const fake = fabricatePod(dir, { state: 'exited', apps: [{ name: 'a', started: true, exitCode: 2 }] });
    const first = listPods(dir, sys);
    expect(fs.existsSync(path.join(dir, 'pods', '.list-cache.json'))).toBe(true);
    // Files changed behind the cache's back are not re-read (nothing writes a finished pod) ...
    fs.writeFileSync(path.join(fake.path, 'status', 'a'), '9\n');
    expect(listPods(dir, sys)[0]!.apps[0]!.exitCode).toBe(first[0]!.apps[0]!.exitCode);
    // ... but the state comes from the directory and lock every time.
    markExited(dir, sys, fake.uuid);
    expect(listPods(dir, sys).map((p) => p.state)).toEqual(['exited garbage']);
  });

  it('never caches a running pod: its exit appears at once', async () => {
    const fake = fabricatePod(dir, { state: 'running', apps: [{ name: 'a', started: true }] });
    const holder = await holdPodLock(fake.path);
    expect(listPods(dir, sys)[0]!.apps[0]!.state).toBe('running');
    fs.writeFileSync(path.join(fake.path, 'status', 'a'), '0\n');
    await holder.kill();
    expect(listPods(dir, sys)[0]!.apps[0]).toMatchObject({ state: 'exited', exitCode: 0 });
  });

  it('ignores a torn cache, drops removed pods, and rereads a reused uuid (same inode, new ctime)', () => {
    const fake = fabricatePod(dir, { state: 'exited', apps: [{ name: 'a', started: true, exitCode: 1 }] });
    const cacheFile = path.join(dir, 'pods', '.list-cache.json');
    fs.writeFileSync(cacheFile, '{"version":1,"pods":');
    expect(listPods(dir, sys)[0]!.apps[0]!.exitCode).toBe(1);
    fs.rmSync(fake.path, { recursive: true });
    fabricatePod(dir, { state: 'exited', uuid: fake.uuid, apps: [{ name: 'b', started: true, exitCode: 5 }] });
    const pods = listPods(dir, sys);
    const cached = JSON.parse(fs.readFileSync(cacheFile, 'utf8')) as { pods: Record<string, { id: string }> };
    expect(cached.pods[fake.uuid]!.id).toBe(`${fs.statSync(fake.path).ino}:${fs.statSync(fake.path).ctimeMs}`);
    expect(pods[0]!.apps.map((a) => [a.name, a.exitCode])).toEqual([['b', 5]]);
    fs.rmSync(fake.path, { recursive: true });
    expect(listPods(dir, sys)).toEqual([]);
    expect(Object.keys((JSON.parse(fs.readFileSync(cacheFile, 'utf8')) as { pods: object }).pods)).toEqual([]);
  });

  it('gives the same result with and without the cache', async () => {
    await fabricateEveryState();
    const plain = listPods(dir, sys, { cache: false }).map(toApiPod);
    listPods(dir, sys);
    expect(listPods(dir, sys).map(toApiPod)).toEqual(plain);
  });
});

describe('tspod list and tspod status', () => {
  let env: TspodEnv;
  beforeAll(() => {
    env = new TspodEnv();
  });
  afterAll(() => env.cleanup());
  beforeEach(() => fs.rmSync(env.dir, { recursive: true, force: true }));

  it('list prints one line per app with rkt columns; --no-legend drops the header; --full shows whole ids', async () => {
    const running = fabricatePod(env.dir, {
      state: 'running',
      created: new Date(Date.now() - 120_000),
      apps: [{ name: 'web', version: '1.0', started: true }, { name: 'db' }],
    });
    holders.push(await holdPodLock(running.path));
    fabricatePod(env.dir, { state: 'prepared', apps: [{ name: 'x' }] });
    const lines = env.ok(['list']).trimEnd().split('\n');
    expect(lines[0]).toMatch(/^UUID\s+APP\s+IMAGE NAME\s+STATE\s+CREATED\s+STARTED\s+NETWORKS$/);
    expect(lines[1]).toMatch(new RegExp(`^${running.uuid.slice(0, 8)}\\s+web\\s+example.com/web:1.0\\s+running\\s+2 minutes ago\\s+\\d+ (minute|second)s? ago$`));
    expect(lines[2]).toMatch(/^\s+db\s+example.com\/db$/);
    expect(lines[3]).toMatch(/\bx\s+example.com\/x\s+prepared\b/);
    const full = env.ok(['list', '--full', '--no-legend']).trimEnd().split('\n');
    expect(full).toHaveLength(3);
    expect(full[0]).toContain(running.uuid);
    expect(full[0]).toMatch(/sha512-[0-9a-f]{128}/);
    expect(full[0]).toMatch(/\d{4}-\d\d-\d\dT/);
  });

  it('list --json prints the api/v1 pods (valid against the schema)', () => {
    const fake = fabricatePod(env.dir, { state: 'exited', apps: [{ name: 'a', started: true, exitCode: 3 }], userAnnotations: { note: 'hi' } });
    const json = env.json<ApiPod[]>(['list']);
    expect(validateList(json), JSON.stringify(validateList.errors)).toBe(true);
    expect(json).toEqual([expect.objectContaining({ name: fake.uuid, state: 'exited', user_annotations: { note: 'hi' } })]);
    expect(json[0]!.apps[0]).toMatchObject({ name: 'a', state: 'exited', exit_code: 3 });
  });

  it('status prints rkt k=v lines with app exit codes, by uuid prefix or --uuid-file', () => {
    const fake = fabricatePod(env.dir, {
      state: 'exited',
      created: new Date('2026-01-02T03:04:05.000Z'),
      started: new Date('2026-01-02T03:04:06.000Z'),
      pid: 777,
      apps: [
        { name: 'a', started: true, exitCode: 0 },
        { name: 'b', started: true, exitCode: 3 },
      ],
    });
    const expected = [
      'state=exited',
      'created=2026-01-02T03:04:05.000Z',
      'started=2026-01-02T03:04:06.000Z',
      'networks=',
      'pid=777',
      'exited=true',
      'app-a=0',
      'app-b=3',
      '',
    ].join('\n');
    expect(env.ok(['status', fake.uuid.slice(0, 6)])).toBe(expected);
    const file = path.join(env.base, 'uuid');
    fs.writeFileSync(file, fake.uuid);
    expect(env.ok(['status', '--uuid-file', file])).toBe(expected);
    const json = env.json<Record<string, unknown>>(['status', fake.uuid]);
    expect(validateStatus(json), JSON.stringify(validateStatus.errors)).toBe(true);
    expect(json).toMatchObject({ name: fake.uuid, state: 'exited', pid: 777, exited: true, ready: false });
  });

  it('status of an unknown pod fails with 254 and a suggestion', () => {
    fs.mkdirSync(env.dir, { recursive: true });
    const result = env.run(['status', 'abcdef']);
    expect(result.status).toBe(254);
    expect(result.stderr).toContain('pod abcdef: no such pod');
    expect(result.stderr).toContain('try: tspod list --full');
  });

  it('status --wait (no value) waits until the pod finishes; --wait=DURATION times out', async () => {
    const fake = fabricatePod(env.dir, { state: 'running', apps: [{ name: 'a', started: true }] });
    const holder = await holdPodLock(fake.path);
    holders.push(holder);
    const timedOut = env.run(['status', '--wait=300ms', fake.uuid]);
    expect(timedOut.status).toBe(254);
    expect(timedOut.stderr).toContain('to finish: timed out after 300ms (state: running)');
    const child = env.spawn(['status', '--wait', fake.uuid]);
    let stdout = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    await new Promise((r) => setTimeout(r, 500));
    expect(child.exitCode).toBeNull();
    fs.writeFileSync(path.join(fake.path, 'status', 'a'), '0\n');
    await holder.kill();
    const code = await new Promise((r) => child.on('close', r));
    expect(code).toBe(0);
    expect(stdout).toContain('state=exited\n');
    expect(stdout).toContain('app-a=0\n');
  });

  it('status --wait-ready=DURATION returns when the pod is ready', async () => {
    const fake = fabricatePod(env.dir, { state: 'running', ready: true, apps: [{ name: 'a', started: true }] });
    holders.push(await holdPodLock(fake.path));
    expect(env.ok(['status', '--wait-ready=5s', fake.uuid])).toContain('state=running\n');
    const bad = env.run(['status', '--wait=soon', fake.uuid]);
    expect(bad.status).toBe(254);
    expect(bad.stderr).toContain('--wait: invalid duration "soon"');
  });

  it('cat-manifest prints the pod manifest, pretty unless --no-pretty-print', () => {
    const fake = fabricatePod(env.dir, { state: 'prepared', apps: [{ name: 'a' }] });
    const pretty = env.ok(['cat-manifest', fake.uuid]);
    expect(JSON.parse(pretty)).toMatchObject({ acKind: 'PodManifest', apps: [{ name: 'a' }] });
    expect(pretty).toContain('\n  "acKind"');
    expect(env.ok(['cat-manifest', '--no-pretty-print', fake.uuid]).trimEnd().split('\n')).toHaveLength(1);
    const embryo = fabricatePod(env.dir, { state: 'embryo' });
    const none = env.run(['cat-manifest', embryo.uuid]);
    expect(none.status).toBe(254);
    expect(none.stderr).toContain('no pod manifest yet (the pod is in embryo)');
  });
});
