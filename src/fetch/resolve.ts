// Image references of `tspod run`/`prepare` to stored images, under a pull policy
// (rkt's Documentation/image-fetching-behavior.md): `never` uses the store only; `new` (the
// default) uses the store and fetches what is missing; `update` fetches first (a stored image
// with the same content is not stored twice).
import fs from 'node:fs';

import { NotFoundError, UsageError } from '../errors.js';
import type { ImageRecord } from '../store/catalog.js';
import { fetchImage, type FetchContext } from './index.js';

/** `run`/`prepare` default to `new`, `fetch` to `update` (rkt). */
export const PULL_POLICIES = ['never', 'new', 'update'] as const;
export type PullPolicy = (typeof PULL_POLICIES)[number];

/** A reference that names a file to import rather than an image in the store. */
export function isImageFileRef(ref: string): boolean {
  return ref.startsWith('file://') || ref.endsWith('.aci') || (ref.includes('/') && fs.existsSync(ref));
}

export async function resolveImageRef(ref: string, ctx: FetchContext, policy: PullPolicy): Promise<ImageRecord> {
  if (isImageFileRef(ref)) {
    if (policy === 'never') {
      throw new UsageError(`image ${ref}: --pull-policy=never uses the store only; fetch the file first`, { suggestions: [`tspod fetch ${ref}`] });
    }
    return (await fetchImage(ref, ctx)).record;
  }
  if (policy === 'update') return (await fetchImage(ref, ctx)).record;
  try {
    return ctx.store.resolveImage(ref);
  } catch (err) {
    if (!(err instanceof NotFoundError) || policy === 'never') throw err;
    return (await fetchImage(ref, ctx)).record;
  }
}
