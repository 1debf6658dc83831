// OCI image layouts on disk (image-spec image-layout.md): reading `oci:DIR[:tag]` and
// `oci-archive:FILE[:tag]` (a tar of a layout) with every blob digest verified while it is read,
// and writing (exporting) one image into a layout. Owns descriptor and digest checks and the blob
// path rule; which manifest in an index is wanted is decided here for the layout's own index
// (ref.name, single entry) and by the caller's `selectManifest` for a nested index (platforms).
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';

import { ImageFormatError, NotFoundError, UsageError } from '../errors.js';
import { extractTar } from '../image/extract.js';
import { ensureDir, tmpPathFor, writeFileAtomic } from '../store/atomic.js';
import type { Syscalls } from '../sys/types.js';
import type { OciImageConfig } from './convert.js';
import { isIndexMediaType, isManifestMediaType, OCI_INDEX, OCI_MANIFEST } from './media-types.js';
import { defaultPlatform, selectPlatform } from './platform.js';

export const OCI_LAYOUT_FILE = 'oci-layout';
export const OCI_LAYOUT_VERSION = '1.0.0';
/** image-spec annotations.md: the tag of a manifest in a layout's index.json. */
export const REF_NAME_ANNOTATION = 'org.opencontainers.image.ref.name';
export const MEDIA_TYPE_CONFIG = 'application/vnd.oci.image.config.v1+json';
/** Manifests, indexes and configs are read whole; bigger ones are refused (containers/image uses 4 MiB). */
export const MAX_JSON_BLOB = 4 * 1024 * 1024;

export interface OciDescriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
  platform?: { architecture: string; os: string; variant?: string; 'os.version'?: string; 'os.features'?: string[] };
  urls?: string[];
}

export interface OciIndex {
  schemaVersion: 2;
  mediaType?: string;
  manifests: OciDescriptor[];
  annotations?: Record<string, string>;
}

export interface OciManifest {
  schemaVersion: 2;
  mediaType?: string;
  config: OciDescriptor;
  layers: OciDescriptor[];
  annotations?: Record<string, string>;
}

export interface LayoutReference {
  transport: 'oci' | 'oci-archive' | 'docker-archive';
  path: string;
  /**
   * The ref.name to look up; undefined means "the only image in the index". For docker-archive,
   * a docker reference among the RepoTags (`NAME:TAG`) or `@INDEX` (src/oci/docker-archive.ts).
   */
  tag?: string;
}

/**
 * `oci:DIR[:tag]` / `oci-archive:FILE[:tag]`: like containers/image, the tag follows the last ':'.
 * `docker-archive:FILE[:NAME:TAG|:@INDEX]`: the reference, which has a ':' of its own, follows the first.
 */
export function parseLayoutReference(ref: string): LayoutReference {
  const m = /^(oci|oci-archive|docker-archive):(.+)$/.exec(ref);
  if (m === null) throw new UsageError(`parse image reference "${ref}": expected oci:DIR[:tag], oci-archive:FILE[:tag] or docker-archive:FILE[:NAME:TAG]`);
  const transport = m[1] as LayoutReference['transport'];
  const rest = m[2]!;
  if (transport === 'docker-archive') {
    const colon = rest.indexOf(':');
    if (colon === -1) return { transport, path: rest };
    if (colon === 0) throw new UsageError(`parse image reference "${ref}": empty path`);
    const reference = rest.slice(colon + 1);
    return reference === '' ? { transport, path: rest.slice(0, colon) } : { transport, path: rest.slice(0, colon), tag: reference };
  }
  const colon = rest.lastIndexOf(':');
  // A ':' inside a directory name (before the last '/') is part of the path.
  if (colon === -1 || rest.indexOf('/', colon) !== -1) return { transport, path: rest };
  const tag = rest.slice(colon + 1);
  const p = rest.slice(0, colon);
  if (p === '') throw new UsageError(`parse image reference "${ref}": empty path`);
  return tag === '' ? { transport, path: p } : { transport, path: p, tag };
}

/** `sha256:<hex>` of `bytes`: the OCI digest of a blob held in memory. */
export function sha256Digest(bytes: Uint8Array): string {
  return `sha256:${crypto.createHash('sha256').update(bytes).digest('hex')}`;
}

const DIGEST_PATTERN = /^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$/;

/** Checks a descriptor from untrusted JSON; the digest pattern also keeps blob paths inside blobs/. */
export function checkDescriptor(value: unknown, where: string): OciDescriptor {
  const d = value as Partial<OciDescriptor> | null;
  if (d === null || typeof d !== 'object') throw new ImageFormatError(`${where}: descriptor is not an object`);
  if (typeof d.mediaType !== 'string' || d.mediaType === '') throw new ImageFormatError(`${where}: descriptor has no mediaType`);
  if (typeof d.digest !== 'string' || !DIGEST_PATTERN.test(d.digest)) {
    throw new ImageFormatError(`${where}: descriptor digest ${JSON.stringify(d.digest)} is not sha256:<64 hex> or sha512:<128 hex>`);
  }
  if (typeof d.size !== 'number' || !Number.isSafeInteger(d.size) || d.size < 0) {
    throw new ImageFormatError(`${where}: descriptor size ${JSON.stringify(d.size)} is not a non-negative integer`);
  }
  return d as OciDescriptor;
}

export function blobPath(dir: string, digest: string): string {
  if (!DIGEST_PATTERN.test(digest)) throw new ImageFormatError(`read blob ${digest}: not a sha256 or sha512 digest`);
  const [alg, hex] = digest.split(':') as [string, string];
  return path.join(dir, 'blobs', alg, hex);
}

/**
 * A Transform that passes bytes through and fails at the end (or as soon as the size is
 * exceeded) when they do not match the descriptor: image-spec descriptor.md requires verifying
 * both digest and size before trusting content.
 */
export function verifyingStream(descriptor: Pick<OciDescriptor, 'digest' | 'size'>, what: string): Transform {
  const [alg, expected] = descriptor.digest.split(':') as [string, string];
  const hash = crypto.createHash(alg);
  let seen = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, callback: TransformCallback) {
      seen += chunk.length;
      if (seen > descriptor.size) {
        callback(new ImageFormatError(`read ${what}: blob is larger than its descriptor's ${descriptor.size} bytes`));
        return;
      }
      hash.update(chunk);
      callback(null, chunk);
    },
    flush(callback: TransformCallback) {
      if (seen !== descriptor.size) {
        callback(new ImageFormatError(`read ${what}: blob has ${seen} bytes, its descriptor says ${descriptor.size}`));
        return;
      }
      const actual = hash.digest('hex');
      if (actual !== expected) {
        callback(new ImageFormatError(`read ${what}: digest mismatch (content is ${alg}:${actual})`, { suggestions: ['fetch the image again'] }));
        return;
      }
      callback();
    },
  });
}

/** Opens a blob of the layout as a stream that fails unless its bytes match `descriptor`. */
export function openBlob(dir: string, descriptor: OciDescriptor): Readable {
  const file = blobPath(dir, descriptor.digest);
  const what = `blob ${descriptor.digest}`;
  if (!fs.existsSync(file)) throw new NotFoundError(`read ${what}: not in the layout ${dir}`);
  return openVerifiedFile(file, descriptor, what);
}

/** The bytes of `file`, checked against `descriptor` as they are read (the stream fails at its end on a mismatch). */
export function openVerifiedFile(file: string, descriptor: Pick<OciDescriptor, 'digest' | 'size'>, what: string): Readable {
  const verifier = verifyingStream(descriptor, what);
  const source = fs.createReadStream(file, { highWaterMark: 1 << 20 });
  source.on('error', (err) => verifier.destroy(err));
  return source.pipe(verifier);
}

/** Reads a small blob whole, verified; refuses descriptors above `maxSize` before reading. */
export async function readBlob(dir: string, descriptor: OciDescriptor, maxSize = MAX_JSON_BLOB): Promise<Buffer> {
  if (descriptor.size > maxSize) {
    throw new ImageFormatError(`read blob ${descriptor.digest}: ${descriptor.size} bytes exceeds the limit of ${maxSize}`);
  }
  const chunks: Buffer[] = [];
  for await (const chunk of openBlob(dir, descriptor)) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** JSON from untrusted bytes; ImageFormatError naming `what` when it is not JSON. */
export function parseJson(bytes: Buffer, what: string): unknown {
  try {
    return JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw new ImageFormatError(`read ${what}: not valid JSON (${(err as Error).message})`, { cause: err });
  }
}

function checkIndex(doc: unknown, what: string): OciIndex {
  const index = doc as Partial<OciIndex> | null;
  if (index === null || typeof index !== 'object' || index.schemaVersion !== 2 || !Array.isArray(index.manifests)) {
    throw new ImageFormatError(`read ${what}: not an image index (schemaVersion 2 with manifests[])`);
  }
  index.manifests.forEach((m, i) => checkDescriptor(m, `read ${what} manifests[${i}]`));
  return index as OciIndex;
}

function checkManifest(doc: unknown, what: string): OciManifest {
  const m = doc as Partial<OciManifest> | null;
  if (m === null || typeof m !== 'object' || m.schemaVersion !== 2 || !Array.isArray(m.layers)) {
    throw new ImageFormatError(`read ${what}: not an image manifest (schemaVersion 2 with layers[])`);
  }
  checkDescriptor(m.config, `read ${what} config`);
  m.layers.forEach((l, i) => checkDescriptor(l, `read ${what} layers[${i}]`));
  return m as OciManifest;
}

export interface ReadLayoutOptions {
  tag?: string;
  /** Chooses among the entries of a nested index; default: platform.ts selectPlatform for this machine. */
  selectManifest?: (candidates: OciDescriptor[]) => OciDescriptor;
}

export interface LayoutImage {
  dir: string;
  /** The descriptor of the image manifest (after resolving a nested index). */
  manifestDescriptor: OciDescriptor;
  manifestDigest: string;
  manifestBytes: Buffer;
  manifest: OciManifest;
  configBytes: Buffer;
  config: OciImageConfig;
  /** The layout tag the image was found under, if any. */
  tag?: string;
  /** Layer streams, each verified against its descriptor (fails at its end on mismatch). */
  openLayer: (descriptor: OciDescriptor) => Readable;
}

/** Reads one image from a layout directory, verifying index-referenced manifest and config digests. */
export async function readLayout(dir: string, options: ReadLayoutOptions = {}): Promise<LayoutImage> {
  const layoutFile = path.join(dir, OCI_LAYOUT_FILE);
  let layout: unknown;
  try {
    layout = parseJson(fs.readFileSync(layoutFile), layoutFile);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new NotFoundError(`read oci layout ${dir}: no ${OCI_LAYOUT_FILE} file (not an OCI image layout)`);
    throw err;
  }
  const version = (layout as { imageLayoutVersion?: unknown } | null)?.imageLayoutVersion;
  if (version !== OCI_LAYOUT_VERSION) throw new ImageFormatError(`read oci layout ${dir}: unsupported imageLayoutVersion ${JSON.stringify(version)}`);
  const indexFile = path.join(dir, 'index.json');
  const indexBytes = fs.readFileSync(indexFile);
  if (indexBytes.length > MAX_JSON_BLOB) throw new ImageFormatError(`read ${indexFile}: larger than ${MAX_JSON_BLOB} bytes`);
  const index = checkIndex(parseJson(indexBytes, indexFile), indexFile);

  let entry: OciDescriptor;
  if (options.tag !== undefined) {
    const found = index.manifests.filter((m) => m.annotations?.[REF_NAME_ANNOTATION] === options.tag);
    if (found.length === 0) {
      const tags = index.manifests.map((m) => m.annotations?.[REF_NAME_ANNOTATION]).filter((t) => t !== undefined);
      throw new NotFoundError(`read oci layout ${dir}: no image tagged "${options.tag}"${tags.length > 0 ? ` (tags: ${tags.join(', ')})` : ''}`);
    }
    if (found.length > 1) throw new ImageFormatError(`read oci layout ${dir}: tag "${options.tag}" names ${found.length} manifests`);
    entry = found[0]!;
  } else if (index.manifests.length === 1) {
    entry = index.manifests[0]!;
  } else {
    throw new UsageError(`read oci layout ${dir}: it holds ${index.manifests.length} images; name one with oci:${dir}:TAG`);
  }

  // A layout entry may be an index of platform manifests (skopeo copy --all, buildx).
  let descriptor = entry;
  let bytes = await readBlob(dir, descriptor);
  for (let depth = 0; isIndexMediaType(descriptor.mediaType); depth += 1) {
    if (depth > 4) throw new ImageFormatError(`read oci layout ${dir}: indexes nested too deep`);
    const nested = checkIndex(parseJson(bytes, `index ${descriptor.digest}`), `index ${descriptor.digest}`);
    descriptor = options.selectManifest ? options.selectManifest(nested.manifests) : selectPlatform(nested.manifests, defaultPlatform(), `oci layout ${dir}`);
    bytes = await readBlob(dir, descriptor);
  }
  if (!isManifestMediaType(descriptor.mediaType)) {
    throw new ImageFormatError(`read oci layout ${dir}: unsupported manifest media type ${descriptor.mediaType}`);
  }
  const manifest = checkManifest(parseJson(bytes, `manifest ${descriptor.digest}`), `manifest ${descriptor.digest}`);
  const configBytes = await readBlob(dir, manifest.config);
  const config = parseJson(configBytes, `config ${manifest.config.digest}`) as OciImageConfig;
  if (config === null || typeof config !== 'object') throw new ImageFormatError(`read config ${manifest.config.digest}: not an object`);
  const tag = entry.annotations?.[REF_NAME_ANNOTATION];
  return {
    dir,
    manifestDescriptor: descriptor,
    manifestDigest: descriptor.digest,
    manifestBytes: bytes,
    manifest,
    configBytes,
    config,
    ...(tag === undefined ? {} : { tag }),
    openLayer: (d) => openBlob(dir, d),
  };
}

/**
 * `oci-archive:`: a tar of a layout. It is unpacked with the project's safe extractor into
 * `workDir` (an empty directory the caller removes afterwards), then read as a layout.
 */
export async function readLayoutArchive(file: string, workDir: string, options: ReadLayoutOptions & { sys: Syscalls }): Promise<LayoutImage> {
  // An archive's blobs are plain files: no owners, devices or setuid bits are needed, and a
  // symlink or FIFO posing as a blob (`blobs/sha256/<hex> -> /dev/zero`) is dropped, so reading
  // the layout never leaves workDir or blocks.
  await extractTar(fs.createReadStream(file), workDir, {
    sys: options.sys,
    privileged: false,
    filter: (_rel, type) => type === 'file' || type === 'directory',
  });
  return readLayout(workDir, options);
}

export interface ExportLayer {
  descriptor: OciDescriptor;
  /** The blob bytes; verified against the descriptor while they are written. */
  open: () => Readable;
}

export interface ExportImage {
  manifestBytes: Buffer;
  configBytes: Buffer;
  layers: ExportLayer[];
  tag?: string;
  /** Manifest media type for the index entry (default OCI manifest). */
  mediaType?: string;
}

/**
 * Writes one image into the layout at `dir` (created if missing; an existing layout is added to,
 * an entry with the same tag is replaced). Blobs go to a temporary name, are verified, then
 * renamed; index.json is replaced atomically last, so a reader never sees a dangling entry.
 */
export async function writeLayout(dir: string, image: ExportImage, options: { sys: Syscalls }): Promise<OciDescriptor> {
  ensureDir(dir);
  const layoutFile = path.join(dir, OCI_LAYOUT_FILE);
  if (!fs.existsSync(layoutFile)) writeFileAtomic(options.sys, layoutFile, JSON.stringify({ imageLayoutVersion: OCI_LAYOUT_VERSION }));
  const manifest = checkManifest(parseJson(image.manifestBytes, 'manifest'), 'manifest');
  if (manifest.layers.length !== image.layers.length || manifest.layers.some((l, i) => l.digest !== image.layers[i]!.descriptor.digest)) {
    throw new ImageFormatError('export oci layout: the layers given do not match the manifest');
  }
  const writeSmall = (bytes: Buffer): OciDescriptor => {
    const digest = sha256Digest(bytes);
    const target = blobPath(dir, digest);
    if (!fs.existsSync(target)) {
      ensureDir(path.dirname(target));
      writeFileAtomic(options.sys, target, bytes);
    }
    return { mediaType: '', digest, size: bytes.length };
  };
  const configDescriptor = writeSmall(image.configBytes);
  if (configDescriptor.digest !== manifest.config.digest) {
    throw new ImageFormatError(`export oci layout: config bytes are ${configDescriptor.digest}, the manifest says ${manifest.config.digest}`);
  }
  for (const layer of image.layers) {
    const target = blobPath(dir, layer.descriptor.digest);
    if (fs.existsSync(target)) continue;
    ensureDir(path.dirname(target));
    const tmp = tmpPathFor(target);
    try {
      await pipeline(layer.open(), verifyingStream(layer.descriptor, `blob ${layer.descriptor.digest}`), fs.createWriteStream(tmp, { flags: 'wx' }));
      const fd = fs.openSync(tmp, 'r');
      fs.fsyncSync(fd);
      fs.closeSync(fd);
      fs.renameSync(tmp, target);
    } finally {
      fs.rmSync(tmp, { force: true });
    }
  }
  const { digest, size } = writeSmall(image.manifestBytes);
  const entry: OciDescriptor = { mediaType: image.mediaType ?? manifest.mediaType ?? OCI_MANIFEST, digest, size };
  if (image.tag !== undefined) entry.annotations = { [REF_NAME_ANNOTATION]: image.tag };
  const indexFile = path.join(dir, 'index.json');
  let index: OciIndex = { schemaVersion: 2, mediaType: OCI_INDEX, manifests: [] };
  if (fs.existsSync(indexFile)) index = checkIndex(parseJson(fs.readFileSync(indexFile), indexFile), indexFile);
  index.manifests = index.manifests.filter((m) =>
    image.tag === undefined ? m.digest !== digest : m.annotations?.[REF_NAME_ANNOTATION] !== image.tag,
  );
  index.manifests.push(entry);
  writeFileAtomic(options.sys, indexFile, `${JSON.stringify(index)}\n`);
  return entry;
}
