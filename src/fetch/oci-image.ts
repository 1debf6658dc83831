// Fetching OCI images into the store, rkt's docker2aci way: `docker://[registry/]repo[:tag|@digest]`
// from a registry (src/oci/registry.ts), `oci:DIR[:tag]` and `oci-archive:FILE[:tag]` from an OCI
// image layout (src/oci/layout.ts). The image manifest is resolved for this machine's platform,
// every blob is verified against its digest, the layers are applied in order with their whiteouts
// (src/oci/layers.ts, through the safe extractor) into a work directory under the store's tmp
// area, the config becomes an appc image manifest (src/oci/convert.ts), and the tree is packed as
// an ACI (`manifest` + `rootfs/`) that is imported through readAci and Store.commitImage exactly
// like a local ACI file. The work directory is removed on every path.
//
// Signatures: OCI images are signed with "simple signing" (containers-signature(5)), which tspod
// does not verify yet, so these fetches need `--insecure-options=image` (and say so).
import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';

import { pack as tarPack } from 'tar-stream';

import { parseImageManifest } from '../appc/validate.js';
import { NotFoundError, TrustError, UsageError } from '../errors.js';
import { readAci } from '../image/aci-reader.js';
import { convertConfig } from '../oci/convert.js';
import { applyLayers } from '../oci/layers.js';
import { parseLayoutReference } from '../oci/layout.js';
import { formatReference, parseReference } from '../oci/reference.js';
import type { ImageSourceKind } from '../store/catalog.js';
import type { FetchContext, FetchRequest, ImageFetch } from './context.js';
import { createdOf, packAci } from './oci-pack.js';
import { resolveLayout, resolveRegistry } from './oci-sources.js';

/** Where the image came from, as recorded in the catalog. */
interface OciOrigin {
  kind: Extract<ImageSourceKind, 'docker' | 'oci'>;
  location: string;
}


/** Whether a reference names an OCI image (docker://, oci:, oci-archive:). */
export function ociOriginOf(ref: string): OciOrigin {
  if (ref.startsWith('docker://')) return { kind: 'docker', location: formatReference(parseReference(ref)) };
  const layout = parseLayoutReference(ref);
  return { kind: 'oci', location: `${layout.transport}:${path.resolve(layout.path)}${layout.tag === undefined ? '' : `:${layout.tag}`}` };
}

/** `docker://`, `oci:` or `oci-archive:` into the store; see the module comment. */
export async function fetchOciImage(ref: string, ctx: FetchContext, request: FetchRequest = {}): Promise<ImageFetch> {
  const origin = ociOriginOf(ref);
  const policy = request.pullPolicy ?? 'update';
  if (request.signaturePath !== undefined) {
    throw new UsageError(`fetch ${ref}: --signature is for ACI files and URLs; OCI images carry no detached appc signature`);
  }
  // Pull policies never/new: an image fetched from the same reference before is used as it is.
  if (request.noStore !== true && policy !== 'update') {
    const stored = ctx.store
      .listImages()
      .filter((r) => r.source.kind === origin.kind && r.source.location === origin.location)
      .sort((a, b) => a.importTime.localeCompare(b.importTime))
      .at(-1);
    if (stored !== undefined) return { record: stored, stored: false, signer: stored.source.signer, outcome: 'in-store' };
    if (policy === 'never') {
      throw new NotFoundError(`image ${ref}: not in the store and --pull-policy=never fetches nothing`, { suggestions: [`tspod fetch --insecure-options=image ${ref}`] });
    }
  }
  if (!ctx.insecure.image) {
    // Refused before any request: nothing unverified is downloaded, let alone stored.
    throw new TrustError(`fetch ${ref}: signature verification of OCI images (simple signing) is not implemented yet`, {
      suggestions: [`skip the check (the image is stored unverified): tspod fetch --insecure-options=image${origin.kind === 'docker' && ctx.insecure.http ? ',http' : ''} ${ref}`],
    });
  }
  if (request.labels !== undefined && request.labels.length > 0) {
    throw new UsageError(`fetch ${ref}: --label is for appc names; an OCI reference names one image by tag or digest`);
  }

  const { store } = ctx;
  const storeLock = await store.lockStore('shared');
  let work: string | undefined;
  try {
    fs.mkdirSync(store.layout.tmp, { recursive: true });
    // Blobs, the unpacked archive and the applied tree; removed below whatever happens (and
    // by `tspod image gc` with the rest of cas/tmp after a kill).
    work = fs.mkdtempSync(path.join(store.layout.tmp, 'oci-'));
    const resolved = origin.kind === 'docker' ? await resolveRegistry(ref, work, ctx) : await resolveLayout(ref, work, ctx);
    const layers = await resolved.fetchLayers();
    const rootfs = path.join(work, 'rootfs');
    fs.mkdirSync(rootfs, { mode: 0o755 });
    // As root, owners, setuid bits and device nodes of the layers are kept (the extractor's rule).
    const privileged = process.geteuid?.() === 0;
    await applyLayers(rootfs, layers, { sys: store.sys, privileged, onWarning: ctx.onWarning });
    const converted = convertConfig({
      name: resolved.name,
      ...(resolved.tag === undefined ? {} : { tag: resolved.tag }),
      config: resolved.config,
      manifestDigest: resolved.manifestDigest,
      configDigest: resolved.configDigest,
      ...(resolved.manifestAnnotations === undefined ? {} : { manifestAnnotations: resolved.manifestAnnotations }),
    });
    for (const w of converted.warnings) ctx.onWarning(`image ${ref}: ${w}`);
    const manifestBytes = Buffer.from(`${JSON.stringify(converted.manifest, null, 2)}\n`);

    const tar = tarPack();
    const packing = packAci(tar, manifestBytes, rootfs, createdOf(resolved.config)).then(
      () => tar.finalize(),
      (err: unknown) => tar.destroy(err as Error),
    );
    let read;
    try {
      // tar-stream's Pack is a streamx stream: Readable.from makes it the Node stream readAci expects.
      read = await readAci(Readable.from(tar, { objectMode: false }), {
        tmpDir: store.layout.tmp,
        validateManifest: (bytes) => parseImageManifest(bytes, `image manifest converted from ${ref}`),
        what: ref,
      });
    } catch (err) {
      tar.destroy();
      throw err;
    }
    await packing;
    try {
      ctx.onWarning(`image ${read.manifest.name}: signature not checked (--insecure-options=image)`);
      const committed = await store.commitImage({
        id: read.id,
        tmpTarPath: read.tmpTarPath,
        size: read.size,
        manifest: read.manifest,
        manifestBytes: read.manifestBytes,
        source: { kind: origin.kind, location: origin.location, signer: null },
      });
      return { ...committed, signer: null, outcome: 'fetched' };
    } finally {
      fs.rmSync(read.tmpTarPath, { force: true });
    }
  } finally {
    storeLock.release();
    if (work !== undefined) fs.rmSync(work, { recursive: true, force: true });
  }
}

