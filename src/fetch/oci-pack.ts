// Packing an applied OCI tree as an ACI (`manifest` + `rootfs/`), for the same import as local ACIs.
import fs from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';

import type { Pack } from 'tar-stream';

import type { OciImageConfig } from '../oci/convert.js';

/** The config's `created` (RFC 3339), or the epoch: a fixed time for what the layers do not date. */
export function createdOf(config: OciImageConfig): Date {
  const created = config.created === undefined ? Number.NaN : Date.parse(config.created);
  return new Date(Number.isNaN(created) ? 0 : created);
}

/**
 * Writes `manifest` and the tree under `rootfs` into `tar` (spec/aci.md "Image Archives"), in
 * sorted order so the same tree always gives the same image id. Modes, owners, symlinks and
 * hardlinks are kept (the safe extractor refused devices unless privileged; sockets and FIFOs
 * are skipped, they carry no content).
 */
export async function packAci(tar: Pack, manifestBytes: Buffer, rootfs: string, created: Date): Promise<void> {
  await addEntry(tar, { name: 'manifest', mode: 0o644, mtime: created, size: manifestBytes.length }, manifestBytes);
  const links = new Map<string, string>();
  const walk = async (abs: string, rel: string): Promise<void> => {
    const st = fs.lstatSync(abs);
    const name = rel === '' ? 'rootfs' : `rootfs/${rel}`;
    const common = { name, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, mtime: st.mtime };
    if (st.isDirectory()) {
      // A directory's mtime is the time of this extraction once a whiteout removed something in it
      // (and always for rootfs/): the image's creation time instead keeps the image id the same
      // for every fetch of the same image. Files and symlinks keep their layer mtimes.
      await addEntry(tar, { ...common, mtime: created, type: 'directory' });
      for (const child of fs.readdirSync(abs).sort()) await walk(path.join(abs, child), rel === '' ? child : `${rel}/${child}`);
    } else if (st.isSymbolicLink()) {
      await addEntry(tar, { ...common, type: 'symlink', linkname: fs.readlinkSync(abs) });
    } else if (st.isFile()) {
      const key = `${st.dev}:${st.ino}`;
      const first = st.nlink > 1 ? links.get(key) : undefined;
      if (first !== undefined) {
        await addEntry(tar, { ...common, type: 'link', linkname: first });
        return;
      }
      if (st.nlink > 1) links.set(key, name);
      await addEntry(tar, { ...common, type: 'file', size: st.size }, fs.createReadStream(abs));
    } else if (st.isCharacterDevice() || st.isBlockDevice()) {
      const rdev = st.rdev;
      await addEntry(tar, {
        ...common,
        type: st.isCharacterDevice() ? 'character-device' : 'block-device',
        devmajor: Math.floor(rdev / 256) & 0xfff,
        devminor: (rdev & 0xff) | ((Math.floor(rdev / 4096) & 0xfff00) >>> 0),
      });
    }
  };
  await walk(rootfs, '');
}

type EntryHeader = Parameters<Pack['entry']>[0];

function addEntry(tar: Pack, header: EntryHeader, body?: Buffer | Readable): Promise<void> {
  return new Promise((resolve, reject) => {
    if (body === undefined || Buffer.isBuffer(body)) {
      tar.entry(header, body ?? Buffer.alloc(0), (err) => (err ? reject(err) : resolve()));
      return;
    }
    const entry = tar.entry(header, (err) => (err ? reject(err) : resolve()));
    body.once('error', (err) => {
      entry.destroy(err);
      reject(err);
    });
    body.pipe(entry);
  });
}
