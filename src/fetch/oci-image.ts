// Fetching OCI images into the store, rkt's docker2aci way: `docker://[registry/]repo[:tag|@digest]`
// from a registry (src/oci/registry.ts), `oci:DIR[:tag]` and `oci-archive:FILE[:tag]` from an OCI
// image layout (src/oci/layout.ts), `docker-archive:FILE[:NAME:TAG]` from a `docker save` archive
// (src/oci/docker-archive.ts). The image manifest is resolved for this machine's platform,
// every blob is verified against its digest, the config becomes an appc image manifest
// (src/oci/convert.ts), and the layers are applied with their whiteouts (src/oci/merge.ts, top
// down, through the safe extractor) into a work directory under the store's tmp area while the
// same entries are written as an ACI (`manifest` + `rootfs/`) into the store's tmp area, hashed as
// it is written (src/fetch/oci-pack.ts), and committed by Store.commitImage like a local ACI file. Registry
// layers are downloaded in parallel into resumable partials of the store's tmp area and kept,
// verified, in `cas/oci/blobs` (src/store/oci-blobs.ts) so later pulls skip them; each layer is
// applied as soon as it and the ones above it are there. The work directory is removed on every path.
//
// Signatures: once the manifest and config are resolved and BEFORE any layer is requested, the
// policy (src/oci/policy.ts: policy.json of the local, else system config dir, else "signed by a
// key `tspod trust` trusts for docker://registry/repo") is applied to the image's "simple signing"
// signatures (containers-signature(5), src/oci/simple-signing.ts), found in the registries.d
// lookaside and the registry's signature extension (src/oci/signature-sources.ts) and in
// `--signature FILE` (the only source for oci:/oci-archive:). A refused image downloads no layer
// and stores nothing; the accepted signer is recorded in the catalog (`source.signer`).
// `--insecure-options=image` skips the policy, with a warning.
import fs from 'node:fs';
import path from 'node:path';

import { parseImageManifest } from '../appc/validate.js';
import { NotFoundError, UsageError } from '../errors.js';
import { convertConfig } from '../oci/convert.js';
import { parseLayoutReference } from '../oci/layout.js';
import { defaultPlatform, labelsFitPlatform, platformMismatch } from '../oci/platform.js';
import { formatReference, parseReference } from '../oci/reference.js';
import type { ImageSourceKind } from '../store/catalog.js';
import { recordOciLayers } from '../store/oci-blobs.js';
import { adoptTree } from '../store/trees.js';
import type { FetchContext, FetchRequest, ImageFetch } from './context.js';
import { createdOf, packLayers } from './oci-pack.js';
import { resolveLayout, resolveRegistry, type ResolvedOci } from './oci-sources.js';
import type { PolicyImage, SignatureBlob } from '../oci/policy.js';

/** Where the image came from, as recorded in the catalog. */
interface OciOrigin {
  kind: Extract<ImageSourceKind, 'docker' | 'oci'>;
  location: string;
}


/** Whether a reference names an OCI image (docker://, oci:, oci-archive:, docker-archive:). */
export function ociOriginOf(ref: string): OciOrigin {
  if (ref.startsWith('docker://')) return { kind: 'docker', location: formatReference(parseReference(ref)) };
  const layout = parseLayoutReference(ref);
  return { kind: 'oci', location: `${layout.transport}:${path.resolve(layout.path)}${layout.tag === undefined ? '' : `:${layout.tag}`}` };
}

/** `docker://`, `oci:`, `oci-archive:` or `docker-archive:` into the store; see the module comment. */
export async function fetchOciImage(ref: string, ctx: FetchContext, request: FetchRequest = {}): Promise<ImageFetch> {
  const origin = ociOriginOf(ref);
  const policy = request.pullPolicy ?? 'update';
  // Pull policies never/new: an image fetched from the same reference before is used as it is.
  if (request.noStore !== true && policy !== 'update') {
    const stored = ctx.store
      .listImages()
      .filter((r) => r.source.kind === origin.kind && r.source.location === origin.location && labelsFitPlatform(r.labels, request.platform ?? defaultPlatform()))
      .sort((a, b) => a.importTime.localeCompare(b.importTime))
      .at(-1);
    if (stored !== undefined) return { record: stored, stored: false, signer: stored.source.signer, outcome: 'in-store' };
    if (policy === 'never') {
      throw new NotFoundError(`image ${ref}: not in the store and --pull-policy=never fetches nothing`, { suggestions: [`tspod fetch --insecure-options=image ${ref}`] });
    }
  }
  if (request.labels !== undefined && request.labels.length > 0) {
    throw new UsageError(`fetch ${ref}: --label is for appc names; an OCI reference names one image by tag or digest`);
  }

  const { store } = ctx;
  const storeLock = await store.lockStore('shared');
  let work: string | undefined;
  let release: (() => Promise<void>) | undefined;
  try {
    fs.mkdirSync(store.layout.tmp, { recursive: true });
    // Blobs, the unpacked archive and the applied tree; removed below whatever happens (and
    // by `tspod image gc` with the rest of cas/tmp after a kill).
    work = fs.mkdtempSync(path.join(store.layout.tmp, 'oci-'));
    const resolved = origin.kind === 'docker' ? await resolveRegistry(ref, ctx, request.platform) : await resolveLayout(ref, work, ctx, request.platform);
    const mismatch = request.platform === undefined ? undefined : platformMismatch(resolved.config, request.platform);
    if (mismatch !== undefined) ctx.onWarning(`image ${ref}: ${mismatch}`);
    // The signature gate: a refused image has had no layer requested.
    const signer = ctx.insecure.image ? null : await checkOciSignature(ref, resolved, ctx, request);
    release = resolved.release;
    const layers = await resolved.fetchLayers();
    const rootfs = path.join(work, 'rootfs');
    fs.mkdirSync(rootfs, { mode: 0o755 });
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

    const manifest = parseImageManifest(manifestBytes, `image manifest converted from ${ref}`);
    // As root, owners, setuid bits and device nodes of the layers are kept (the extractor's rule).
    const privileged = process.geteuid?.() === 0;
    // Applied and packed straight into the store's tmp area, hashed while written (oci-pack.ts).
    const packed = await packLayers(rootfs, layers, manifestBytes, createdOf(resolved.config), store.layout.tmp, { sys: store.sys, privileged, onWarning: ctx.onWarning });
    const read = { ...packed, manifest, manifestBytes };
    // The layer blobs the image was made from, recorded before the image is listed (for gc).
    if (resolved.layerDigests.length > 0) recordOciLayers(store, read.id, resolved.layerDigests);
    try {
      if (ctx.insecure.image) ctx.onWarning(`image ${read.manifest.name}: signature not checked (--insecure-options=image)`);
      const committed = await store.commitImage({
        id: read.id,
        tmpTarPath: read.tmpTarPath,
        size: read.size,
        manifest: read.manifest,
        manifestBytes: read.manifestBytes,
        source: { kind: origin.kind, location: origin.location, signer, digest: resolved.manifestDigest },
      });
      // The applied tree becomes the image's rendered tree: the first run extracts nothing.
      if (converted.manifest.dependencies === undefined || converted.manifest.dependencies.length === 0) {
        await adoptTree(store, committed.record.id, rootfs, manifestBytes).catch((err: unknown) => ctx.onWarning(`image ${ref}: the applied tree is not kept: ${(err as Error).message}`));
      }
      return { ...committed, signer, outcome: 'fetched' };
    } finally {
      fs.rmSync(read.tmpTarPath, { force: true });
    }
  } finally {
    // Downloads still running after a failure are settled first (their partials are kept).
    if (release !== undefined) await release().catch(() => {});
    storeLock.release();
    if (work !== undefined) fs.rmSync(work, { recursive: true, force: true });
  }
}

/**
 * Applies the OCI policy to a resolved image (see the module comment); returns the accepted
 * signer's fingerprint (null when the policy accepted it unsigned, with a warning).
 */
async function checkOciSignature(ref: string, resolved: ResolvedOci, ctx: FetchContext, request: FetchRequest): Promise<string | null> {
  const [{ evaluatePolicy, layoutScopes, loadPolicy, policyDockerScopes }, { parseDockerIdentity }, sources] = await Promise.all([
    import('../oci/policy.js'),
    import('../oci/simple-signing.js'),
    import('../oci/signature-sources.js'),
  ]);
  const keystore = await ctx.keystore();
  const loaded = loadPolicy({ localDir: keystore.localDir, systemDir: keystore.systemDir });
  const digests = [...new Set([resolved.topDigest, resolved.manifestDigest])];
  const given: SignatureBlob[] = [];
  if (request.signaturePath !== undefined) {
    const file = request.signaturePath;
    try {
      given.push({ bytes: new Uint8Array(fs.readFileSync(file)), source: file });
    } catch (err) {
      throw new NotFoundError(`fetch ${ref}: read signature ${file}: ${(err as Error).message}`, { cause: err });
    }
  }
  let image: PolicyImage;
  let signatures: () => Promise<SignatureBlob[]>;
  let hints: string[];
  if (ref.startsWith('docker://')) {
    const docker = parseDockerIdentity(resolved.reference.slice('docker://'.length));
    image = { transport: 'docker', reference: resolved.reference, docker, scopes: policyDockerScopes(docker), editScope: docker.name, digests };
    const registriesDirs = [path.join(keystore.localDir, 'registries.d'), path.join(keystore.systemDir, 'registries.d'), sources.CONTAINERS_REGISTRIES_D];
    // Loaded here: the http modules (undici, ~0.1 s of start-up) are for registries, not layouts.
    const net = await (await import('./remote-aci.js')).networkOf(ctx);
    const client = resolved.registry;
    if (client === undefined) throw new Error('a registry image resolves with its client');
    signatures = async () => [...given, ...(await sources.registrySignatures(docker, digests, { http: net.http, registriesDirs, client }))];
    hints = [
      `configure where its signatures are: a lookaside in ${path.join(keystore.localDir, 'registries.d')}/NAME.yaml (docker: {${docker.name}: {lookaside: URL}})`,
      `give its signature: tspod fetch --signature SIGFILE ${resolved.reference}`,
    ];
  } else {
    const layout = parseLayoutReference(ref);
    const abs = path.resolve(layout.path);
    // docker-archive: no manifest anyone could have signed, and only the transport's "" scope.
    const archive = layout.transport === 'docker-archive';
    image = { transport: layout.transport, reference: ociOriginOf(ref).location, docker: undefined, scopes: archive ? [] : layoutScopes(abs, layout.tag), editScope: archive ? '' : abs, digests };
    signatures = () => Promise.resolve(given);
    hints = archive
      ? [`a docker save archive carries no signature: accept it with --insecure-options=image, or with {"type":"insecureAcceptAnything"} under transports.docker-archive[""] in policy.json`]
      : [`give its signature (skopeo standalone-sign writes one): tspod fetch --signature SIGFILE ${ref}`];
  }
  const decision = await evaluatePolicy(loaded, image, { keystore, signatures, noSignatureHints: hints });
  if (decision.signer === null) ctx.onWarning(`image ${image.reference}: accepted without a signature by ${decision.file ?? 'the policy'} (${decision.scope})`);
  return decision.signer;
}
