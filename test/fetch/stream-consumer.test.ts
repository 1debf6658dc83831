// StreamConsumer: how a download's bytes reach a reader (the signature check, the ACI import) as
// they arrive: in order, paced by the slowest reader, a reader's failure ending the writes, an
// abandoned reader stopped and settled before the download goes on.
import { setTimeout as sleep } from 'node:timers/promises';
import type { Readable } from 'node:stream';

import { describe, expect, it } from 'vitest';

import { AbandonedError, StreamConsumer } from '../../src/fetch/stream-consumer.js';

async function collect(input: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of input) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

describe('StreamConsumer', () => {
  it('hands every byte to the reader in order, and end() gives its result', async () => {
    const consumer = new StreamConsumer(collect);
    for (let i = 0; i < 100; i++) await consumer.write(Buffer.from(`chunk ${i};`));
    const all = await consumer.end();
    expect(all.toString()).toBe(Array.from({ length: 100 }, (_, i) => `chunk ${i};`).join(''));
  });

  it('makes the writer wait for a slow reader: a bounded amount is buffered, not the whole download', async () => {
    let read = 0;
    let written = 0;
    let maxAhead = 0;
    const consumer = new StreamConsumer(async (input) => {
      for await (const chunk of input) {
        read += (chunk as Buffer).length;
        await sleep(1);
      }
      return read;
    });
    const chunk = Buffer.alloc(64 * 1024);
    for (let i = 0; i < 128; i++) {
      await consumer.write(chunk);
      written += chunk.length;
      maxAhead = Math.max(maxAhead, written - read);
    }
    expect(await consumer.end()).toBe(128 * chunk.length);
    // 8 MiB went through; at most the PassThrough's two 1 MiB buffers (writable and readable
    // side) plus the chunks in flight waited.
    expect(maxAhead).toBeLessThanOrEqual(2 * (1 << 20) + 4 * chunk.length);
  });

  it('throws the reader\'s error on the next write once the reader failed', async () => {
    const consumer = new StreamConsumer(async (input) => {
      for await (const chunk of input) if ((chunk as Buffer).includes('bad')) throw new Error('the reader refused these bytes');
      return 'done';
    });
    await consumer.write(Buffer.from('good'));
    await consumer.write(Buffer.from('bad'));
    await sleep(10);
    await expect(consumer.write(Buffer.from('more'))).rejects.toThrow('the reader refused these bytes');
  });

  it('does not wait forever on a reader that stopped reading because it failed while the stream was full', async () => {
    let fail: (err: Error) => void = () => undefined;
    const consumer = new StreamConsumer(() => new Promise<never>((_, reject) => (fail = reject)));
    const big = Buffer.alloc(2 << 20);
    const pending = consumer.write(big); // more than the high-water mark: waits for a drain that never comes
    setTimeout(() => fail(new Error('reader gave up')), 20);
    await expect(pending).rejects.toThrow('reader gave up');
  });

  it('drops the bytes of a reader that finished early, without error', async () => {
    const consumer = new StreamConsumer(async (input) => {
      const first = (await input[Symbol.asyncIterator]().next()).value as Buffer;
      return first.toString();
    });
    await consumer.write(Buffer.from('head'));
    await sleep(10);
    await consumer.write(Buffer.alloc(3 << 20));
    expect(await consumer.end()).toBe('head');
  });

  it('abandon() stops the reader with AbandonedError and resolves once it has settled', async () => {
    let cleanedUp = false;
    const consumer = new StreamConsumer(async (input) => {
      try {
        return await collect(input);
      } catch (err) {
        await sleep(20); // a reader removing its temp file
        cleanedUp = true;
        throw err;
      }
    });
    await consumer.write(Buffer.from('partial'));
    await consumer.abandon();
    expect(cleanedUp).toBe(true);
    await expect(consumer.result).rejects.toBeInstanceOf(AbandonedError);
  });
});
