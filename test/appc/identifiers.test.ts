import { createHash } from 'node:crypto';

import { describe, expect, it } from 'vitest';

import {
  hexOfImageId,
  imageIdFromHex,
  isACIdentifier,
  isACName,
  isImageId,
  isImageIdPrefix,
  sanitizeACName,
  shortImageId,
} from '../../src/appc/index.js';
import { ValidationError } from '../../src/errors.js';

const HEX = createHash('sha512').update('tspod').digest('hex');
const ID = `sha512-${HEX}`;

describe('isACIdentifier', () => {
  it.each(['example.com/app', 'a', 'coreos.com/etcd', 'a-b.c_d~e/f', 'os', '0'])('accepts %s', (s) => {
    expect(isACIdentifier(s)).toBe(true);
  });
  it.each([
    ['', 'empty'],
    ['Example.com', 'uppercase'],
    ['example.com//app', 'consecutive separators (spec regex; actool accepts)'],
    ['-app', 'leading separator'],
    ['app/', 'trailing separator'],
    ['app name', 'a space'],
    ['app:1.0', 'a colon'],
  ])('rejects "%s" (%s)', (s) => {
    expect(isACIdentifier(s)).toBe(false);
  });
  it('rejects a non-string (42)', () => expect(isACIdentifier(42)).toBe(false));
});

describe('isACName', () => {
  it.each(['app', 'my-app', 'a1-b2-c3'])('accepts %s', (s) => expect(isACName(s)).toBe(true));
  it.each(['', 'My-App', 'my_app', 'my.app', 'a--b', '-a', 'a-', 'example.com/app'])('rejects "%s"', (s) => {
    expect(isACName(s)).toBe(false);
  });
});

describe('sanitizeACName (app names from image names, rkt rule)', () => {
  it.each([
    ['example.com/reduce-worker', 'reduce-worker'],
    ['coreos.com/etcd', 'etcd'],
    ['example.com/My_App.v2', 'my-app-v2'],
    ['example.com/app..name', 'app-name'],
    ['example.com/_app_', 'app'],
    ['plain', 'plain'],
  ])('%s -> %s', (input, output) => {
    expect(sanitizeACName(input)).toBe(output);
    expect(isACName(sanitizeACName(input))).toBe(true);
  });
  it('throws ValidationError when nothing valid remains ("example.com/___")', () => {
    expect(() => sanitizeACName('example.com/___')).toThrow(ValidationError);
  });
});

describe('image ids', () => {
  it('isImageId accepts sha512- and 128 lowercase hex digits', () => expect(isImageId(ID)).toBe(true));
  it.each([
    ['a short prefix', `sha512-${HEX.slice(0, 32)}`],
    ['uppercase hex', `sha512-${HEX.toUpperCase()}`],
    ['sha256', `sha256-${HEX.slice(0, 64)}`],
    ['129 digits', `${ID}0`],
    ['no algorithm', HEX],
  ])('isImageId rejects %s', (_what, s) => expect(isImageId(s)).toBe(false));

  it('isImageIdPrefix accepts 1 to 128 hex digits', () => {
    expect(isImageIdPrefix('sha512-a')).toBe(true);
    expect(isImageIdPrefix(ID)).toBe(true);
  });
  it.each(['sha512-', `${ID}0`, 'sha512-xyz', 'abc'])('isImageIdPrefix rejects "%s"', (s) => {
    expect(isImageIdPrefix(s)).toBe(false);
  });

  it('shortImageId keeps sha512- and the first 32 hex digits', () => {
    expect(shortImageId(ID)).toBe(`sha512-${HEX.slice(0, 32)}`);
    expect(shortImageId('sha512-abc')).toBe('sha512-abc');
  });
  it('shortImageId rejects a non-id ("latest")', () => expect(() => shortImageId('latest')).toThrow(ValidationError));

  it('imageIdFromHex and hexOfImageId round-trip a sha512 digest', () => {
    expect(imageIdFromHex(HEX)).toBe(ID);
    expect(hexOfImageId(ID)).toBe(HEX);
  });
  it('imageIdFromHex rejects a sha256 digest (64 digits)', () => {
    expect(() => imageIdFromHex(HEX.slice(0, 64))).toThrow(/128 lowercase hex digits/);
  });
  it('hexOfImageId rejects a short id (sha512-abc)', () => {
    expect(() => hexOfImageId('sha512-abc')).toThrow(ValidationError);
  });
});
