// Tests of src/image/aci-reader.ts: ACIs built by Debian's actool from fixtures/images in every
// compression give the id sha512sum gives; malformed archives (made with tar-stream pack) are
// refused with a message naming the problem, and the temp file is always removed.
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import v8 from 'node:v8';
import vm from 'node:vm';
import zlib from 'node:zlib';

import { extract, pack, type Header } from 'tar-stream';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';

import type { ImageManifest } from '../../src/appc/types.js';
import { ImageFormatError, ValidationError } from '../../src/errors.js';
import { readAci, type AciReadOptions } from '../../src/image/aci-reader.js';
import { buildFixtures, FIXTURE_CASES, FIXTURE_SOURCES, type FixtureCompression } from '../../fixtures/build-fixtures.js';

const COMPRESSIONS: FixtureCompression[] = ['gzip', 'xz', 'bzip2', 'none'];
const DECOMPRESS_CMD: Record<FixtureCompression, string> = {
  gzip: 'gzip -dc',
  xz: 'xz -dc',
  bzip2: 'bzip2 -dc',
  none: 'cat',
};

/** A tiny stand-in for src/appc/validate.ts: JSON, acKind, acVersion and a name. */
function tinyValidator(bytes: Buffer): ImageManifest {
  let doc: unknown;
  try {
    doc = JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw new ValidationError('parse image manifest', [`not JSON: ${(err as Error).message}`]);
  }
  const m = doc as Partial<ImageManifest> | null;
  const problems: string[] = [];
  if (m === null || typeof m !== 'object') problems.push('/: must be an object');
  else {
    if (m.acKind !== 'ImageManifest') problems.push('/acKind: must be "ImageManifest"');
    if (typeof m.acVersion !== 'string') problems.push('/acVersion: required');
    if (typeof m.name !== 'string' || m.name === '') problems.push('/name: required');
  }
  if (problems.length > 0) throw new ValidationError('invalid image manifest', problems);
  return m as ImageManifest;
}

/** The real validator once src/appc/validate.ts exists (written concurrently), else the tiny one. */
async function loadValidator(): Promise<(bytes: Buffer) => ImageManifest> {
  const modulePath = '../../src/appc/validate.js';
  try {
    const mod = (await import(/* @vite-ignore */ modulePath)) as Record<string, unknown>;
    const parse = mod.parseImageManifest;
    if (typeof parse === 'function') return (bytes) => parse(bytes, 'image manifest') as ImageManifest;
  } catch {
    // not written yet
  }
  return tinyValidator;
}

let validateManifest: (bytes: Buffer) => ImageManifest = tinyValidator;
let root: string;
let tmpDir: string;
const built: Partial<Record<FixtureCompression, Record<string, string>>> = {};

beforeAll(async () => {
  validateManifest = await loadValidator();
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'tspod-aci-reader-'));
  for (const compress of COMPRESSIONS) built[compress] = await buildFixtures(path.join(root, compress), { compress });
});

afterAll(() => {
  fs.rmSync(root, { recursive: true, force: true });
});

beforeEach(() => {
  tmpDir = fs.mkdtempSync(path.join(root, 'tmp-'));
});

function options(extra: Partial<AciReadOptions> = {}): AciReadOptions {
  return { tmpDir, validateManifest, what: 'test.aci', ...extra };
}

function shell(command: string): string {
  return execFileSync('sh', ['-c', command], { maxBuffer: 1 << 28 }).toString();
}

const GOOD_MANIFEST = JSON.stringify({ acKind: 'ImageManifest', acVersion: '0.8.11', name: 'example.com/test' });

interface Entry {
  name: string;
  type?: Header['type'];
  body?: string | Buffer;
  linkname?: string;
}

/** A tar made with tar-stream pack, entries in the order given (duplicates allowed). */
async function packTar(entries: Entry[]): Promise<Buffer> {
  const p = pack();
  const chunks: Buffer[] = [];
  p.on('data', (chunk: unknown) => {
    chunks.push(chunk as Buffer);
  });
  const ended = new Promise<void>((resolve) => p.on('end', () => resolve()));
  for (const e of entries) {
    const type = e.type ?? (e.body === undefined ? 'directory' : 'file');
    const header = { name: e.name, type, mode: type === 'directory' ? 0o755 : 0o644, ...(e.linkname ? { linkname: e.linkname } : {}) };
    await new Promise<void>((resolve, reject) => {
      const cb = (err?: Error | null): void => (err ? reject(err) : resolve());
      if (type === 'file') p.entry(header, e.body ?? '', cb);
      else p.entry(header, cb);
    });
  }
  p.finalize();
  await ended;
  return Buffer.concat(chunks);
}

/** A well-formed ACI's entries, plus or minus some. */
function aciEntries(extra: Entry[] = [], manifest: string | Buffer = GOOD_MANIFEST): Entry[] {
  return [{ name: 'rootfs' }, { name: 'rootfs/etc' }, { name: 'rootfs/etc/hostname', body: 'pod\n' }, ...extra, { name: 'manifest', body: manifest }];
}

function chunked(data: Buffer, size = 64 * 1024): Readable {
  const chunks: Buffer[] = [];
  for (let i = 0; i < data.length; i += size) chunks.push(data.subarray(i, i + size));
  return Readable.from(chunks);
}

/** Reads `data` expecting a refusal; returns the error after checking that tmpDir is empty. */
async function refused(data: Buffer, extra: Partial<AciReadOptions> = {}): Promise<Error> {
  const err = await readAci(chunked(data), options(extra)).then(
    () => undefined,
    (e: unknown) => e as Error,
  );
  expect(err, 'readAci should have failed').toBeInstanceOf(Error);
  expect(fs.readdirSync(tmpDir)).toEqual([]);
  return err as Error;
}

async function entryNames(tarBytes: Buffer): Promise<string[]> {
  const names: string[] = [];
  const ex = extract();
  ex.on('entry', (header, stream, next) => {
    names.push(header.name);
    stream.on('end', () => next());
    stream.resume();
  });
  const finished = new Promise<void>((resolve, reject) => {
    ex.on('finish', () => resolve());
    ex.on('error', reject);
  });
  ex.end(tarBytes);
  await finished;
  return names;
}

describe.each(COMPRESSIONS)('readAci of fixtures built by actool (%s)', (compress) => {
  it.each(FIXTURE_CASES)('reads %s: id is sha512sum of the uncompressed tar, temp file holds that tar', async (name) => {
    const file = built[compress]?.[name] as string;
    const expected = shell(`${DECOMPRESS_CMD[compress]} '${file}' | sha512sum`).split(' ')[0];
    const expectedSize = Number(shell(`${DECOMPRESS_CMD[compress]} '${file}' | wc -c`).trim());
    const result = await readAci(fs.createReadStream(file), options({ what: file }));
    expect(result.id).toBe(`sha512-${expected}`);
    expect(result.id).toMatch(/^sha512-[0-9a-f]{128}$/);
    expect(result.format).toBe(compress === 'none' ? 'tar' : compress);
    expect(result.size).toBe(expectedSize);
    expect(path.dirname(result.tmpTarPath)).toBe(tmpDir);
    expect(path.basename(result.tmpTarPath)).toMatch(/^aci-[0-9a-f]+\.tar$/);
    expect(shell(`sha512sum '${result.tmpTarPath}'`).split(' ')[0]).toBe(expected);
    const source = JSON.parse(fs.readFileSync(path.join(FIXTURE_SOURCES, name, 'manifest'), 'utf8')) as ImageManifest;
    expect(result.manifest.name).toBe(source.name);
    expect(JSON.parse(result.manifestBytes.toString()).name).toBe(source.name);
  });
});

describe('readAci', () => {
  it('accepts the manifest as the last entry, where actool writes it', async () => {
    const file = built.none?.demo as string;
    const names = await entryNames(fs.readFileSync(file));
    expect(names.at(-1)).toBe('manifest');
    const result = await readAci(fs.createReadStream(file), options());
    expect(result.manifest.name).toBe('tspod.dev/demo');
  });

  it('accepts the manifest as the first entry too', async () => {
    const entries = aciEntries();
    const manifest = entries.pop() as Entry;
    const result = await readAci(chunked(await packTar([manifest, ...entries])), options());
    expect(result.manifest.name).toBe('example.com/test');
  });

  it('accepts names written ./rootfs/x and directories with a trailing slash', async () => {
    const data = await packTar([
      { name: './' },
      { name: './rootfs/' },
      { name: './rootfs/bin/' },
      { name: './rootfs/bin/tool', body: 'x' },
      { name: './manifest', body: GOOD_MANIFEST },
    ]);
    const result = await readAci(chunked(data), options());
    expect(result.manifest.name).toBe('example.com/test');
    expect(result.size).toBe(data.length);
  });

  it('accepts hard links, symlinks and device nodes under rootfs/', async () => {
    const data = await packTar(
      aciEntries([
        { name: 'rootfs/etc/hosts', type: 'link', linkname: 'rootfs/etc/hostname' },
        { name: 'rootfs/etc/localtime', type: 'symlink', linkname: '/usr/share/zoneinfo/UTC' },
        { name: 'rootfs/null', type: 'character-device' },
        { name: 'rootfs/fifo', type: 'fifo' },
      ]),
    );
    await expect(readAci(chunked(data), options())).resolves.toMatchObject({ format: 'tar' });
  });

  it('reports progress in input bytes (compressed for gzip, the tar for plain)', async () => {
    for (const compress of ['gzip', 'none'] as const) {
      const file = built[compress]?.base as string;
      let last = 0;
      const result = await readAci(fs.createReadStream(file), options({ onProgress: (n) => (last = n) }));
      expect(last).toBe(fs.statSync(file).size);
      fs.rmSync(result.tmpTarPath);
    }
  });

  it('fsyncs and closes the temp file: it is complete once readAci resolves', async () => {
    const data = await packTar(aciEntries());
    const result = await readAci(chunked(data), options());
    expect(fs.readFileSync(result.tmpTarPath).equals(data)).toBe(true);
    expect(result.id).toBe(`sha512-${crypto.createHash('sha512').update(data).digest('hex')}`);
  });
});

describe('readAci refuses malformed archives and leaves no temp file', () => {
  it('refuses an archive without a manifest', async () => {
    const err = await refused(await packTar(aciEntries().slice(0, -1)));
    expect(err).toBeInstanceOf(ImageFormatError);
    expect(err.message).toBe('read test.aci: invalid image archive: no manifest (an ACI holds a manifest file and a rootfs directory)');
  });

  it('refuses an archive without a rootfs directory', async () => {
    const err = await refused(await packTar([{ name: 'manifest', body: GOOD_MANIFEST }]));
    expect(err.message).toBe('read test.aci: invalid image archive: no rootfs directory');
  });

  it('refuses a rootfs that is a file', async () => {
    const err = await refused(await packTar([{ name: 'rootfs', body: 'x' }, { name: 'manifest', body: GOOD_MANIFEST }]));
    expect(err.message).toMatch(/rootfs is a file, not a directory/);
  });

  it('refuses a file outside rootfs (etc/passwd at the top level)', async () => {
    const err = await refused(await packTar(aciEntries([{ name: 'etc/passwd', body: 'root:x:0:0::/:/bin/sh\n' }])));
    expect(err).toBeInstanceOf(ImageFormatError);
    expect(err.message).toBe('read test.aci: invalid image archive: entry "etc/passwd" is outside rootfs/');
  });

  it('refuses rootfsX/ entries (the string-prefix bug of aci/layout.go)', async () => {
    const err = await refused(await packTar(aciEntries([{ name: 'rootfsX' }, { name: 'rootfsX/evil', body: 'x' }])));
    expect(err.message).toMatch(/entry "rootfsX" is outside rootfs\//);
  });

  it.each(['rootfs/../escape', '../escape', '/rootfs/absolute'])('refuses the entry name %s', async (name) => {
    const err = await refused(await packTar(aciEntries([{ name, body: 'x' }])));
    expect(err.message).toMatch(/is outside rootfs\//);
  });

  it('refuses a hard link to a file outside rootfs (the manifest)', async () => {
    const err = await refused(await packTar(aciEntries([{ name: 'rootfs/m', type: 'link', linkname: 'manifest' }])));
    expect(err.message).toMatch(/hard link "rootfs\/m" points outside rootfs\//);
  });

  it('refuses a duplicate entry', async () => {
    const err = await refused(await packTar(aciEntries([{ name: 'rootfs/etc/hostname', body: 'other\n' }])));
    expect(err.message).toBe('read test.aci: invalid image archive: duplicate entry "rootfs/etc/hostname"');
  });

  it('refuses a duplicate that differs only in spelling (./rootfs/etc/ and rootfs/etc)', async () => {
    const err = await refused(await packTar(aciEntries([{ name: './rootfs/etc/' }])));
    expect(err.message).toMatch(/duplicate entry "rootfs\/etc"/);
  });

  it('refuses two manifests', async () => {
    const err = await refused(await packTar([{ name: 'manifest', body: GOOD_MANIFEST }, ...aciEntries()]));
    expect(err.message).toMatch(/duplicate entry "manifest"/);
  });

  it('refuses a manifest over the default size cap of 1 MiB without buffering it', async () => {
    const big = JSON.stringify({ acKind: 'ImageManifest', acVersion: '0.8.11', name: 'a', pad: 'x'.repeat(1 << 20) });
    const err = await refused(await packTar(aciEntries([], big)));
    expect(err.message).toMatch(/manifest is \d+ bytes, more than the limit of 1048576/);
  });

  it('refuses a manifest over a configured cap', async () => {
    const err = await refused(await packTar(aciEntries()), { maxManifestSize: 16 });
    expect(err.message).toMatch(/more than the limit of 16/);
  });

  it('refuses a manifest that is a directory or a symlink', async () => {
    const asDir = await refused(await packTar([{ name: 'rootfs' }, { name: 'manifest' }]));
    expect(asDir.message).toMatch(/manifest is a directory, not a regular file/);
    const asLink = await refused(await packTar([{ name: 'rootfs' }, { name: 'manifest', type: 'symlink', linkname: '/etc/passwd' }]));
    expect(asLink.message).toMatch(/manifest is a symlink, not a regular file/);
  });

  it('refuses a manifest that is not JSON (ValidationError from the validator)', async () => {
    const err = await refused(await packTar(aciEntries([], '{"acKind": "ImageManifest", ')));
    expect(err).toBeInstanceOf(ValidationError);
  });

  it('refuses a manifest without a name (ValidationError passes through)', async () => {
    const err = await refused(await packTar(aciEntries([], JSON.stringify({ acKind: 'ImageManifest', acVersion: '0.8.11' }))));
    expect(err).toBeInstanceOf(ValidationError);
    expect(err.message).toMatch(/name/);
  });

  it('wraps a validator that throws a plain error', async () => {
    const err = await refused(await packTar(aciEntries()), {
      validateManifest: () => {
        throw new TypeError('boom');
      },
    });
    expect(err).toBeInstanceOf(ImageFormatError);
    expect(err.message).toBe('read test.aci: invalid manifest: boom');
  });

  it('refuses a truncated gzip ACI (not a silent short read)', async () => {
    const gz = fs.readFileSync(built.gzip?.demo as string);
    const err = await refused(gz.subarray(0, Math.floor(gz.length * 0.6)));
    expect(err).toBeInstanceOf(ImageFormatError);
    expect(err.message).toMatch(/^read test.aci: corrupt gzip data: unexpected end of file/);
  });

  it.each(['xz', 'bzip2'] as const)('refuses a truncated %s ACI', async (compress) => {
    const data = fs.readFileSync(built[compress]?.demo as string);
    const err = await refused(data.subarray(0, Math.floor(data.length * 0.6)));
    expect(err.message).toMatch(new RegExp(`^read test.aci: corrupt ${compress} data`));
  });

  it('refuses a truncated plain tar', async () => {
    const data = fs.readFileSync(built.none?.demo as string);
    const err = await refused(data.subarray(0, 700_000));
    expect(err.message).toBe('read test.aci: corrupt tar archive: unexpected end of data');
  });

  it('refuses a tar with a corrupt header checksum', async () => {
    const data = Buffer.from(await packTar(aciEntries()));
    data[1024 + 10] = 0x41; // a name byte of the third header (rootfs/etc/hostname follows two dir headers)
    const err = await refused(data);
    expect(err.message).toMatch(/^read test.aci: corrupt tar archive: invalid tar header/);
  });

  it('refuses an unknown format', async () => {
    const err = await refused(Buffer.from('not an image at all\n'.repeat(100)));
    expect(err.message).toBe('read test.aci: unknown image format (not tar, gzip, bzip2 or xz)');
  });

  it('passes on an error of the input stream', async () => {
    const gz = zlib.gzipSync(await packTar(aciEntries([{ name: 'rootfs/big', body: crypto.randomBytes(400_000) }])));
    let reads = 0;
    const failing = new Readable({
      read() {
        if (reads++ === 0) this.push(gz.subarray(0, 200_000));
        else setTimeout(() => this.destroy(new Error('connection reset by peer')), 5);
      },
    });
    const err = await readAci(failing, options()).catch((e: unknown) => e as Error);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toMatch(/connection reset by peer/);
    expect(fs.readdirSync(tmpDir)).toEqual([]);
  });

  it('fails cleanly when the temp dir does not exist (ENOENT)', async () => {
    const missing = path.join(tmpDir, 'missing');
    const err = await readAci(chunked(await packTar(aciEntries())), options({ tmpDir: missing })).catch((e: unknown) => e as Error);
    expect((err as Error).message).toMatch(/^read test.aci: ENOENT/);
    expect(fs.readdirSync(tmpDir)).toEqual([]);
  });
});

describe('readAci memory', () => {
  it('reads a 50 MB gzip image with RSS growth well below the image size', async () => {
    const tarPath = path.join(root, 'big.tar');
    const p = pack();
    const out = fs.createWriteStream(tarPath);
    p.pipe(out);
    p.entry({ name: 'rootfs', type: 'directory' });
    const block = crypto.randomBytes(1 << 20);
    const size = 50 << 20;
    const body = p.entry({ name: 'rootfs/big', size, type: 'file' });
    for (let i = 0; i < 50; i++) {
      if (!body.write(block)) await new Promise<void>((resolve) => body.once('drain', () => resolve()));
    }
    body.end(undefined);
    p.entry({ name: 'manifest' }, GOOD_MANIFEST);
    p.finalize();
    await new Promise<void>((resolve) => out.on('close', () => resolve()));
    execFileSync('gzip', ['-1', tarPath]);
    const gzPath = `${tarPath}.gz`;

    // Collect garbage before each sample, so that RSS shows what readAci holds, not the 1 MiB
    // chunks V8 has not freed yet (external memory is collected only every few tens of MB).
    v8.setFlagsFromString('--expose-gc');
    const gc = vm.runInNewContext('gc') as () => void;
    gc();
    const baseline = process.memoryUsage().rss;
    let peak = baseline;
    let samples = 0;
    const result = await readAci(fs.createReadStream(gzPath, { highWaterMark: 1 << 20 }), {
      ...options(),
      onProgress: () => {
        gc();
        samples++;
        peak = Math.max(peak, process.memoryUsage().rss);
      },
    });
    expect(result.size).toBeGreaterThan(size);
    expect(samples).toBeGreaterThan(40);
    const growth = peak - baseline;
    expect(growth, `rss grew by ${(growth / 1e6).toFixed(1)} MB`).toBeLessThan(size / 4);
    fs.rmSync(result.tmpTarPath);
    fs.rmSync(gzPath);
  });
});
