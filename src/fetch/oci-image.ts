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

import { pack as tarPack, type Pack } from 'tar-stream';

import { parseImageManifest } from '../appc/validate.js';
import { NotFoundError, TrustError, TspodError, UsageError } from '../errors.js';
import { readAci } from '../image/aci-reader.js';
import { convertConfig, type OciImageConfig } from '../oci/convert.js';
import { applyLayers, layerSources, type LayerSource } from '../oci/layers.js';
import { parseLayoutReference, readLayout, readLayoutArchive } from '../oci/layout.js';
import { defaultPlatform, selectPlatform } from '../oci/platform.js';
import { formatReference, parseReference } from '../oci/reference.js';
import type { ImageSourceKind } from '../store/catalog.js';
import type { FetchContext, FetchRequest, ImageFetch } from './context.js';

/** What an OCI source yields before conversion: config, layers and the names for the appc manifest. */
interface ResolvedOci {
  /** The appc image name before sanitising (`registry/repository`, or the layout's path). */
  name: string;
  tag: string | undefined;
  manifestDigest: string;
  configDigest: string;
  config: OciImageConfig;
  manifestAnnotations: Record<string, string> | undefined;
  layers: LayerSource[];
}

/** Layer blobs downloaded at once from a registry. */
const LAYER_DOWNLOADS = 3;

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
    const rootfs = path.join(work, 'rootfs');
    fs.mkdirSync(rootfs, { mode: 0o755 });
    // As root, owners, setuid bits and device nodes of the layers are kept (the extractor's rule).
    const privileged = process.geteuid?.() === 0;
    await applyLayers(rootfs, resolved.layers, { sys: store.sys, privileged, onWarning: ctx.onWarning });
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

/** A registry image: manifest (through an index by platform), config, and the layers downloaded into `work`. */
async function resolveRegistry(ref: string, work: string, ctx: FetchContext): Promise<ResolvedOci> {
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
  try {
    ({ manifest } = await resolveImage(client, defaultPlatform()));
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
  return {
    name: `${image.registry}/${image.repository}`,
    tag: image.tag,
    manifestDigest: manifest.digest,
    configDigest: configDescriptor.digest,
    config,
    manifestAnnotations: doc.annotations,
    layers,
  };
}

/** An `oci:`/`oci-archive:` layout: read (an archive unpacked into `work` first), every blob verified as it is read. */
async function resolveLayout(ref: string, work: string, ctx: FetchContext): Promise<ResolvedOci> {
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
    layers: layerSources(image.manifest.layers, image.openLayer),
  };
}

/** The config's `created` (RFC 3339), or the epoch: a fixed time for what the layers do not date. */
function createdOf(config: OciImageConfig): Date {
  const created = config.created === undefined ? Number.NaN : Date.parse(config.created);
  return new Date(Number.isNaN(created) ? 0 : created);
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

/**
 * Writes `manifest` and the tree under `rootfs` into `tar` (spec/aci.md "Image Archives"), in
 * sorted order so the same tree always gives the same image id. Modes, owners, symlinks and
 * hardlinks are kept (the safe extractor refused devices unless privileged; sockets and FIFOs
 * are skipped, they carry no content).
 */
async function packAci(tar: Pack, manifestBytes: Buffer, rootfs: string, created: Date): Promise<void> {
  await addEntry(tar, { name: 'manifest', mode: 0o644, mtime: created, size: manifestBytes.length }, manifestBytes);
  const links = new Map<string, string>();
  const walk = async (abs: string, rel: string): Promise<void> => {
    const st = fs.lstatSync(abs);
    const name = rel === '' ? 'rootfs' : `rootfs/${rel}`;
    const common = { name, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, mtime: st.mtime };
    if (st.isDirectory()) {
      // A directory's mtime is the time of this extraction once a whiteout removed something in it
      // (and always for rootfs/): the image's creation time instead keeps the image id the same
      // for every fetch of the same image. Files and symlinks keep their layer mtimes.
      await addEntry(tar, { ...common, mtime: created, type: 'directory' });
      for (const child of fs.readdirSync(abs).sort()) await walk(path.join(abs, child), rel === '' ? child : `${rel}/${child}`);
    } else if (st.isSymbolicLink()) {
      await addEntry(tar, { ...common, type: 'symlink', linkname: fs.readlinkSync(abs) });
    } else if (st.isFile()) {
      const key = `${st.dev}:${st.ino}`;
      const first = st.nlink > 1 ? links.get(key) : undefined;
      if (first !== undefined) {
        await addEntry(tar, { ...common, type: 'link', linkname: first });
        return;
      }
      if (st.nlink > 1) links.set(key, name);
      await addEntry(tar, { ...common, type: 'file', size: st.size }, fs.createReadStream(abs));
    } else if (st.isCharacterDevice() || st.isBlockDevice()) {
      const rdev = st.rdev;
      await addEntry(tar, {
        ...common,
        type: st.isCharacterDevice() ? 'character-device' : 'block-device',
        devmajor: Math.floor(rdev / 256) & 0xfff,
        devminor: (rdev & 0xff) | ((Math.floor(rdev / 4096) & 0xfff00) >>> 0),
      });
    }
  };
  await walk(rootfs, '');
}

type EntryHeader = Parameters<Pack['entry']>[0];

function addEntry(tar: Pack, header: EntryHeader, body?: Buffer | Readable): Promise<void> {
  return new Promise((resolve, reject) => {
    if (body === undefined || Buffer.isBuffer(body)) {
      tar.entry(header, body ?? Buffer.alloc(0), (err) => (err ? reject(err) : resolve()));
      return;
    }
    const entry = tar.entry(header, (err) => (err ? reject(err) : resolve()));
    body.once('error', (err) => {
      entry.destroy(err);
      reject(err);
    });
    body.pipe(entry);
  });
}
