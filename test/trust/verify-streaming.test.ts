// Streaming verification: a large image is hashed chunk by chunk, never held in memory whole.
// Also prints the throughput (MB/s); TSPOD_VERIFY_BENCH_MB=200 reproduces the import benchmark size.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import v8 from 'node:v8';
import vm from 'node:vm';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { RecordingSyscalls } from '../../src/sys/recording.js';
import { Keystore } from '../../src/trust/keystore.js';
import { readSignature, verifyDetached } from '../../src/trust/verify.js';
import { GpgHome, hasGpg, type GpgKey } from '../support/gpg.js';

const MB = 1024 * 1024;
const SIZE_MB = Number(process.env.TSPOD_VERIFY_BENCH_MB ?? 50);

describe.skipIf(!hasGpg)('streaming verification of a large image (needs gpg)', () => {
  let gpg: GpgHome;
  let dir: string;
  let image: string;
  let key: GpgKey;
  let keystore: Keystore;

  beforeAll(async () => {
    gpg = new GpgHome();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tspod-verify-big-'));
    image = path.join(dir, 'big.aci');
    // Random content in 1 MiB blocks (incompressible, like a compressed image).
    const fd = fs.openSync(image, 'w');
    const block = crypto.randomBytes(MB);
    for (let i = 0; i < SIZE_MB; i++) {
      block.writeUInt32LE(i, 0);
      fs.writeSync(fd, block);
    }
    fs.closeSync(fd);
    key = gpg.genKey('Big Signer <big@example.com>');
    keystore = new Keystore({ systemDir: path.join(dir, 'sys'), localDir: path.join(dir, 'local'), sys: new RecordingSyscalls() });
    await keystore.add(gpg.exportPublic(key.fingerprint), { prefix: 'example.com/big' });
  });

  afterAll(() => {
    gpg?.cleanup();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  let signature: Awaited<ReturnType<typeof readSignature>>;

  it(`measures streaming-verification throughput on ${SIZE_MB} MB against a bare node:crypto hash`, async () => {
    signature = await readSignature(gpg.signDetached(image, key.fingerprint), 'big.aci.asc');
    const hashName = signature.packets[0]!.hashAlgorithm === 10 ? 'sha512' : 'sha256';
    // Warm-up on a small file first: openpgp loads its lazy modules and V8 compiles the hot path.
    const small = path.join(dir, 'small.aci');
    fs.writeFileSync(small, crypto.randomBytes(4 * MB));
    await verifyDetached({
      signature: await readSignature(gpg.signDetached(small, key.fingerprint), 'small.aci.asc'),
      name: 'example.com/big',
      keystore,
      data: fs.createReadStream(small),
    });
    const results: string[] = [];
    for (const chunk of [64 * 1024, MB]) {
      let t = process.hrtime.bigint();
      const hash = crypto.createHash(hashName);
      for await (const c of fs.createReadStream(image, { highWaterMark: chunk })) hash.update(c as Buffer);
      hash.digest();
      const bare = Number(process.hrtime.bigint() - t) / 1e9;
      t = process.hrtime.bigint();
      const v = await verifyDetached({ signature, name: 'example.com/big', keystore, data: fs.createReadStream(image, { highWaterMark: chunk }) });
      const seconds = Number(process.hrtime.bigint() - t) / 1e9;
      expect(v.signerFingerprint).toBe(key.fp);
      results.push(
        `${chunk / 1024} KiB chunks: verify ${(SIZE_MB / seconds).toFixed(0)} MB/s, bare ${hashName} read+hash ${(SIZE_MB / bare).toFixed(0)} MB/s`,
      );
    }
    console.log(`streaming verify of ${SIZE_MB} MB: ${results.join('; ')}`);
  });

  it(`verifies a ${SIZE_MB} MB file while RSS grows by well under the file size`, async () => {
    // Collect garbage before each sample, so RSS shows what is held, not chunks awaiting GC
    // (V8 collects external Buffer memory lazily, ~20-30 MB late, whatever the file size).
    v8.setFlagsFromString('--expose-gc');
    const gc = vm.runInNewContext('gc') as () => void;
    gc();
    const baseline = process.memoryUsage.rss();
    let peak = baseline;
    const sampler = setInterval(() => {
      gc();
      peak = Math.max(peak, process.memoryUsage.rss());
    }, 25);
    // 64 KiB chunks (fs default; undici bodies are smaller): what is in flight is a few chunks.
    const v = await verifyDetached({ signature, name: 'example.com/big', keystore, data: fs.createReadStream(image) });
    clearInterval(sampler);
    const growthMb = (peak - baseline) / MB;
    console.log(`streaming verify of ${SIZE_MB} MB: peak RSS growth ${growthMb.toFixed(1)} MB (GC before each sample)`);
    expect(v.signerFingerprint).toBe(key.fp);
    // Buffering the image would grow RSS by at least its size.
    expect(growthMb).toBeLessThan(SIZE_MB / 3);
  });
});
