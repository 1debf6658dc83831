// The store survives kill -9 of `tspod fetch` at any moment: afterwards no half image is listed,
// no lock is held, the next fetch succeeds and gc removes the leftovers. Two concurrent fetches
// of one image both succeed and store it once.
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { tryLock } from '../../src/store/lock.js';
import { libcSyscalls } from '../../src/sys/index.js';
import { TspodEnv } from '../support/cli.js';

interface Listed {
  id: string;
}

/** A ~48 MB gzip'd ACI of incompressible files: big enough that an import takes a while. */
function makeBigAci(dir: string): { aci: string; id: string } {
  const src = path.join(dir, 'src');
  fs.mkdirSync(path.join(src, 'rootfs', 'data'), { recursive: true });
  fs.writeFileSync(
    path.join(src, 'manifest'),
    JSON.stringify({ acKind: 'ImageManifest', acVersion: '0.8.11', name: 'tspod.dev/test/big', labels: [{ name: 'version', value: '1.0.0' }] }),
  );
  for (let i = 0; i < 48; i++) fs.writeFileSync(path.join(src, 'rootfs', 'data', `blob-${i}`), crypto.randomBytes(1 << 20));
  const tarFile = path.join(dir, 'big.tar');
  execFileSync('tar', ['-cf', tarFile, '-C', src, 'rootfs', 'manifest']);
  const id = `sha512-${crypto.createHash('sha512').update(fs.readFileSync(tarFile)).digest('hex')}`;
  execFileSync('gzip', ['-1', tarFile]);
  const aci = path.join(dir, 'big.aci');
  fs.renameSync(`${tarFile}.gz`, aci);
  fs.rmSync(src, { recursive: true });
  return { aci, id };
}

function assertNoLockHeld(env: TspodEnv): void {
  const locks = path.join(env.dir, 'locks');
  for (const name of fs.existsSync(locks) ? fs.readdirSync(locks) : []) {
    const held = tryLock(libcSyscalls, path.join(locks, name), 'exclusive');
    expect(held, `lock ${name} is still held`).toBeDefined();
    held?.release();
  }
}

async function waitUntil(check: () => boolean, timeoutMs: number): Promise<boolean> {
  const start = Date.now();
  while (Date.now() - start < timeoutMs) {
    if (check()) return true;
    await sleep(1);
  }
  return false;
}

describe('fetch killed with SIGKILL', () => {
  let env: TspodEnv;
  let big: { aci: string; id: string };

  beforeAll(() => {
    env = new TspodEnv();
    fs.mkdirSync(env.base, { recursive: true });
    big = makeBigAci(env.base);
  });
  afterAll(() => env?.cleanup());

  const tmpDir = () => path.join(env.dir, 'cas', 'tmp');
  const blobFile = () => path.join(env.dir, 'cas', 'blob', 'sha512', big.id.slice(7, 9), big.id.slice(7));

  // Kill points: fixed delays spread over the import, plus "as soon as the temp tar exists"
  // (mid-decompression) and "as soon as the blob is in place" (between blob and record).
  const points: { name: string; trigger: () => Promise<boolean> }[] = [
    { name: 'at start (10 ms)', trigger: async () => (await sleep(10), true) },
    { name: 'while the temp tar is written', trigger: () => waitUntil(() => fs.existsSync(tmpDir()) && fs.readdirSync(tmpDir()).length > 0, 20_000) },
    { name: 'once the blob is in place', trigger: () => waitUntil(() => fs.existsSync(blobFile()), 20_000) },
    ...[150, 300, 450, 600, 900].map((ms) => ({ name: `after ${ms} ms`, trigger: async () => (await sleep(ms), true) })),
  ];

  for (const point of points) {
    it(`leaves no listed half image and no held lock when killed ${point.name}`, async () => {
      fs.rmSync(env.dir, { recursive: true, force: true });
      const child = env.spawn(['fetch', '--insecure-options=image', big.aci]);
      const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
      await point.trigger();
      child.kill('SIGKILL');
      await exited;

      const listed = env.json<Listed[]>(['image', 'list']);
      // Either the kill came before the commit (nothing listed) or after it (complete image).
      expect(listed.length).toBeLessThanOrEqual(1);
      if (listed.length === 1) {
        expect(listed[0]!.id).toBe(big.id);
        const stored = crypto.createHash('sha512').update(fs.readFileSync(blobFile())).digest('hex');
        expect(`sha512-${stored}`).toBe(big.id);
      }
      assertNoLockHeld(env);

      expect(env.ok(['fetch', '--insecure-options=image', big.aci]).trim()).toBe(big.id);
      env.ok(['image', 'gc']);
      expect(fs.readdirSync(tmpDir())).toEqual([]);
      expect(env.json<Listed[]>(['image', 'list']).map((i) => i.id)).toEqual([big.id]);
    });
  }

  it('two concurrent fetches of one image both succeed and store it once', async () => {
    fs.rmSync(env.dir, { recursive: true, force: true });
    const run = () =>
      new Promise<{ code: number | null; out: string }>((resolve) => {
        const child = env.spawn(['fetch', '--insecure-options=image', big.aci]);
        let out = '';
        child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
        child.on('exit', (code) => resolve({ code, out }));
      });
    const results = await Promise.all([run(), run()]);
    for (const r of results) {
      expect(r.code).toBe(0);
      expect(r.out.trim()).toBe(big.id);
    }
    expect(env.json<Listed[]>(['image', 'list']).map((i) => i.id)).toEqual([big.id]);
    expect(fs.readdirSync(path.dirname(blobFile()))).toEqual([big.id.slice(7)]);
    expect(fs.readdirSync(tmpDir())).toEqual([]);
  });
});
