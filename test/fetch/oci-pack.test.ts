// writeAci (src/fetch/oci-pack.ts): the ACI written from an applied tree is what readAci reads
// (same sha512 id, same size, manifest found), GNU tar lists it, long names and link targets
// travel in pax records, hardlinks stay links, and the same tree always gives the same id.
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { readAci } from '../../src/image/aci-reader.js';
import { extractTar } from '../../src/image/extract.js';
import { createdOf, writeAci } from '../../src/fetch/oci-pack.js';
import { libcSyscalls } from '../../src/sys/index.js';
import { scratchDirs } from '../support/scratch.js';

const { freshDir, cleanup } = scratchDirs('oci-pack');
afterAll(cleanup);

const MANIFEST = Buffer.from(JSON.stringify({ acKind: 'ImageManifest', acVersion: '0.8.11', name: 'example.com/packed' }));
const CREATED = new Date('2024-05-06T07:08:09Z');
const LONG_DIR = `deep/${'d'.repeat(90)}/${'e'.repeat(90)}`;

/** A tree with what an applied OCI image holds: dirs, files, a symlink, a hardlink, long names. */
function makeTree(): string {
  const root = path.join(freshDir(), 'rootfs');
  fs.mkdirSync(path.join(root, 'bin'), { recursive: true });
  fs.mkdirSync(path.join(root, LONG_DIR), { recursive: true });
  fs.writeFileSync(path.join(root, 'bin/tool'), '#!/bin/sh\necho hi\n', { mode: 0o755 });
  fs.linkSync(path.join(root, 'bin/tool'), path.join(root, 'bin/hard'));
  fs.symlinkSync(`/${'t'.repeat(150)}`, path.join(root, 'bin/long-link'));
  fs.writeFileSync(path.join(root, LONG_DIR, 'file-with-a-long-name'), crypto.randomBytes(5 << 20));
  fs.writeFileSync(path.join(root, 'empty'), '');
  fs.utimesSync(path.join(root, 'bin/tool'), 1_600_000_000, 1_600_000_000);
  return root;
}

describe('writeAci', () => {
  it('writes an ACI that readAci reads with the same id and size, and GNU tar lists', async () => {
    const root = makeTree();
    const tmp = freshDir();
    const packed = await writeAci(MANIFEST, root, CREATED, tmp, libcSyscalls);
    expect(packed.id).toMatch(/^sha512-[0-9a-f]{128}$/);
    expect(packed.size).toBe(fs.statSync(packed.tmpTarPath).size);
    expect(packed.size % 512).toBe(0);
    const expectedId = `sha512-${crypto.createHash('sha512').update(fs.readFileSync(packed.tmpTarPath)).digest('hex')}`;
    expect(packed.id).toBe(expectedId);

    const read = await readAci(fs.createReadStream(packed.tmpTarPath), { tmpDir: tmp, what: 'packed', validateManifest: (b) => JSON.parse(b.toString()) as never });
    expect(read.id).toBe(packed.id);
    expect(Buffer.from(read.manifestBytes).equals(MANIFEST)).toBe(true);
    fs.rmSync(read.tmpTarPath);

    const listing = execFileSync('tar', ['-tvf', packed.tmpTarPath], { encoding: 'utf8' });
    expect(listing).toContain(`rootfs/${LONG_DIR}/file-with-a-long-name`);
    expect(listing).toMatch(/rootfs\/bin\/hard link to rootfs\/bin\/tool|rootfs\/bin\/tool link to rootfs\/bin\/hard/);
    expect(listing).toContain(`-> /${'t'.repeat(150)}`);
  });

  it('extracts back to the same tree; directories carry the creation time', async () => {
    const root = makeTree();
    const packed = await writeAci(MANIFEST, root, CREATED, freshDir(), libcSyscalls);
    const out = freshDir();
    await extractTar(fs.createReadStream(packed.tmpTarPath), out, { sys: libcSyscalls, prefix: 'rootfs', privileged: false });
    const big = path.join(LONG_DIR, 'file-with-a-long-name');
    expect(fs.readFileSync(path.join(out, big)).equals(fs.readFileSync(path.join(root, big)))).toBe(true);
    expect(fs.statSync(path.join(out, 'bin/hard')).ino).toBe(fs.statSync(path.join(out, 'bin/tool')).ino);
    expect(fs.statSync(path.join(out, 'bin/tool')).mode & 0o777).toBe(0o755);
    expect(fs.statSync(path.join(out, 'bin/tool')).mtimeMs).toBe(1_600_000_000_000);
    expect(fs.statSync(path.join(out, 'bin')).mtimeMs).toBe(CREATED.getTime());
    expect(fs.readlinkSync(path.join(out, 'bin/long-link'))).toBe(`/${'t'.repeat(150)}`);
    expect(fs.statSync(path.join(out, 'empty')).size).toBe(0);
  });

  it('gives the same id for the same tree, another for a changed byte', async () => {
    const root = makeTree();
    const first = await writeAci(MANIFEST, root, CREATED, freshDir(), libcSyscalls);
    fs.utimesSync(root, new Date(), new Date()); // directory times do not count
    const second = await writeAci(MANIFEST, root, CREATED, freshDir(), libcSyscalls);
    expect(second.id).toBe(first.id);
    fs.appendFileSync(path.join(root, 'empty'), 'x');
    const third = await writeAci(MANIFEST, root, CREATED, freshDir(), libcSyscalls);
    expect(third.id).not.toBe(first.id);
  });

  it('removes its file when packing fails', async () => {
    const tmp = freshDir();
    await expect(writeAci(MANIFEST, path.join(tmp, 'missing'), CREATED, tmp, libcSyscalls)).rejects.toThrow(/ENOENT/);
    expect(fs.readdirSync(tmp)).toEqual([]);
  });

  it('createdOf: the config time, or the epoch', () => {
    expect(createdOf({ created: '2024-05-06T07:08:09Z' } as never).getTime()).toBe(CREATED.getTime());
    expect(createdOf({} as never).getTime()).toBe(0);
  });
});
