// src/fetch: image references to verified images in the store. Dispatches on the reference's
// form; this release handles local ACI files (discovery by name, HTTPS and registries follow).
import fs from 'node:fs';

import { UsageError } from '../errors.js';
import { fetchLocalAci, type FetchContext, type FetchRequest, type FetchResult } from './local-aci.js';

export type { FetchContext, FetchRequest, FetchResult };

export async function fetchImage(ref: string, ctx: FetchContext, request: FetchRequest = {}): Promise<FetchResult> {
  if (ref.startsWith('file://')) return fetchLocalAci(new URL(ref).pathname, ctx, request);
  if (/^(https?|docker|oci|oci-archive):/.test(ref)) {
    throw new UsageError(`fetch ${ref}: fetching from ${ref.split(':')[0]} locations is not supported yet; fetch a local .aci file`);
  }
  if (fs.existsSync(ref) || ref.endsWith('.aci')) return fetchLocalAci(ref, ctx, request);
  throw new UsageError(`fetch ${ref}: no such file, and discovery of images by name is not supported yet`);
}
