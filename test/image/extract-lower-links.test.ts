// extractTar's `hardlinksToTarget` (OCI layers above the first): a hardlink may name a regular
// file a lower layer left in the target. Refused: a target that is missing, not a regular file,
// reached through a symlink or a file, or outside the tree; and, without the option, any target
// that is not an earlier entry of the same archive.
import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';

import { afterAll, describe, expect, it } from 'vitest';

import { ImageFormatError } from '../../src/errors.js';
import { extractTar } from '../../src/image/extract.js';
import { libcSyscalls } from '../../src/sys/index.js';
import { scratchDirs } from '../support/scratch.js';
import { tarOf } from '../support/tar.js';

const { freshDir, cleanup } = scratchDirs('extract-lower-links');
afterAll(cleanup);

/** A target as a lower layer left it: bin/tool (a file), etc -> /etc, dir/ (a directory), file. */
function lowerLayer(): string {
  const target = freshDir();
  fs.mkdirSync(path.join(target, 'bin'));
  fs.writeFileSync(path.join(target, 'bin/tool'), 'lower\n');
  fs.symlinkSync('/etc', path.join(target, 'etc'));
  fs.mkdirSync(path.join(target, 'dir'));
  fs.writeFileSync(path.join(target, 'file'), 'f\n');
  return target;
}

async function upper(target: string, linkname: string, hardlinksToTarget = true) {
  const archive = await tarOf([{ name: 'usr/link', type: 'link', linkname }]);
  return extractTar(Readable.from([archive]), target, { sys: libcSyscalls, privileged: false, overwrite: true, hardlinksToTarget });
}

describe('extractTar hardlinksToTarget', () => {
  it('links to a regular file of a lower layer', async () => {
    const target = lowerLayer();
    const result = await upper(target, 'bin/tool');
    expect(fs.statSync(path.join(target, 'usr/link')).ino).toBe(fs.statSync(path.join(target, 'bin/tool')).ino);
    expect(result.paths.get('usr/link')).toBe('link');
  });

  it('links to a lower file named with ./ or a leading / (names are archive-relative)', async () => {
    const target = lowerLayer();
    await upper(target, '/bin/tool');
    expect(fs.statSync(path.join(target, 'usr/link')).ino).toBe(fs.statSync(path.join(target, 'bin/tool')).ino);
  });

  it.each([
    ['bin/missing', /is neither an earlier entry of the archive nor a file of a lower layer/],
    ['etc/passwd', /goes through the symlink etc/],
    ['etc', /is a symlink, not a regular file/],
    ['dir', /is a directory, not a regular file/],
    ['file/x', /goes through the file file/],
    ['../outside', /escapes the target/],
    ['bin/../../outside', /escapes the target/],
  ])('refuses a link to %s', async (linkname, message) => {
    const target = lowerLayer();
    const err = await upper(target, linkname).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ImageFormatError);
    expect((err as Error).message).toMatch(message);
    expect(fs.existsSync(path.join(target, 'usr/link'))).toBe(false);
  });

  it('without the option, a link to a file not in the archive is refused as before', async () => {
    const target = lowerLayer();
    await expect(upper(target, 'bin/tool', false)).rejects.toThrow(/is not an earlier entry of the archive/);
  });
});
