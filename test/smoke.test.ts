import { describe, expect, it } from 'vitest';

import { describeCauseChain, TspodError } from '../src/errors.js';

describe('errors', () => {
  it('describeCauseChain lists every level of the cause chain', () => {
    const err = new TspodError('fetch ./a.aci: bad signature', { cause: new Error('inner: EIO') });
    expect(describeCauseChain(err)).toEqual(['TspodError: fetch ./a.aci: bad signature', 'Error: inner: EIO']);
  });
});
