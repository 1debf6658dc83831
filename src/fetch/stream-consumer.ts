// A consumer of a download's bytes as they arrive: the download's `onData` hook writes each chunk
// into a stream that a reader (the signature check, the ACI import) reads at its own pace. A full
// stream makes the write wait, so the slowest reader sets the download's pace and nothing is
// buffered beyond one stream's high-water mark. A reader that fails makes the next write throw
// its error (ending the download); a reader that finished early gets no more bytes.
import { once } from 'node:events';
import { PassThrough, type Readable } from 'node:stream';

/** About the chunk size of the gunzip output and of file reads elsewhere in the import path. */
const HIGH_WATER_MARK = 1 << 20;

export class StreamConsumer<T> {
  private readonly input = new PassThrough({ highWaterMark: HIGH_WATER_MARK });
  /** The reader's result; also available through `end()`. */
  readonly result: Promise<T>;
  private settled = false;
  private failed = false;
  private failure: unknown;
  private readonly whenSettled: Promise<void>;

  constructor(read: (input: Readable) => Promise<T>) {
    // Errors of the input reach us through the reader's result; without a listener, an 'error'
    // emitted by a reader's destroy(err) would be an uncaught exception.
    this.input.on('error', () => undefined);
    this.result = read(this.input);
    this.whenSettled = this.result.then(
      () => {
        this.settled = true;
      },
      (err: unknown) => {
        this.settled = true;
        this.failed = true;
        this.failure = err;
      },
    );
  }

  /** Hands one chunk to the reader; waits while its stream is full. Throws the reader's error. */
  async write(chunk: Uint8Array): Promise<void> {
    if (this.failed) throw this.failure;
    if (this.settled) return;
    if (this.input.destroyed) {
      await this.whenSettled;
      if (this.failed) throw this.failure;
      return;
    }
    if (!this.input.write(chunk)) {
      // Whichever comes first; the aborted waits take their listeners with them.
      const waits = new AbortController();
      const event = (name: string): Promise<unknown> => once(this.input, name, { signal: waits.signal }).catch(() => undefined);
      try {
        await Promise.race([event('drain'), event('close'), this.whenSettled]);
      } finally {
        waits.abort();
      }
      if (this.failed) throw this.failure;
    }
  }

  /** No more bytes: the reader's result. */
  async end(): Promise<T> {
    if (!this.input.destroyed) this.input.end();
    return this.result;
  }

  /**
   * The bytes so far are void (the download restarted or failed): the reader is stopped, and
   * this resolves once it has cleaned up (readAci removes its temp file). The input fails with an
   * error rather than just closing: a pipe does not pass a bare close on (gunzip would wait).
   */
  async abandon(): Promise<void> {
    if (!this.input.destroyed) this.input.destroy(new AbandonedError());
    await this.whenSettled;
  }
}

/** What an abandoned reader sees on its input. */
export class AbandonedError extends Error {
  constructor() {
    super('the download started over or failed: these bytes are void');
  }
}
