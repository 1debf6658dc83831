// Throughput of readAci against the C tools doing the same work, side by side in one run:
// `gzip -dc f | sha512sum` (decompress + id) and `tar -xzf` (decompress + parse + write).
// Opt-in, because it needs a large image and a quiet machine: point TSPOD_BENCH_ACI at a gzip'd
// ACI of ~200 MB on tmpfs. One made from host files (418 MB uncompressed, 11.7k entries):
//   mkdir -p /dev/shm/img/rootfs && cp -a /usr/bin /dev/shm/img/rootfs/
//   (cd /usr/share && find . -xdev -type f -size -200k | head -9000 | tar -cf - -T -) | tar -C /dev/shm/img/rootfs -xf -
//   cp fixtures/images/plain/manifest /dev/shm/img/ && actool build --overwrite /dev/shm/img /dev/shm/big.aci
//   TSPOD_BENCH_ACI=/dev/shm/big.aci npx vitest run test/image/aci-reader-throughput
// The temp tar and the tar -x target go to a fresh directory beside the image (keep it on tmpfs
// or a journaled ext4: the root ext4 here has no journal, see docs/peers.md).
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

import { describe, expect, it } from 'vitest';

import { readAci } from '../../src/image/aci-reader.js';

const IMAGE = process.env.TSPOD_BENCH_ACI;
const RUNS = Number(process.env.TSPOD_BENCH_RUNS ?? 3);

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? NaN;
}

function timeShell(command: string): number {
  const start = process.hrtime.bigint();
  execFileSync('sh', ['-c', command], { stdio: 'ignore' });
  return Number(process.hrtime.bigint() - start) / 1e9;
}

describe.skipIf(IMAGE === undefined)('readAci throughput (set TSPOD_BENCH_ACI to a large gzip ACI to run)', () => {
  it('reads a large gzip ACI and compares with gzip | sha512sum and tar -xzf', { timeout: 600_000 }, async () => {
    const image = IMAGE as string;
    const work = fs.mkdtempSync(path.join(path.dirname(image), 'aci-bench-'));
    try {
      const ours: number[] = [];
      const hashOnly: number[] = [];
      const untar: number[] = [];
      let size = 0;
      for (let i = 0; i < RUNS; i++) {
        const start = process.hrtime.bigint();
        const result = await readAci(fs.createReadStream(image, { highWaterMark: 1 << 20 }), {
          tmpDir: work,
          what: image,
          validateManifest: (bytes) => JSON.parse(bytes.toString('utf8')),
        });
        ours.push(Number(process.hrtime.bigint() - start) / 1e9);
        size = result.size;
        fs.rmSync(result.tmpTarPath);
        hashOnly.push(timeShell(`gzip -dc '${image}' | sha512sum`));
        const target = path.join(work, `x${i}`);
        fs.mkdirSync(target);
        untar.push(timeShell(`tar -C '${target}' -xzf '${image}'`));
        fs.rmSync(target, { recursive: true, force: true });
      }
      const compressed = fs.statSync(image).size;
      const rows = [
        ['readAci (decompress, sha512, temp file + fsync, validate)', median(ours)],
        ['gzip -dc | sha512sum', median(hashOnly)],
        ['tar -xzf', median(untar)],
      ] as const;
      for (const [what, seconds] of rows) {
        console.log(
          `${what.padEnd(60)} ${seconds.toFixed(2)} s  ${(compressed / 1e6 / seconds).toFixed(0)} MB/s in  ` +
            `${(size / 1e6 / seconds).toFixed(0)} MB/s out  ratio ${(seconds / median(ours)).toFixed(2)}`,
        );
      }
      expect(size).toBeGreaterThan(0);
    } finally {
      fs.rmSync(work, { recursive: true, force: true });
    }
  });
});
