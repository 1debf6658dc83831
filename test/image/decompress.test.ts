// Tests of src/image/decompress.ts: format detection by magic bytes, and decompression of every
// format with the inputs made by the system gzip, xz and bzip2; corrupt and truncated data and a
// missing decompressor must fail loudly, never as a short read.
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import { Readable } from 'node:stream';

import { describe, expect, it } from 'vitest';

import { ImageFormatError } from '../../src/errors.js';
import { decompressStream, detectFormat } from '../../src/image/decompress.js';

/** A tar made by the system tar (ustar magic at offset 257) holding some compressible data. */
function makeTar(): Buffer {
  const text = Buffer.from(Array.from({ length: 40_000 }, (_, i) => `line ${i} ${i * 7919}\n`).join(''));
  const random = crypto.randomBytes(300_000);
  const dir = execFileSync('mktemp', ['-d']).toString().trim();
  execFileSync('sh', ['-c', `cat > ${dir}/text`], { input: text });
  execFileSync('sh', ['-c', `cat > ${dir}/random`], { input: random });
  const tarBytes = execFileSync('tar', ['-C', dir, '--format=ustar', '-cf', '-', 'text', 'random'], { maxBuffer: 1 << 26 });
  execFileSync('rm', ['-rf', dir]);
  return tarBytes;
}

const TAR = makeTar();
const compressWith = (tool: string, data: Buffer): Buffer => execFileSync(tool, ['-c'], { input: data, maxBuffer: 1 << 26 });
const INPUTS = {
  tar: TAR,
  gzip: compressWith('gzip', TAR),
  bzip2: compressWith('bzip2', TAR),
  xz: compressWith('xz', TAR),
} as const;

/** Feeds `data` in chunks of `chunkSize` (the first 1 KiB in `headChunkSize`), as a file or socket would. */
function chunked(data: Buffer, chunkSize = 64 * 1024, headChunkSize = chunkSize): Readable {
  const chunks: Buffer[] = [];
  for (let i = 0; i < data.length; ) {
    const size = i < 1024 ? headChunkSize : chunkSize;
    chunks.push(data.subarray(i, i + size));
    i += size;
  }
  return Readable.from(chunks, { objectMode: false });
}

async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

async function decompressAll(data: Buffer, headChunkSize?: number): Promise<Buffer> {
  const { output } = await decompressStream(chunked(data, 64 * 1024, headChunkSize), 'test.aci');
  return collect(output);
}

function corrupt(data: Buffer): Buffer {
  const copy = Buffer.from(data);
  for (let i = Math.floor(copy.length / 3); i < Math.floor(copy.length / 3) + 64; i++) copy[i] = (copy[i] ?? 0) ^ 0x5a;
  return copy;
}

describe('detectFormat', () => {
  it.each(Object.entries(INPUTS))('detects %s by its magic bytes', (format, data) => {
    expect(detectFormat(data.subarray(0, 512))).toBe(format);
  });

  it('calls anything else unknown, including an empty and a too-short head', () => {
    expect(detectFormat(Buffer.from('{"acKind":"ImageManifest"}'))).toBe('unknown');
    expect(detectFormat(Buffer.alloc(0))).toBe('unknown');
    expect(detectFormat(TAR.subarray(0, 200))).toBe('unknown');
    expect(detectFormat(Buffer.alloc(1024))).toBe('unknown');
  });
});

describe('decompressStream', () => {
  it.each(Object.entries(INPUTS))('decompresses %s made by the system tool to the original tar', async (format, data) => {
    const { format: detected, output } = await decompressStream(chunked(data), 'test.aci');
    expect(detected).toBe(format);
    const out = await collect(output);
    expect(out.equals(TAR)).toBe(true);
  });

  it('keeps the peeked bytes when the input arrives in tiny chunks', async () => {
    for (const data of Object.values(INPUTS)) {
      const out = await decompressAll(data, 7);
      expect(out.equals(TAR)).toBe(true);
    }
  });

  it('decompresses an input shorter than the detection head (gzip of 3 bytes)', async () => {
    const out = await decompressAll(compressWith('gzip', Buffer.from('hi\n')));
    expect(out.toString()).toBe('hi\n');
  });

  it('keeps a plain tar that arrives as one chunk and then ends (no early end event)', async () => {
    const small = TAR.subarray(0, 3072);
    const { format, output } = await decompressStream(Readable.from([small]), 'small.aci');
    expect(format).toBe('tar');
    expect((await collect(output)).equals(small)).toBe(true);
  });

  it('reports the compressed input size through onInput', async () => {
    let total = 0;
    const { output } = await decompressStream(chunked(INPUTS.gzip), 'test.aci', { onInput: (n) => (total += n) });
    await collect(output);
    expect(total).toBe(INPUTS.gzip.length);
  });

  it('refuses an unknown format, naming the image', async () => {
    const promise = decompressStream(chunked(Buffer.from('PK\u0003\u0004 this is a zip file, not an ACI'.repeat(20))), './app.aci');
    await expect(promise).rejects.toThrow(ImageFormatError);
    await expect(promise).rejects.toThrow('read ./app.aci: unknown image format (not tar, gzip, bzip2 or xz)');
  });

  it('refuses an empty input as an unknown format', async () => {
    await expect(decompressStream(chunked(Buffer.alloc(0)), 'empty.aci')).rejects.toThrow(
      'read empty.aci: unknown image format (empty file)',
    );
  });

  it.each(['gzip', 'xz', 'bzip2'] as const)('fails on corrupt %s data instead of returning garbage', async (format) => {
    await expect(decompressAll(corrupt(INPUTS[format]))).rejects.toThrow(ImageFormatError);
    await expect(decompressAll(corrupt(INPUTS[format]))).rejects.toThrow(new RegExp(`read test.aci: corrupt ${format} data`));
  });

  it.each(['gzip', 'xz', 'bzip2'] as const)('fails on truncated %s data, never a silent short read', async (format) => {
    const data = INPUTS[format];
    const truncated = data.subarray(0, Math.floor(data.length / 2));
    await expect(decompressAll(truncated)).rejects.toThrow(new RegExp(`read test.aci: corrupt ${format} data`));
  });

  it('fails on a gzip stream cut just before its trailer (unexpected end of file)', async () => {
    const data = INPUTS.gzip;
    await expect(decompressAll(data.subarray(0, data.length - 4))).rejects.toThrow(/corrupt gzip data: unexpected end of file/);
  });

  it.each([
    ['xz', 'xz-utils'],
    ['bzip2', 'bzip2'],
  ] as const)('names the Debian package when the %s binary is missing (PATH without it)', async (format, pkg) => {
    const savedPath = process.env.PATH;
    process.env.PATH = '/nonexistent-tspod-test';
    try {
      const promise = decompressAll(INPUTS[format]);
      await expect(promise).rejects.toThrow(ImageFormatError);
      await expect(promise).rejects.toThrow(`install the Debian package ${pkg}`);
    } finally {
      process.env.PATH = savedPath;
    }
  });

  it.each(['tar', 'gzip', 'xz'] as const)('propagates an error of the %s input stream to the output', async (format) => {
    const data = INPUTS[format];
    let reads = 0;
    const failing = new Readable({
      read() {
        if (reads++ === 0) this.push(data.subarray(0, 100_000));
        else setTimeout(() => this.destroy(new Error('connection reset by peer')), 5);
      },
    });
    const { output } = await decompressStream(failing, 'remote.aci');
    await expect(collect(output)).rejects.toThrow('connection reset by peer');
  });

  it('rejects when the input fails before the format is known', async () => {
    const failing = new Readable({
      read() {
        this.destroy(new Error('EACCES: permission denied'));
      },
    });
    await expect(decompressStream(failing, 'secret.aci')).rejects.toThrow('EACCES');
  });
});
