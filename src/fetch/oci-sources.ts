// Where an OCI image comes from: a registry (`docker://`, src/oci/registry.ts) or an image layout
// (`oci:DIR[:tag]`, `oci-archive:FILE[:tag]`, src/oci/layout.ts). Each source resolves the image
// manifest for this machine's platform and its config first; the layers are fetched only when
// asked (`fetchLayers`), so a signature check can refuse an image before its layers are downloaded.
import fs from 'node:fs';
import path from 'node:path';

import { NotFoundError, TspodError, UsageError } from '../errors.js';
import type { OciImageConfig } from '../oci/convert.js';
import { layerSources, type LayerSource } from '../oci/layers.js';
import { readDockerArchive } from '../oci/docker-archive.js';
import { parseLayoutReference, readLayout, readLayoutArchive, type LayoutImage } from '../oci/layout.js';
import { defaultPlatform, selectPlatform, type PlatformWanted } from '../oci/platform.js';
import { formatReference, parseReference } from '../oci/reference.js';
// Type only: the http modules (undici) load with a registry fetch, never for an image layout.
import type { DownloadEvent, PartialTail } from '../http/download.js';
import { openOciBlob, publishOciBlob } from '../store/oci-blobs.js';
import type { RegistryClient } from '../oci/registry.js';
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
  /**
   * The layers, lowest first. A registry's are downloaded in the background (or found in the
   * store's blob area): each source's open() waits for its own blob.
   */
  fetchLayers: () => Promise<LayerSource[]>;
  /** The layer blobs kept in the store's blob area for this image (recorded for gc). */
  layerDigests: string[];
  /** Waits for background downloads to settle and closes the blobs; call when done, whatever happened. */
  release: () => Promise<void>;
  /** The registry client that resolved the image (its token included), for the signature extension. */
  registry?: RegistryClient;
}

/** Layer blobs downloaded at once from a registry. */
const LAYER_DOWNLOADS = 3;

/** A registry image: manifest (through an index by platform), config, and the layers (kept in the store's blob area). */
export async function resolveRegistry(ref: string, ctx: FetchContext, platform: PlatformWanted = defaultPlatform()): Promise<ResolvedOci> {
  const image = parseReference(ref);
  const [{ RegistryClient, resolveImage }, { findRegistryCredentials }, { networkOf }, download] = await Promise.all([
    import('../oci/registry.js'),
    import('../oci/docker-auth.js'),
    import('./remote-aci.js'),
    import('../http/download.js'),
  ]);
  const net = await networkOf(ctx);
  const tasks = new Map<string, ReturnType<NonNullable<FetchContext['progress']>['task']>>();
  // Layers being downloaded can be read while they download (PartialTail): the lowest layer is
  // applied from its first bytes instead of after its last.
  const live = new Map<string, LiveBlob>();
  const client = new RegistryClient(image, {
    ...(net.http.lookup === undefined ? {} : { lookup: net.http.lookup }),
    ...(net.http.ca === undefined ? {} : { ca: net.http.ca }),
    insecureTls: ctx.insecure.tls,
    // distribution-spec is https; plain http only when the user chose it (rkt: --insecure-options=http).
    allowHttp: ctx.insecure.http,
    // Partials in the store's tmp area, named by digest: a killed pull resumes with Range.
    tmpDir: ctx.store.layout.tmp,
    sys: ctx.store.sys,
    credentials: findRegistryCredentials(image, { auth: net.http.auth }),
    onProgress: (digest, event) => {
      tasks.get(digest)?.update(event);
      const streaming = live.get(digest);
      if (streaming !== undefined) followDownload(download, streaming, ctx.store.layout.tmp, digest, event);
    },
  });
  let manifest;
  let index;
  try {
    ({ manifest, index } = await resolveImage(client, platform));
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
  const { store } = ctx;
  // Every layer gets a promise of an open file of its verified blob: from the store's blob area
  // when an earlier pull kept it, else downloaded (a few at a time, topmost layer first) into a
  // resumable partial of the store's tmp area, verified, and published there. The layers are
  // applied from the top down (src/oci/merge.ts), each as soon as it is there, while the lower
  // ones still download.
  const opened = new Map<string, Promise<number>>();
  const fds: number[] = [];
  let downloads: Promise<unknown> = Promise.resolve();
  const fetchLayers = async (): Promise<LayerSource[]> => {
    // The same blob may be listed twice (Docker's empty layer): downloaded once, applied each time.
    const unique = [...new Map(descriptors.map((d) => [d.digest, d])).values()].reverse();
    const queue: Array<{ layer: (typeof unique)[number]; resolve: (fd: number) => void; reject: (err: unknown) => void }> = [];
    for (const layer of unique) {
      const stored = openOciBlob(store.layout, layer.digest);
      if (stored !== undefined) fds.push(stored);
      const promise =
        stored !== undefined
          ? Promise.resolve(stored)
          : new Promise<number>((resolve, reject) => {
              queue.push({ layer, resolve, reject });
            });
      promise.catch(() => {}); // awaited by the layer's open(); a failure is not unhandled meanwhile
      opened.set(layer.digest, promise);
    }
    for (const { layer } of queue) {
      let markStarted = (): void => {};
      const started = new Promise<void>((resolve) => (markStarted = resolve));
      live.set(layer.digest, { tail: undefined, started, markStarted, claimed: false });
      tasks.set(layer.digest, ctx.progress?.task(`${image.repository} ${layer.digest.slice(7, 19)}`) ?? { update: () => {}, fail: () => {} });
    }
    let failure: unknown;
    const worker = async (): Promise<void> => {
      for (let job = queue.shift(); job !== undefined; job = queue.shift()) {
        if (failure !== undefined) {
          job.reject(failure);
          continue;
        }
        const streaming = live.get(job.layer.digest)!;
        try {
          const blob = await client.fetchBlob(job.layer);
          // Opened before it is published: a concurrent `image rm` may unlink it, never take it away.
          const fd = fs.openSync(blob.path, fs.constants.O_RDONLY);
          fds.push(fd);
          publishOciBlob(store, blob.path, job.layer.digest);
          const tail = streaming.tail;
          if (tail !== undefined && !tail.destroyed && !streaming.claimed) {
            tail.destroy(); // nobody reads it: the layer will be read from the verified blob
          } else if (tail !== undefined && !tail.destroyed) {
            // What the tail read is verified only if it read the very file that was verified.
            const a = fs.fstatSync(tail.fd);
            const b = fs.fstatSync(fd);
            if (a.ino === b.ino && a.dev === b.dev) tail.finish(blob.size);
            else tail.fail(new TspodError(`fetch blob ${job.layer.digest}: another process wrote the partial download that was read; fetch again`));
          }
          job.resolve(fd);
        } catch (err) {
          failure ??= err;
          streaming.tail?.fail(err as Error);
          tasks.get(job.layer.digest)?.fail((err as Error).message);
          job.reject(err);
        }
      }
    };
    // containers/image pulls 6 in parallel; 3 keeps a small registry happy.
    downloads = Promise.allSettled(Array.from({ length: Math.min(LAYER_DOWNLOADS, queue.length) }, worker)).finally(() => {
      if (queue.length === 0 && tasks.size > 0) ctx.progress?.finish();
    });
    return descriptors.map(
      (d): LayerSource => ({
        mediaType: d.mediaType,
        name: d.digest,
        open: async () => {
          const blob = opened.get(d.digest)!;
          const streaming = live.get(d.digest);
          if (streaming !== undefined && !streaming.claimed) {
            // The first use of a blob still downloading reads it as it arrives.
            streaming.claimed = true;
            const first = await Promise.race([streaming.started.then(() => 'live' as const), blob.then(() => 'done' as const, () => 'done' as const)]);
            const tail = streaming.tail;
            if (first === 'live' && tail !== undefined && !tail.destroyed) return tail;
            tail?.destroy();
          }
          // pread from offset 0 (start), so a blob listed twice is read twice from the one fd.
          return fs.createReadStream('', { fd: await blob, start: 0, autoClose: false, highWaterMark: 1 << 20 });
        },
        // Resolves once the blob is verified: an extraction error of a blob that fails its digest
        // is reported as the digest failure, its cause.
        verified: async () => {
          await opened.get(d.digest)!;
        },
      }),
    );
  };
  const release = async (): Promise<void> => {
    await downloads;
    for (const streaming of live.values()) streaming.tail?.destroy();
    for (const fd of fds.splice(0)) fs.closeSync(fd);
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
    layerDigests: descriptors.map((d) => d.digest),
    release,
    registry: client,
  };
}

/**
 * An `oci:`/`oci-archive:` layout or a `docker-archive:` (an archive unpacked into `work` first),
 * every blob verified as it is read.
 */
export async function resolveLayout(ref: string, work: string, ctx: FetchContext, platform: PlatformWanted = defaultPlatform()): Promise<ResolvedOci> {
  const parsed = parseLayoutReference(ref);
  const options = {
    ...(parsed.tag === undefined ? {} : { tag: parsed.tag }),
    selectManifest: (candidates: Parameters<typeof selectPlatform>[0]) => selectPlatform(candidates, platform, ref),
  };
  if (!fs.existsSync(parsed.path)) throw new NotFoundError(`fetch ${ref}: no such ${parsed.transport === 'oci' ? 'directory' : 'file'} ${parsed.path}`);
  let image: LayoutImage & { repoTag?: string };
  if (parsed.transport === 'oci') {
    image = await readLayout(parsed.path, options);
  } else {
    const unpacked = path.join(work, 'layout');
    fs.mkdirSync(unpacked);
    image =
      parsed.transport === 'oci-archive'
        ? await readLayoutArchive(parsed.path, unpacked, { ...options, sys: ctx.store.sys })
        : await readDockerArchive(parsed.path, unpacked, { ...(parsed.tag === undefined ? {} : { reference: parsed.tag }), sys: ctx.store.sys });
  }
  // A docker archive's tag is the RepoTag's (`NAME:TAG`); a layout's is its ref.name.
  const tag = parsed.transport === 'docker-archive' ? image.tag : (parsed.tag ?? image.tag);
  // The RepoTag's name, else the layout's directory or file name (without .tar) stands for the
  // repository, as skopeo names it.
  const base = path.basename(path.resolve(parsed.path)).replace(/\.(tar|oci)$/, '');
  const repository = image.repoTag?.replace(/:[^:/]+$/, '');
  return {
    name: repository ?? image.config.config?.Labels?.['org.opencontainers.image.title'] ?? base,
    tag,
    manifestDigest: image.manifestDigest,
    configDigest: image.manifest.config.digest,
    config: image.config,
    manifestAnnotations: image.manifest.annotations,
    reference: ref,
    topDigest: image.manifestDigest,
    fetchLayers: () => Promise.resolve(layerSources(image.manifest.layers, image.openLayer)),
    // A layout's blobs are local: nothing is kept in the store's blob area.
    layerDigests: [],
    release: () => Promise.resolve(),
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


/** A layer blob being downloaded, readable while it arrives. */
interface LiveBlob {
  tail: PartialTail | undefined;
  /** Resolves when the download has started and `tail` is open. */
  started: Promise<void>;
  markStarted: () => void;
  /** A layer's open() took it (once): otherwise it is closed when the download ends. */
  claimed: boolean;
}

/**
 * Follows a blob download's progress events: on its start, opens the partial file registry.ts
 * downloads into (download.ts names it by the key `oci-<32 hex of the digest>`); a restart from
 * zero makes what was read void, so the tail fails and the layer is read from the verified blob.
 */
function followDownload(download: typeof import('../http/download.js'), streaming: LiveBlob, tmpDir: string, digest: string, event: DownloadEvent): void {
  if (event.type === 'start' && streaming.tail === undefined) {
    const { partial } = download.partialPaths(tmpDir, `oci-${digest.slice('sha256:'.length, 'sha256:'.length + 32)}`);
    try {
      streaming.tail = new download.PartialTail(fs.openSync(partial, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW));
      streaming.tail.on('error', () => {}); // reported to the reader through its iterator
      streaming.tail.grow(event.bytes);
    } catch {
      // No partial under the shared name (another process holds it): read the blob when complete.
    }
    streaming.markStarted();
  } else if (event.type === 'data') {
    streaming.tail?.grow(event.bytes);
  } else if (event.type === 'restart') {
    streaming.tail?.fail(new TspodError(`fetch blob ${digest}: the download started again from zero after the layer was partly read; fetch again`));
  }
}
