// Image references of `tspod run`/`prepare` to stored images, under a pull policy
// (rkt's Documentation/image-fetching-behavior.md): `never` uses the store only; `new` (the
// default) uses the store and fetches what is missing; `update` asks the source again (a stored
// download still fresh by its Cache-Control, or unchanged by its ETag, is not downloaded again).
// The same reference rule and fetch as `tspod fetch` (reference.ts, index.ts); the dependencies
// must all be there afterwards, since the image is rendered next.
import type { PlatformWanted } from '../oci/platform.js';
import type { ImageRecord } from '../store/catalog.js';
import type { FetchContext, PullPolicy } from './context.js';
import { fetchImage } from './index.js';
import { withPlatform } from './platform-request.js';

/** `run`/`prepare` default to `new`, `fetch` to `update` (rkt). */
export { PULL_POLICIES, type PullPolicy } from './context.js';
export { isImageFileRef } from './reference.js';

/** `platform`: `--os/--arch/--variant` (src/fetch/platform-request.ts); undefined: this machine's. */
export async function resolveImageRef(ref: string, ctx: FetchContext, policy: PullPolicy, platform?: PlatformWanted): Promise<ImageRecord> {
  return (await fetchImage(ref, ctx, withPlatform(ref, { pullPolicy: policy, strictDependencies: true }, platform))).record;
}
