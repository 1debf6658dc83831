// PartialTail (src/http/download.ts): reads a file while it is written, up to what grow()
// reported, ends at finish(size), fails at fail(); a file shorter than reported is an error.
import fs from 'node:fs';
import path from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { PartialTail } from '../../src/http/download.js';
import { scratchDirs } from '../support/scratch.js';

const { freshDir, cleanup } = scratchDirs('partial-tail');
afterAll(cleanup);

async function collect(tail: PartialTail): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of tail) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

describe('PartialTail', () => {
  it('hands over bytes as they are reported written, and ends at finish', async () => {
    const file = path.join(freshDir(), 'download.partial');
    const writer = fs.openSync(file, 'w');
    const tail = new PartialTail(fs.openSync(file, 'r'));
    const reading = collect(tail);
    const parts = [Buffer.alloc(3000, 1), Buffer.alloc(5 << 20, 2), Buffer.alloc(10, 3)];
    let written = 0;
    for (const part of parts) {
      fs.writeSync(writer, part);
      // Bytes written but not yet reported are not read: the tail waits for grow().
      await new Promise((r) => setTimeout(r, 5));
      written += part.length;
      tail.grow(written);
    }
    tail.finish(written);
    fs.closeSync(writer);
    expect((await reading).equals(Buffer.concat(parts))).toBe(true);
    expect(() => fs.fstatSync(tail.fd)).toThrow(/EBADF/); // closed with the stream
  });

  it('fails with the error given to fail()', async () => {
    const file = path.join(freshDir(), 'download.partial');
    fs.writeFileSync(file, 'abc');
    const tail = new PartialTail(fs.openSync(file, 'r'));
    tail.grow(3);
    const reading = collect(tail);
    setTimeout(() => tail.fail(new Error('digest mismatch')), 10);
    await expect(reading).rejects.toThrow(/digest mismatch/);
  });

  it('fails when the file is shorter than reported', async () => {
    const file = path.join(freshDir(), 'download.partial');
    fs.writeFileSync(file, 'abc');
    const tail = new PartialTail(fs.openSync(file, 'r'));
    tail.finish(10);
    await expect(collect(tail)).rejects.toThrow(/shorter \(3 bytes\) than reported \(10\)/);
  });
});
