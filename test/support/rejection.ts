// The error a promise rejects with, checked to be of the expected class (and the test fails when
// the promise resolves instead).
import { expect } from 'vitest';

export async function rejection<T extends Error>(p: Promise<unknown>, type: new (...args: never[]) => T): Promise<T> {
  const err = await p.then(
    () => new Error('expected a rejection'),
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(type);
  return err as T;
}
