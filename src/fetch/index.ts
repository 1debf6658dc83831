// src/fetch: image references to verified images in the store. `fetchImage` dispatches on the
// reference's form (reference.ts: local file, https:// URL, appc name, image id, OCI image from a
// registry or a layout: oci-image.ts), applies the pull policy, then fetches the image's missing dependencies. Remote
// fetching (remote.ts) is imported on demand, so `tspod run` of a stored image loads neither
// undici, nor htmlparser2, nor openpgp.
import { NotFoundError, UsageError } from '../errors.js';
import type { FetchContext, FetchRequest, FetchResult, ImageFetch } from './context.js';
import { fetchDependencies } from './dependencies.js';
import { closeRemoteConnections, loadRemote } from './load-remote.js';
import { classifyImageRef } from './reference.js';

export type { FetchContext, FetchRequest, FetchResult, ImageFetch } from './context.js';
export { PULL_POLICIES, type PullPolicy } from './context.js';

export async function fetchImage(ref: string, ctx: FetchContext, request: FetchRequest = {}): Promise<FetchResult> {
  const policy = request.pullPolicy ?? 'update';
  if (request.noStore === true && policy === 'never') {
    throw new UsageError('--no-store and --pull-policy=never contradict each other: one ignores the store, the other uses nothing else');
  }
  try {
    const image = await fetchOne(ref, ctx, request);
    const deps = await fetchDependencies(image.record, ctx, { strict: request.strictDependencies === true, fetchMissing: policy !== 'never' });
    return { ...image, dependencies: deps.fetched, missingDependencies: deps.missing };
  } finally {
    // undici keeps idle connections open, and they would keep the process alive (src/http/agent.ts).
    await closeRemoteConnections();
  }
}

async function fetchOne(ref: string, ctx: FetchContext, request: FetchRequest): Promise<ImageFetch> {
  const policy = request.pullPolicy ?? 'update';
  const target = classifyImageRef(ref);
  switch (target.kind) {
    case 'unsupported':
      throw new UsageError(
        `fetch ${ref}: ${target.scheme} images are not supported`,
        { suggestions: ['fetch an ACI (./app.aci, an https:// URL, an appc name) or an OCI image (docker://REGISTRY/REPO:TAG, oci:DIR[:tag], oci-archive:FILE[:tag])'] },
      );
    case 'oci': {
      // docker:// goes through the shared HTTP agents: loaded here so the end of the fetch closes them.
      if (target.scheme === 'docker') await loadRemote();
      return (await import('./oci-image.js')).fetchOciImage(ref, ctx, request);
    }
    case 'id':
    // Image ids name stored images only (rkt: `sha512-...` is store only).
    {
      const record = ctx.store.resolveImage(target.id);
      return { record, stored: false, signer: record.source.signer, outcome: 'in-store' };
    }
    case 'file': {
      if (policy === 'never') {
        throw new UsageError(`image ${ref}: --pull-policy=never uses the store only; fetch the file first`, { suggestions: [`tspod fetch ${ref}`] });
      }
      // Loaded here: reading an archive (tar-stream) is for files, not for a stored image's `run`.
      const fetched = await (await import('./local-aci.js')).fetchLocalAci(target.path, ctx, request);
      return { ...fetched, outcome: 'fetched' };
    }
    case 'url':
      return (await loadRemote()).fetchFromUrl(target.url, ctx, request);
    case 'name': {
      if (request.noStore !== true && policy !== 'update') {
        // never/new: the store first, by name and the labels given (as every image command).
        try {
          const record = ctx.store.resolveImage(ref, request.labels ?? []);
          return { record, stored: false, signer: record.source.signer, outcome: 'in-store' };
        } catch (err) {
          if (policy === 'never' || !(err instanceof NotFoundError)) throw err;
        }
      }
      return (await loadRemote()).fetchByName(ref, ctx, request);
    }
  }
}
