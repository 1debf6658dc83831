// `docker-archive:FILE[:NAME:TAG|:@INDEX]`: the tar that `docker save` and `skopeo copy ...
// docker-archive:` write. It holds `manifest.json` (a list of {Config, RepoTags, Layers}), each
// image's config and its layers as files; there is no registry manifest, so one is derived, as
// containers/image does for this transport: Docker schema 2, the config and each layer file
// described by the sha256 of their bytes. The archive is unpacked with the project's safe
// extractor into a work directory (plain files and directories only); every path manifest.json
// names must be a file inside it, and an uncompressed layer must hash to its `rootfs.diff_ids`
// entry in the config. The image then reads like an OCI layout (layout.ts LayoutImage).
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

import { ImageFormatError, NotFoundError, UsageError } from '../errors.js';
import { extractTar } from '../image/extract.js';
import type { Syscalls } from '../sys/types.js';
import type { OciImageConfig } from './convert.js';
import { detectLayerCompression } from './decompress.js';
import { MAX_JSON_BLOB, openVerifiedFile, parseJson, sha256Digest, type LayoutImage, type OciDescriptor, type OciManifest } from './layout.js';

const MANIFEST_FILE = 'manifest.json';
const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
const DOCKER_CONFIG = 'application/vnd.docker.container.image.v1+json';
const DOCKER_LAYER_TAR = 'application/vnd.docker.image.rootfs.diff.tar';
const DOCKER_LAYER_GZIP = 'application/vnd.docker.image.rootfs.diff.tar.gzip';

interface ArchiveEntry {
  Config: string;
  RepoTags?: string[] | null;
  Layers: string[];
}

export interface DockerArchiveImage extends LayoutImage {
  /** The RepoTag the image was chosen by, or its only one (`example.com/app:1.0`). */
  repoTag?: string;
}

/** `docker.io/library/x` and `docker.io/x` as docker save writes them (`x`, `y/x`). */
function shortDockerName(ref: string): string {
  return ref.replace(/^docker\.io\/library\//, '').replace(/^docker\.io\//, '');
}

/** A path manifest.json names, as a regular file inside `dir` (nothing else is there but files and directories). */
function memberFile(dir: string, member: unknown, what: string): string {
  if (typeof member !== 'string' || member === '' || member.startsWith('/') || member.split('/').includes('..')) {
    throw new ImageFormatError(`read docker archive: ${what} ${JSON.stringify(member)} is not a path inside the archive`);
  }
  const file = path.join(dir, member);
  let st: fs.Stats;
  try {
    st = fs.lstatSync(file);
  } catch {
    throw new ImageFormatError(`read docker archive: ${what} ${member} is not in the archive`);
  }
  if (!st.isFile()) throw new ImageFormatError(`read docker archive: ${what} ${member} is not a file`);
  return file;
}

function readJsonFile(file: string, what: string): { bytes: Buffer; value: unknown } {
  const size = fs.statSync(file).size;
  if (size > MAX_JSON_BLOB) throw new ImageFormatError(`read docker archive: ${what} is larger than ${MAX_JSON_BLOB} bytes`);
  const bytes = fs.readFileSync(file);
  return { bytes, value: parseJson(bytes, `docker archive ${what}`) };
}

/** A layer file in one pass: its digest, its size and its first bytes (for the compression). */
function describeLayerFile(file: string): { digest: string; size: number; head: Buffer } {
  const hash = crypto.createHash('sha256');
  const fd = fs.openSync(file, 'r');
  let size = 0;
  let head = Buffer.alloc(0);
  try {
    const buf = Buffer.allocUnsafe(1 << 20);
    for (let n = fs.readSync(fd, buf); n > 0; n = fs.readSync(fd, buf)) {
      if (size === 0) head = Buffer.from(buf.subarray(0, Math.min(n, 512)));
      hash.update(buf.subarray(0, n));
      size += n;
    }
  } finally {
    fs.closeSync(fd);
  }
  return { digest: `sha256:${hash.digest('hex')}`, size, head };
}

function checkEntries(value: unknown): ArchiveEntry[] {
  const ok =
    Array.isArray(value) &&
    value.length > 0 &&
    value.every(
      (e) =>
        e !== null &&
        typeof e === 'object' &&
        typeof (e as ArchiveEntry).Config === 'string' &&
        Array.isArray((e as ArchiveEntry).Layers) &&
        ((e as ArchiveEntry).RepoTags == null || (Array.isArray((e as ArchiveEntry).RepoTags) && (e as ArchiveEntry).RepoTags!.every((t) => typeof t === 'string'))),
    );
  if (!ok) throw new ImageFormatError(`read docker archive: ${MANIFEST_FILE} must be a non-empty list of {Config, RepoTags, Layers}`);
  return value as ArchiveEntry[];
}

/** The entry `reference` names (`NAME:TAG` among the RepoTags, or `@INDEX`), else the only one. */
function chooseEntry(entries: ArchiveEntry[], file: string, reference: string | undefined): { entry: ArchiveEntry; repoTag?: string } {
  const tags = entries.flatMap((e) => e.RepoTags ?? []);
  if (reference === undefined) {
    if (entries.length > 1) throw new UsageError(`read docker archive ${file}: it holds ${entries.length} images; name one with docker-archive:${file}:NAME:TAG${tags.length > 0 ? ` (tags: ${tags.join(', ')})` : ''} or :@INDEX`);
    const only = entries[0]!.RepoTags ?? [];
    return { entry: entries[0]!, ...(only.length === 1 ? { repoTag: only[0]! } : {}) };
  }
  if (reference.startsWith('@')) {
    const index = Number(reference.slice(1));
    if (!Number.isInteger(index) || index < 0 || index >= entries.length) throw new NotFoundError(`read docker archive ${file}: no image @${reference.slice(1)} (it holds ${entries.length}, from @0)`);
    return { entry: entries[index]! };
  }
  const wanted = shortDockerName(reference);
  const entry = entries.find((e) => (e.RepoTags ?? []).some((t) => shortDockerName(t) === wanted));
  if (entry === undefined) throw new NotFoundError(`read docker archive ${file}: no image tagged ${reference}${tags.length > 0 ? ` (tags: ${tags.join(', ')})` : ''}`);
  return { entry, repoTag: (entry.RepoTags ?? []).find((t) => shortDockerName(t) === wanted)! };
}

/**
 * Reads one image of a docker archive (see the module comment), unpacked into `workDir`, an empty
 * directory the caller removes afterwards.
 */
export async function readDockerArchive(file: string, workDir: string, options: { reference?: string; sys: Syscalls }): Promise<DockerArchiveImage> {
  // Plain files and directories only: a symlink or FIFO posing as a layer is dropped (layout.ts readLayoutArchive).
  await extractTar(fs.createReadStream(file), workDir, { sys: options.sys, privileged: false, filter: (_rel, type) => type === 'file' || type === 'directory' });
  const manifestFile = path.join(workDir, MANIFEST_FILE);
  if (!fs.existsSync(manifestFile)) throw new ImageFormatError(`read docker archive ${file}: no ${MANIFEST_FILE} (not a docker save archive)`);
  const { entry, repoTag } = chooseEntry(checkEntries(readJsonFile(manifestFile, MANIFEST_FILE).value), file, options.reference);

  const { bytes: configBytes, value: config } = readJsonFile(memberFile(workDir, entry.Config, 'config'), `config ${entry.Config}`);
  if (config === null || typeof config !== 'object') throw new ImageFormatError(`read docker archive: config ${entry.Config} is not an object`);
  const diffIds = (config as { rootfs?: { diff_ids?: unknown } }).rootfs?.diff_ids;
  if (!Array.isArray(diffIds) || diffIds.length !== entry.Layers.length) {
    throw new ImageFormatError(`read docker archive: config ${entry.Config} lists ${Array.isArray(diffIds) ? diffIds.length : 'no'} rootfs.diff_ids for ${entry.Layers.length} layers`);
  }
  const files = new Map<string, string>();
  const layers: OciDescriptor[] = entry.Layers.map((member, i) => {
    const layerFile = memberFile(workDir, member, `layer ${i + 1}`);
    const { digest, size, head } = describeLayerFile(layerFile);
    const compression = detectLayerCompression(head);
    // An uncompressed layer is its own diff_id: the config vouches for its bytes.
    if (compression === 'tar' && digest !== diffIds[i]) {
      throw new ImageFormatError(`read docker archive: layer ${i + 1} (${member}) is ${digest}, the config's rootfs.diff_ids says ${String(diffIds[i])}`);
    }
    files.set(digest, layerFile);
    return { mediaType: compression === 'gzip' ? DOCKER_LAYER_GZIP : DOCKER_LAYER_TAR, digest, size };
  });
  const manifest: OciManifest = {
    schemaVersion: 2,
    mediaType: DOCKER_MANIFEST,
    config: { mediaType: DOCKER_CONFIG, digest: sha256Digest(configBytes), size: configBytes.length },
    layers,
  };
  const manifestBytes = Buffer.from(JSON.stringify(manifest));
  const manifestDigest = sha256Digest(manifestBytes);
  const tag = repoTag === undefined ? undefined : /:([^:/]+)$/.exec(repoTag)?.[1];
  return {
    dir: workDir,
    manifestDescriptor: { mediaType: DOCKER_MANIFEST, digest: manifestDigest, size: manifestBytes.length },
    manifestDigest,
    manifestBytes,
    manifest,
    configBytes,
    config: config as OciImageConfig,
    ...(tag === undefined ? {} : { tag }),
    ...(repoTag === undefined ? {} : { repoTag }),
    openLayer: (d) => {
      const layerFile = files.get(d.digest);
      if (layerFile === undefined) throw new NotFoundError(`read docker archive: no layer ${d.digest}`);
      return openVerifiedFile(layerFile, d, `layer ${d.digest}`);
    },
  };
}
