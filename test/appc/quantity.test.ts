import { describe, expect, it } from 'vitest';

import { isQuantity, parseQuantity } from '../../src/appc/index.js';
import { ValidationError } from '../../src/errors.js';

describe('parseQuantity', () => {
  it.each([
    ['500m', 0.5],
    ['300m', 0.3],
    ['1', 1],
    ['0', 0],
    ['1.5', 1.5],
    ['.5', 0.5],
    ['1.', 1],
    ['128Mi', 128 * 2 ** 20],
    ['1Ki', 1024],
    ['1Gi', 2 ** 30],
    ['1k', 1000],
    ['1M', 1e6],
    ['1G', 1e9],
    ['2T', 2e12],
    ['1P', 1e15],
    ['1E', 1e18],
    ['1e3', 1000],
    ['5E-1', 0.5],
    ['1e+2', 100],
    ['100n', 1e-7],
    ['10u', 1e-5],
    ['-1', -1],
    ['+2k', 2000],
  ] as const)('parses "%s" as %d', (input, expected) => {
    expect(parseQuantity(input)).toBeCloseTo(expected, 12);
  });

  it('passes JSON numbers through (1024)', () => expect(parseQuantity(1024)).toBe(1024));

  it('rejects uppercase K ("512K") like the reference parser, suggesting k or Ki', () => {
    expect(() => parseQuantity('512K')).toThrow(/lowercase "k"/);
  });
  it.each(['', 'lots', '1e', '1m3', '1.2.3', '1 Gi', 'Mi', '1KiB', '0x10', '1ki'])('rejects "%s"', (input) => {
    expect(() => parseQuantity(input)).toThrow(ValidationError);
  });
  it('rejects a non-finite number (Infinity)', () => expect(() => parseQuantity(Number.POSITIVE_INFINITY)).toThrow(ValidationError));

  it('isQuantity agrees with parseQuantity', () => {
    expect(isQuantity('128Mi')).toBe(true);
    expect(isQuantity(3)).toBe(true);
    expect(isQuantity('1K')).toBe(false);
    expect(isQuantity(true)).toBe(false);
  });
});
