// Normal behaviour of extractTar: contents, modes, owners, mtimes, xattrs, links, overwrite
// (rendering), prefix and filter, chunking, and archives written by GNU tar.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';

import { afterAll, describe, expect, it } from 'vitest';

import { EOF, entry, pax } from '../../fixtures/hostile/make-corpus.js';
import { ImageFormatError } from '../../src/errors.js';
import { extractTar, type ExtractOptions } from '../../src/image/extract.js';
import { libcSyscalls } from '../../src/sys/index.js';
import { scratchDirs } from '../support/scratch.js';
import { tarOf } from '../support/tar.js';

const isRoot = process.geteuid?.() === 0;
const { freshDir, cleanup } = scratchDirs('extract');
afterAll(cleanup);


async function extract(archive: Buffer, target: string, options: Partial<ExtractOptions> = {}) {
  return extractTar(Readable.from([archive]), target, { sys: libcSyscalls, privileged: false, ...options });
}

describe('extractTar', () => {
  it('writes files, directories and their modes; directory modes and mtimes are applied last', async () => {
    const target = freshDir();
    const archive = await tarOf([
      { name: 'etc', type: 'directory', mode: 0o750, mtime: new Date(1_000_000_000_000) },
      { name: 'etc/conf', mode: 0o640, content: 'a=1\n', mtime: new Date(1_200_000_000_000) },
      { name: 'bin', type: 'directory', mode: 0o555, mtime: new Date(1_100_000_000_000) },
      { name: 'bin/tool', mode: 0o755, content: '#!/bin/sh\n' },
    ]);
    const result = await extract(archive, target);
    expect(result.entries).toBe(4);
    expect(result.bytes).toBe(14);
    expect(fs.readFileSync(path.join(target, 'etc/conf'), 'utf8')).toBe('a=1\n');
    expect(fs.statSync(path.join(target, 'etc')).mode & 0o7777).toBe(0o750);
    expect(fs.statSync(path.join(target, 'etc/conf')).mode & 0o7777).toBe(0o640);
    expect(fs.statSync(path.join(target, 'bin')).mode & 0o7777).toBe(0o555);
    expect(fs.statSync(path.join(target, 'bin/tool')).mode & 0o7777).toBe(0o755);
    // written into after its entry, yet it has the archive's mtime
    expect(fs.statSync(path.join(target, 'etc')).mtimeMs).toBe(1_000_000_000_000);
    expect(fs.statSync(path.join(target, 'bin')).mtimeMs).toBe(1_100_000_000_000);
    expect(fs.statSync(path.join(target, 'etc/conf')).mtimeMs).toBe(1_200_000_000_000);
    expect(result.paths).toEqual(
      new Map([
        ['', 'directory'],
        ['etc', 'directory'],
        ['etc/conf', 'file'],
        ['bin', 'directory'],
        ['bin/tool', 'file'],
      ]),
    );
  });

  it('creates missing parent directories 0755', async () => {
    const target = freshDir();
    await extract(await tarOf([{ name: 'a/b/c/file', content: 'x' }]), target);
    expect(fs.statSync(path.join(target, 'a/b')).mode & 0o7777).toBe(0o755);
    expect(fs.readFileSync(path.join(target, 'a/b/c/file'), 'utf8')).toBe('x');
  });

  it.skipIf(!isRoot)('keeps uid/gid and setuid when privileged (needs root for chown)', async () => {
    const target = freshDir();
    await extract(
      await tarOf([
        { name: 'd', type: 'directory', uid: 1234, gid: 5678, mode: 0o2755 },
        { name: 'd/su', uid: 1000, gid: 1001, mode: 0o4750, content: 'x' },
        { name: 'lnk', type: 'symlink', linkname: 'd/su', uid: 42, gid: 43 },
      ]),
      target,
      { privileged: true },
    );
    const d = fs.lstatSync(path.join(target, 'd'));
    expect([d.uid, d.gid, d.mode & 0o7777]).toEqual([1234, 5678, 0o2755]);
    const su = fs.lstatSync(path.join(target, 'd/su'));
    expect([su.uid, su.gid, su.mode & 0o7777]).toEqual([1000, 1001, 0o4750]);
    const lnk = fs.lstatSync(path.join(target, 'lnk'));
    expect([lnk.uid, lnk.gid]).toEqual([42, 43]);
  });

  it.skipIf(!isRoot)('sets the archive group on files inside a setgid directory (needs root for chown)', async () => {
    const target = freshDir();
    fs.chownSync(target, 0, 4321);
    fs.chmodSync(target, 0o2755);
    await extract(await tarOf([{ name: 'f', uid: 0, gid: 0, content: 'x' }, { name: 'd/g', uid: 0, gid: 0, content: 'y' }]), target, { privileged: true });
    // mkdir/open in a setgid directory take its group (4321): the archive says 0
    expect(fs.lstatSync(path.join(target, 'f')).gid).toBe(0);
    expect(fs.lstatSync(path.join(target, 'd/g')).gid).toBe(0);
  });

  it('ignores owners and drops setuid/setgid when unprivileged', async () => {
    const target = freshDir();
    await extract(await tarOf([{ name: 'su', uid: 1000, gid: 1001, mode: 0o6755, content: 'x' }]), target, { privileged: false });
    const st = fs.lstatSync(path.join(target, 'su'));
    expect(st.uid).toBe(process.geteuid?.());
    expect(st.mode & 0o7777).toBe(0o755);
  });

  it.skipIf(!isRoot)('applies SCHILY.xattr records, user.* and security.capability (needs root)', async () => {
    const target = freshDir();
    // struct vfs_cap_data revision 2: magic|effective, permitted/inheritable low and high words.
    const cap = Buffer.alloc(20);
    cap.writeUInt32LE(0x02000001, 0);
    cap.writeUInt32LE(1 << 10, 4); // CAP_NET_BIND_SERVICE
    const archive = Buffer.concat([
      pax([
        ['SCHILY.xattr.user.origin', 'tspod-test'],
        ['SCHILY.xattr.security.capability', cap],
      ]),
      entry({ name: 'ping', mode: 0o755, uid: 1000, gid: 1000 }, 'elf'),
      pax([['SCHILY.xattr.user.dir', Buffer.from([0, 1, 2, 255])]]),
      entry({ name: 'd/', typeflag: '5', mode: 0o755 }),
      EOF,
    ]);
    await extract(archive, target, { privileged: true });
    expect(libcSyscalls.lgetxattr(path.join(target, 'ping'), 'user.origin')?.toString()).toBe('tspod-test');
    // chown(2) clears security.capability, so it must be set after the owner
    expect(libcSyscalls.lgetxattr(path.join(target, 'ping'), 'security.capability')).toEqual(cap);
    expect(libcSyscalls.lgetxattr(path.join(target, 'd'), 'user.dir')).toEqual(Buffer.from([0, 1, 2, 255]));
  });

  it('skips xattrs with a warning when unprivileged', async () => {
    const target = freshDir();
    const warnings: string[] = [];
    await extract(Buffer.concat([pax([['SCHILY.xattr.user.a', 'b']]), entry({ name: 'f' }, 'x'), EOF]), target, { onWarning: (m) => warnings.push(m) });
    expect(libcSyscalls.lgetxattr(path.join(target, 'f'), 'user.a')).toBeUndefined();
    expect(warnings.join('\n')).toContain('extended attributes');
  });

  it('makes hardlinks inside the tree share the inode', async () => {
    const target = freshDir();
    await extract(
      await tarOf([
        { name: 'bin/busybox', mode: 0o755, content: 'bb' },
        { name: 'bin/sh', type: 'link', linkname: 'bin/busybox' },
        { name: 'usr/bin/ls', type: 'link', linkname: './bin/sh' },
      ]),
      target,
    );
    const ino = fs.statSync(path.join(target, 'bin/busybox')).ino;
    expect(fs.statSync(path.join(target, 'bin/sh')).ino).toBe(ino);
    expect(fs.statSync(path.join(target, 'usr/bin/ls')).ino).toBe(ino);
    expect(fs.statSync(path.join(target, 'bin/busybox')).nlink).toBe(3);
  });

  it('keeps symlink targets verbatim, absolute and dangling ones included', async () => {
    const target = freshDir();
    await extract(
      await tarOf([
        { name: 'lib', type: 'symlink', linkname: 'usr/lib' },
        { name: 'etc/mtab', type: 'symlink', linkname: '/proc/self/mounts' },
        { name: 'up', type: 'symlink', linkname: '../../..' },
      ]),
      target,
    );
    expect(fs.readlinkSync(path.join(target, 'lib'))).toBe('usr/lib');
    expect(fs.readlinkSync(path.join(target, 'etc/mtab'))).toBe('/proc/self/mounts');
    expect(fs.readlinkSync(path.join(target, 'up'))).toBe('../../..');
  });

  it('with overwrite replaces files and symlinks of an earlier layer and merges directories', async () => {
    const target = freshDir();
    await extract(
      await tarOf([
        { name: 'etc', type: 'directory', mode: 0o755 },
        { name: 'etc/keep', content: 'lower' },
        { name: 'etc/replace', content: 'lower', mode: 0o600 },
        { name: 'lib', type: 'symlink', linkname: '/' },
        { name: 'var', type: 'directory' },
        { name: 'var/old', content: 'gone' },
        { name: 'tolink', content: 'file' },
      ]),
      target,
    );
    await extract(
      await tarOf([
        { name: 'etc', type: 'directory', mode: 0o700 },
        { name: 'etc/replace', content: 'upper', mode: 0o644 },
        { name: 'lib', type: 'directory' },
        { name: 'lib/x', content: 'inside' },
        { name: 'var', type: 'symlink', linkname: 'tmp' },
        { name: 'tolink', type: 'symlink', linkname: '/etc/passwd' },
      ]),
      target,
      { overwrite: true },
    );
    expect(fs.readFileSync(path.join(target, 'etc/keep'), 'utf8')).toBe('lower');
    expect(fs.readFileSync(path.join(target, 'etc/replace'), 'utf8')).toBe('upper');
    expect(fs.statSync(path.join(target, 'etc/replace')).mode & 0o777).toBe(0o644);
    expect(fs.statSync(path.join(target, 'etc')).mode & 0o777).toBe(0o700);
    expect(fs.lstatSync(path.join(target, 'lib')).isDirectory()).toBe(true);
    expect(fs.readFileSync(path.join(target, 'lib/x'), 'utf8')).toBe('inside');
    expect(fs.readlinkSync(path.join(target, 'var'))).toBe('tmp');
    expect(fs.readlinkSync(path.join(target, 'tolink'))).toBe('/etc/passwd');
  });

  it('without overwrite refuses a path that already exists', async () => {
    const target = freshDir();
    fs.writeFileSync(path.join(target, 'f'), 'there');
    await expect(extract(await tarOf([{ name: 'f', content: 'x' }]), target)).rejects.toThrow(/extract f: f already exists/);
  });

  it('with overwrite writes into a read-only directory of an earlier layer and restores its mode', async () => {
    const target = freshDir();
    await extract(await tarOf([{ name: 'ro', type: 'directory', mode: 0o555 }]), target);
    await extract(await tarOf([{ name: 'ro/new', content: 'x' }]), target, { overwrite: true });
    expect(fs.readFileSync(path.join(target, 'ro/new'), 'utf8')).toBe('x');
    expect(fs.statSync(path.join(target, 'ro')).mode & 0o777).toBe(0o555);
  });

  it('with a prefix extracts only rootfs/ and strips it', async () => {
    const target = freshDir();
    const result = await extract(
      await tarOf([
        { name: 'manifest', content: '{}' },
        { name: 'rootfs', type: 'directory', mode: 0o755 },
        { name: 'rootfs/etc/hostname', content: 'pod\n' },
        { name: 'rootfsX/evil', content: 'no' },
      ]),
      target,
      { prefix: 'rootfs/' },
    );
    expect(fs.readdirSync(target)).toEqual(['etc']);
    expect(fs.readFileSync(path.join(target, 'etc/hostname'), 'utf8')).toBe('pod\n');
    expect(result.entries).toBe(4);
    expect([...result.paths.keys()]).toEqual(['', 'etc', 'etc/hostname']);
  });

  it('asks the filter with normalized relative paths and skips what it refuses', async () => {
    const target = freshDir();
    const asked: string[] = [];
    await extract(
      await tarOf([
        { name: './rootfs/', type: 'directory' },
        { name: './rootfs/usr/', type: 'directory', mode: 0o700 },
        { name: './rootfs/usr/bin/sh', content: 'sh' },
        { name: './rootfs/usr/bin/skip', content: 'no' },
        { name: './rootfs/usr/bin/hl', type: 'link', linkname: 'rootfs/usr/bin/skip' },
      ]),
      target,
      {
        prefix: 'rootfs',
        filter: (rel, type) => {
          asked.push(`${type}:${rel}`);
          return rel !== 'usr' && rel !== 'usr/bin/skip';
        },
      },
    );
    expect(asked).toEqual(['directory:usr', 'file:usr/bin/sh', 'file:usr/bin/skip', 'link:usr/bin/hl']);
    expect(fs.readFileSync(path.join(target, 'usr/bin/sh'), 'utf8')).toBe('sh');
    expect(fs.existsSync(path.join(target, 'usr/bin/skip'))).toBe(false);
    // the filtered directory entry is not applied; the directory appears implicitly
    expect(fs.statSync(path.join(target, 'usr')).mode & 0o777).toBe(0o755);
    // a hardlink to a filtered file cannot be made: skipped
    expect(fs.existsSync(path.join(target, 'usr/bin/hl'))).toBe(false);
  });

  it('reads an archive fed in odd-sized chunks', async () => {
    const target = freshDir();
    const archive = Buffer.concat([
      pax([['path', `long/${'n'.repeat(200)}`]]),
      entry({ name: 'short' }, Buffer.alloc(3000, 0x41)),
      entry({ name: 'small' }, 'tiny'),
      EOF,
    ]);
    const chunks: Buffer[] = [];
    for (let i = 0; i < archive.length; i += 7) chunks.push(archive.subarray(i, i + 7));
    await extractTar(Readable.from(chunks), target, { sys: libcSyscalls, privileged: false });
    expect(fs.readFileSync(path.join(target, `long/${'n'.repeat(200)}`))).toEqual(Buffer.alloc(3000, 0x41));
    expect(fs.readFileSync(path.join(target, 'small'), 'utf8')).toBe('tiny');
  });

  it('extracts GNU tar archives (gnu and pax formats, long names, links) like GNU tar does', async () => {
    const src = freshDir();
    const deep = path.join(src, 'a'.repeat(60), 'b'.repeat(60), 'c'.repeat(60));
    fs.mkdirSync(deep, { recursive: true });
    fs.writeFileSync(path.join(deep, `${'f'.repeat(120)}.txt`), 'deep');
    fs.writeFileSync(path.join(src, 'héllo wörld'), 'utf8');
    fs.linkSync(path.join(src, 'héllo wörld'), path.join(src, 'hard'));
    fs.symlinkSync(`${'t'.repeat(150)}/target`, path.join(src, 'longlink'));
    for (const format of ['gnu', 'pax', 'ustar']) {
      if (format === 'ustar') {
        // ustar stores at most 155 + 100 bytes of name (split at a slash) and 100 of link target
        fs.rmSync(path.join(src, 'longlink'));
        fs.rmSync(path.join(src, 'a'.repeat(60)), { recursive: true });
        fs.mkdirSync(path.join(src, 'p'.repeat(70), 'q'.repeat(70)), { recursive: true });
        fs.writeFileSync(path.join(src, 'p'.repeat(70), 'q'.repeat(70), `${'r'.repeat(40)}.txt`), 'split');
      }
      const archive = execFileSync('tar', ['-C', src, `--format=${format}`, '-cf', '-', '.']);
      const target = freshDir();
      const result = await extract(archive, target);
      // whichever of the two names tar met second is stored as the hardlink
      expect([result.paths.get('hard'), result.paths.get('héllo wörld')].sort()).toEqual(['file', 'link']);
      const listing = (root: string) => execFileSync('find', ['.', '-printf', '%p %y %s %m %l\\n'], { cwd: root }).toString().split('\n').sort();
      expect(listing(target)).toEqual(listing(src));
      expect(fs.statSync(path.join(target, 'hard')).ino).toBe(fs.statSync(path.join(target, 'héllo wörld')).ino);
    }
  });

  it('names the entry of a bad archive in an ImageFormatError', async () => {
    const target = freshDir();
    const err = await extract(await tarOf([{ name: 'rootfs/../etc/passwd', content: 'x' }]), target, { prefix: 'rootfs/' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ImageFormatError);
    expect((err as Error).message).toBe('extract rootfs/../etc/passwd: path escapes the target');
  });

  it('refuses a target that is not a directory', async () => {
    const dir = freshDir();
    fs.writeFileSync(path.join(dir, 'file'), '');
    await expect(extract(await tarOf([]), path.join(dir, 'file'))).rejects.toThrow(/not a directory/);
  });
});
