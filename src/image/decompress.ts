// Image decompression: detects an image's compression by its magic bytes (aci/file.go
// DetectFileType: gzip, bzip2, xz or a plain tar) and turns the input into a stream of the
// uncompressed tar. gzip goes through node:zlib; xz and bzip2 go through the system `xz` and
// `bzip2` binaries (Node has neither, and the C tools are fast and in every Debian). Any
// decompression failure, including truncated input, surfaces as an error on the output stream,
// never as a silently short read.
import { spawn } from 'node:child_process';
import { PassThrough, Readable } from 'node:stream';
import zlib from 'node:zlib';

import { ImageFormatError } from '../errors.js';

export const IMAGE_FORMATS = ['tar', 'gzip', 'bzip2', 'xz'] as const;
export type ImageFormat = (typeof IMAGE_FORMATS)[number];

/** Bytes needed to tell every format apart: the tar magic sits at offset 257 (5 bytes). */
export const DETECT_HEAD_SIZE = 262;

/** Output chunk size of the gunzip stream: larger chunks mean fewer hops through the pipeline. */
const GUNZIP_CHUNK_SIZE = 1 << 20;

/**
 * The external decompressors (xz and bzip2 for ACIs, zstd for OCI layers: src/oci/decompress.ts)
 * and the Debian package that ships each, for the "not found" message.
 */
const EXTERNAL_TOOLS = {
  xz: { binary: 'xz', args: ['-dc'], debianPackage: 'xz-utils' },
  bzip2: { binary: 'bzip2', args: ['-dc'], debianPackage: 'bzip2' },
  zstd: { binary: 'zstd', args: ['-dcq'], debianPackage: 'zstd' },
} as const;

export type ExternalFormat = keyof typeof EXTERNAL_TOOLS;

export interface DecompressOptions {
  /** Called with the size of each chunk read from the compressed input (not for plain tar). */
  onInput?: (bytes: number) => void;
}

export interface DecompressResult {
  format: ImageFormat;
  /** The uncompressed tar; fails with an error when the input is corrupt, truncated or fails. */
  output: Readable;
}

/** Names an image's format by its first bytes (at least DETECT_HEAD_SIZE of them for tar). */
export function detectFormat(head: Buffer): ImageFormat | 'unknown' {
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  if (head.length >= 3 && head.subarray(0, 3).toString('latin1') === 'BZh') return 'bzip2';
  if (head.length >= 6 && head.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))) return 'xz';
  // POSIX "ustar\0" and GNU "ustar  " both start with these five bytes.
  if (head.length >= DETECT_HEAD_SIZE && head.subarray(257, 262).toString('latin1') === 'ustar') return 'tar';
  return 'unknown';
}

/**
 * Peeks at the start of `input` (without losing it), detects the format and returns the
 * uncompressed stream. Rejects with ImageFormatError for an unknown format; errors of `input`
 * reject the promise or, once streaming, destroy the output with the same error.
 */
export async function decompressStream(
  input: Readable,
  what: string,
  options: DecompressOptions = {},
): Promise<DecompressResult> {
  const { head, ended } = await peek(input, DETECT_HEAD_SIZE);
  const format = detectFormat(head);
  if (format === 'unknown') {
    input.destroy();
    const detail = head.length === 0 ? 'empty file' : 'not tar, gzip, bzip2 or xz';
    throw new ImageFormatError(`read ${what}: unknown image format (${detail})`);
  }
  // peek() put the bytes back unless the input already ended: then replay them.
  const source = ended ? Readable.from([head]) : input;
  if (format === 'tar') return { format, output: source };
  if (options.onInput !== undefined) {
    const onInput = options.onInput;
    source.on('data', (chunk: Buffer) => onInput(chunk.length));
  }
  const output = format === 'gzip' ? gunzip(source, what) : decompressExternal(source, format, what);
  return { format, output };
}

export interface Peeked {
  head: Buffer;
  ended: boolean;
}

/**
 * Reads at least `size` bytes (or everything, if shorter) in paused mode and puts them back with
 * unshift() in the same tick: read() may already have scheduled 'end' for a short stream, and
 * the unshifted bytes are what keeps 'end' from being emitted before they are consumed.
 */
export function peek(input: Readable, size: number): Promise<Peeked> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let length = 0;
    const cleanup = (): void => {
      input.off('readable', onReadable);
      input.off('end', onEnd);
      input.off('error', onError);
    };
    const done = (ended: boolean): void => {
      cleanup();
      const head = Buffer.concat(chunks, length);
      if (!ended) input.unshift(head);
      resolve({ head, ended });
    };
    const onReadable = (): void => {
      let chunk: Buffer | null;
      while (length < size && (chunk = input.read() as Buffer | null) !== null) {
        chunks.push(chunk);
        length += chunk.length;
      }
      if (length >= size) done(false);
    };
    const onEnd = (): void => done(true);
    const onError = (err: Error): void => {
      cleanup();
      reject(err);
    };
    input.on('readable', onReadable);
    input.on('end', onEnd);
    input.on('error', onError);
  });
}

/** gunzip through node:zlib; zlib's own errors are rewritten to name the image. */
function gunzip(source: Readable, what: string): Readable {
  const inflater = zlib.createGunzip({ chunkSize: GUNZIP_CHUNK_SIZE });
  const output = new PassThrough({ highWaterMark: GUNZIP_CHUNK_SIZE });
  let failed = false;
  const fail = (err: Error): void => {
    if (failed) return;
    failed = true;
    source.destroy();
    inflater.destroy();
    output.destroy(err);
  };
  source.on('error', fail);
  // zlib: a stream that ends before the gzip trailer fails with "unexpected end of file".
  inflater.on('error', (err) => fail(new ImageFormatError(`read ${what}: corrupt gzip data: ${err.message}`, { cause: err })));
  output.on('close', () => {
    if (!output.readableEnded) fail(output.errored ?? new Error('output closed'));
  });
  source.pipe(inflater).pipe(output);
  return output;
}

/** Decompresses through `xz -dc`, `bzip2 -dc` or `zstd -dcq`; ends the output only after a zero exit. */
export function decompressExternal(source: Readable, format: ExternalFormat, what: string): Readable {
  const tool = EXTERNAL_TOOLS[format];
  const output = new PassThrough({ highWaterMark: 1 << 20 });
  const child = spawn(tool.binary, [...tool.args], { stdio: ['pipe', 'pipe', 'pipe'] });
  let settled = false;
  const fail = (err: Error): void => {
    if (settled) return;
    settled = true;
    source.unpipe(child.stdin);
    source.destroy();
    child.kill('SIGKILL');
    output.destroy(err);
  };
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (text: string) => {
    if (stderr.length < 4096) stderr += text;
  });
  child.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') {
      fail(
        new ImageFormatError(
          `read ${what}: cannot decompress ${format}: the ${tool.binary} program was not found ` +
            `(install the Debian package ${tool.debianPackage})`,
          { cause: err, suggestions: [`apt-get install ${tool.debianPackage}`] },
        ),
      );
    } else {
      fail(new ImageFormatError(`read ${what}: cannot run ${tool.binary}: ${err.message}`, { cause: err }));
    }
  });
  // The child reports bad data through its exit status; a write after it quit gets EPIPE.
  child.stdin.on('error', () => {});
  source.on('error', fail);
  child.stdout.pipe(output, { end: false });
  // 'close' comes after the child exited and its stdio closed, so all of stdout is in `output`.
  child.on('close', (code, signal) => {
    if (settled) return;
    if (code === 0) {
      settled = true;
      output.end();
      return;
    }
    const status = signal !== null ? `killed by ${signal}` : `exit status ${code}`;
    const message = stderr.trim().split('\n').pop() ?? '';
    fail(new ImageFormatError(`read ${what}: corrupt ${format} data (${tool.binary} ${status})${message ? `: ${message}` : ''}`));
  });
  output.on('close', () => {
    if (!output.readableEnded) fail(output.errored ?? new Error('output closed'));
  });
  source.pipe(child.stdin);
  return output;
}
