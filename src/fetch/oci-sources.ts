// Where an OCI image comes from: a registry (`docker://`, src/oci/registry.ts) or an image layout
// (`oci:DIR[:tag]`, `oci-archive:FILE[:tag]`, src/oci/layout.ts). Each source resolves the image
// manifest for this machine's platform and its config first; the layers are fetched only when
// asked (`fetchLayers`), so a signature check can refuse an image before its layers are downloaded.
import fs from 'node:fs';
import path from 'node:path';

import { NotFoundError, TspodError, UsageError } from '../errors.js';
import type { OciImageConfig } from '../oci/convert.js';
import { layerSources, type LayerSource } from '../oci/layers.js';
import { parseLayoutReference, readLayout, readLayoutArchive } from '../oci/layout.js';
import { defaultPlatform, selectPlatform } from '../oci/platform.js';
import { formatReference, parseReference } from '../oci/reference.js';
import type { FetchContext } from './context.js';

/** What an OCI source yields before conversion: config, layers and the names for the appc manifest. */
export interface ResolvedOci {
  /** The appc image name before sanitising (`registry/repository`, or the layout's path). */
  name: string;
  tag: string | undefined;
  /** The reference as the user gave it, normalised (`docker.io/library/busybox:latest`, `oci:/abs/dir:tag`). */
  reference: string;
  /** The digest of what the reference names: the index when there is one, else the image manifest. */
  topDigest: string;
  manifestDigest: string;
  configDigest: string;
  config: OciImageConfig;
  manifestAnnotations: Record<string, string> | undefined;
  /** Downloads (registry) or opens (layout) the layers, lowest first. */
  fetchLayers: () => Promise<LayerSource[]>;
}

/** Layer blobs downloaded at once from a registry. */
const LAYER_DOWNLOADS = 3;

/** A registry image: manifest (through an index by platform), config, and the layers downloaded into `work`. */
export async function resolveRegistry(ref: string, work: string, ctx: FetchContext): Promise<ResolvedOci> {
  const image = parseReference(ref);
  const [{ RegistryClient, resolveImage }, { findRegistryCredentials }, { networkOf }] = await Promise.all([
    import('../oci/registry.js'),
    import('../oci/docker-auth.js'),
    import('./remote-aci.js'),
  ]);
  const net = await networkOf(ctx);
  const tasks = new Map<string, ReturnType<NonNullable<FetchContext['progress']>['task']>>();
  const client = new RegistryClient(image, {
    ...(net.http.lookup === undefined ? {} : { lookup: net.http.lookup }),
    ...(net.http.ca === undefined ? {} : { ca: net.http.ca }),
    insecureTls: ctx.insecure.tls,
    // distribution-spec is https; plain http only when the user chose it (rkt: --insecure-options=http).
    allowHttp: ctx.insecure.http,
    tmpDir: work,
    sys: ctx.store.sys,
    credentials: findRegistryCredentials(image, { auth: net.http.auth }),
    onProgress: (digest, event) => tasks.get(digest)?.update(event),
  });
  let manifest;
  let index;
  try {
    ({ manifest, index } = await resolveImage(client, defaultPlatform()));
  } catch (err) {
    // An https handshake with a plain-http server fails with OpenSSL's "wrong version number":
    // name the likely cause (a local registry such as `docker-registry` serves http by default).
    if (!ctx.insecure.http && err instanceof TspodError && err.suggestions.length === 0 && /WRONG_VERSION_NUMBER|wrong version number/.test(err.message)) {
      throw new TspodError(err.message, {
        cause: err,
        suggestions: [`if ${image.registry} serves plain http: tspod fetch --insecure-options=image,http ${ref}`],
      });
    }
    throw err;
  }
  const doc = manifest.json;
  const configDescriptor = doc.config!;
  const configBytes = await client.getBlobBytes(configDescriptor);
  const config = parseConfig(Buffer.from(configBytes), configDescriptor.digest);
  const descriptors = doc.layers ?? [];
  const fetchLayers = async (): Promise<LayerSource[]> => {
  // The same blob may be listed twice (Docker's empty layer): downloaded once, applied each time.
  const unique = [...new Map(descriptors.map((d) => [d.digest, d])).values()];
  const files = new Map<string, string>();
  // A few layers at a time (containers/image pulls 6 in parallel; 3 keeps a small registry happy).
  // Every download is settled before the work directory can be removed, even when one failed.
  let next = 0;
  let failed = false;
  const worker = async (): Promise<void> => {
    for (let i = next++; i < unique.length && !failed; i = next++) {
      const layer = unique[i]!;
      try {
        files.set(layer.digest, (await client.fetchBlob(layer)).path);
      } catch (err) {
        failed = true;
        tasks.get(layer.digest)?.fail((err as Error).message);
        throw err;
      }
    }
  };
  for (const layer of unique) {
    tasks.set(layer.digest, ctx.progress?.task(`${image.repository} ${layer.digest.slice(7, 19)}`) ?? { update: () => {}, fail: () => {} });
  }
  try {
    const settled = await Promise.allSettled(Array.from({ length: Math.min(LAYER_DOWNLOADS, unique.length) }, worker));
    const rejected = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (rejected !== undefined) throw rejected.reason;
  } finally {
    ctx.progress?.finish();
  }
  const layers = descriptors.map((d): LayerSource => ({
    mediaType: d.mediaType,
    name: d.digest,
    open: () => fs.createReadStream(files.get(d.digest)!, { highWaterMark: 1 << 20 }),
  }));
  return layers;
  };
  return {
    name: `${image.registry}/${image.repository}`,
    tag: image.tag,
    reference: formatReference(image),
    topDigest: (index ?? manifest).digest,
    manifestDigest: manifest.digest,
    configDigest: configDescriptor.digest,
    config,
    manifestAnnotations: doc.annotations,
    fetchLayers,
  };
}

/** An `oci:`/`oci-archive:` layout: read (an archive unpacked into `work` first), every blob verified as it is read. */
export async function resolveLayout(ref: string, work: string, ctx: FetchContext): Promise<ResolvedOci> {
  const parsed = parseLayoutReference(ref);
  const options = {
    ...(parsed.tag === undefined ? {} : { tag: parsed.tag }),
    selectManifest: (candidates: Parameters<typeof selectPlatform>[0]) => selectPlatform(candidates, defaultPlatform(), ref),
  };
  if (!fs.existsSync(parsed.path)) throw new NotFoundError(`fetch ${ref}: no such ${parsed.transport === 'oci' ? 'directory' : 'file'} ${parsed.path}`);
  let image;
  if (parsed.transport === 'oci-archive') {
    const unpacked = path.join(work, 'layout');
    fs.mkdirSync(unpacked);
    image = await readLayoutArchive(parsed.path, unpacked, { ...options, sys: ctx.store.sys });
  } else {
    image = await readLayout(parsed.path, options);
  }
  const tag = parsed.tag ?? image.tag;
  // The layout's directory or file name (without .tar) stands for the repository, as skopeo names it.
  const base = path.basename(path.resolve(parsed.path)).replace(/\.(tar|oci)$/, '');
  return {
    name: image.config.config?.Labels?.['org.opencontainers.image.title'] ?? base,
    tag,
    manifestDigest: image.manifestDigest,
    configDigest: image.manifest.config.digest,
    config: image.config,
    manifestAnnotations: image.manifest.annotations,
    reference: ref,
    topDigest: image.manifestDigest,
    fetchLayers: () => Promise.resolve(layerSources(image.manifest.layers, image.openLayer)),
  };
}

function parseConfig(bytes: Buffer, digest: string): OciImageConfig {
  let config: unknown;
  try {
    config = JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw new UsageError(`read config ${digest}: not valid JSON`, { cause: err });
  }
  if (config === null || typeof config !== 'object') throw new UsageError(`read config ${digest}: not an object`);
  return config as OciImageConfig;
}

