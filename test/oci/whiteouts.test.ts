// Whiteout naming rules (image-spec layer.md) and their removal walk, as data and on a temp tree.
import fs from 'node:fs';

import { afterAll, describe, expect, it } from 'vitest';

import { ImageFormatError } from '../../src/errors.js';
import { applyWhiteouts, parseWhiteout } from '../../src/oci/whiteouts.js';
import { scratchDirs } from '../support/scratch.js';

const { freshDir, cleanup } = scratchDirs('oci-wh');
afterAll(cleanup);

describe('parseWhiteout', () => {
  it.each([
    ['etc/passwd', undefined],
    ['.wh.foo', { kind: 'whiteout', path: 'foo' }],
    ['a/b/.wh.c', { kind: 'whiteout', path: 'a/b/c' }],
    ['a/.wh..wh..opq', { kind: 'opaque', path: 'a' }],
    ['.wh..wh..opq', { kind: 'opaque', path: '' }],
    ['a/.wh..wh.plnk', 'ignore'],
    ['a/x.wh.y', undefined],
  ])('%s', (name, expected) => expect(parseWhiteout(name)).toEqual(expected));

  it.each(['.wh.', 'a/.wh..', 'a/.wh...', 'a/.wh.b/c', '.wh..wh..opq/x'])('refuses a whiteout naming nothing or a parent, or an entry below one (%s)', (name) => {
    expect(() => parseWhiteout(name)).toThrow(ImageFormatError);
  });
});

function tree(dir: string): string[] {
  return (fs.readdirSync(dir, { recursive: true }) as string[]).sort();
}

describe('applyWhiteouts', () => {
  it('removes a whited-out file and directory but keeps what the layer created', () => {
    const dir = freshDir();
    fs.mkdirSync(`${dir}/d/sub`, { recursive: true });
    fs.writeFileSync(`${dir}/d/sub/old`, '');
    fs.writeFileSync(`${dir}/f`, '');
    fs.mkdirSync(`${dir}/o/x`, { recursive: true });
    fs.writeFileSync(`${dir}/o/lower`, '');
    fs.writeFileSync(`${dir}/o/x/lower`, '');
    fs.writeFileSync(`${dir}/o/mine`, '');
    fs.mkdirSync(`${dir}/o/x/y`);
    fs.writeFileSync(`${dir}/o/x/y/mine`, '');
    const kept = new Map([
      ['o', 'directory'],
      ['o/mine', 'file'],
      ['o/x', 'directory'],
      ['o/x/y', 'directory'],
      ['o/x/y/mine', 'file'],
    ]);
    const removed = applyWhiteouts(
      dir,
      [
        { kind: 'whiteout', path: 'd' },
        { kind: 'whiteout', path: 'f' },
        { kind: 'whiteout', path: 'missing' },
        { kind: 'opaque', path: 'o' },
      ],
      kept,
    );
    expect(tree(dir)).toEqual(['o', 'o/mine', 'o/x', 'o/x/y', 'o/x/y/mine']);
    expect(removed).toBe(4);
  });

  it('removes nothing through a lower-layer symlink (evil -> outside, evil/.wh.victim)', () => {
    const dir = freshDir();
    const outside = freshDir();
    fs.writeFileSync(`${outside}/victim`, 'keep me');
    fs.symlinkSync(outside, `${dir}/evil`);
    applyWhiteouts(dir, [{ kind: 'whiteout', path: 'evil/victim' }, { kind: 'opaque', path: 'evil' }], new Map());
    expect(fs.readFileSync(`${outside}/victim`, 'utf8')).toBe('keep me');
  });

  it('removes a whited-out symlink itself, not its target', () => {
    const dir = freshDir();
    const outside = freshDir();
    fs.writeFileSync(`${outside}/t`, 'x');
    fs.symlinkSync(outside, `${dir}/link`);
    applyWhiteouts(dir, [{ kind: 'whiteout', path: 'link' }], new Map());
    expect(fs.existsSync(`${dir}/link`)).toBe(false);
    expect(fs.readFileSync(`${outside}/t`, 'utf8')).toBe('x');
  });
});
