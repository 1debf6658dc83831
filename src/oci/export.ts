// Exporting a stored image as an OCI image (image-spec image-layout.md, manifest.md, config.md,
// layer.md), the reverse of convert.ts: the appc image manifest becomes an OCI image config
// (exec -> Entrypoint (and Cmd, when convert.ts's annotations say how an imported image split
// them), environment -> Env, user/group -> User, workingDirectory, ports -> ExposedPorts, mount
// points -> Volumes, labels and annotations -> Labels, os/arch labels -> os/architecture/variant),
// and a rendered root filesystem becomes one gzip layer, written in sorted order with its modes,
// owners, mtimes and xattrs (src/image/tar-writer.ts) so the same tree always gives the same digest. `writeOciImage` writes both,
// with the manifest, into a new layout directory (layout.ts writeLayout); `packLayoutArchive`
// makes an `oci-archive:` tar of such a directory.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';

import { labelValue } from '../appc/labels.js';
import type { ImageManifest } from '../appc/types.js';
import { UsageError } from '../errors.js';
import { TarWriter, treeXattrs, TYPE, type TarSink, type XattrSyscalls } from '../image/tar-writer.js';
import type { Syscalls } from '../sys/types.js';
import { ensureDir } from '../store/atomic.js';
import { ANNOTATIONS, type OciImageConfig } from './convert.js';
import { blobPath, MEDIA_TYPE_CONFIG, sha256Digest, writeLayout, type OciDescriptor } from './layout.js';
import { OCI_MANIFEST } from './media-types.js';
import { ociArchitecture } from './platform.js';

export const LAYER_MEDIA_TYPE_GZIP = 'application/vnd.oci.image.layer.v1.tar+gzip';
/** image-spec annotations.md, pre-defined keys used as config Labels here. */
export const OCI_TITLE = 'org.opencontainers.image.title';
export const OCI_VERSION = 'org.opencontainers.image.version';

/** The config document written (config.md): convert.ts's reading of it plus rootfs and history. */
export interface OciConfigDocument extends OciImageConfig {
  architecture: string;
  os: string;
  rootfs: { type: 'layers'; diff_ids: string[] };
  history?: { created?: string; created_by?: string; comment?: string }[];
}

/** appc arch label -> GOARCH and variant (the inverse of convert.ts appcArch). */
const APPC_TO_OCI_ARCH: Record<string, { architecture: string; variant?: string }> = {
  amd64: { architecture: 'amd64' },
  i386: { architecture: '386' },
  aarch64: { architecture: 'arm64' },
  armv6l: { architecture: 'arm', variant: 'v6' },
  armv7l: { architecture: 'arm', variant: 'v7' },
  ppc64: { architecture: 'ppc64' },
  ppc64le: { architecture: 'ppc64le' },
  s390x: { architecture: 's390x' },
};

/** Annotations convert.ts writes that map to config fields or describe the image it came from. */
const CONSUMED_ANNOTATIONS = new Set<string>(Object.values(ANNOTATIONS));

function jsonStringArray(text: string | undefined): string[] | undefined {
  if (text === undefined) return undefined;
  try {
    const value: unknown = JSON.parse(text);
    return Array.isArray(value) && value.every((v) => typeof v === 'string') ? value : undefined;
  } catch {
    return undefined;
  }
}

/** Ports: `80/tcp`; a range (appc `count`) becomes one key per port, as config.md has no ranges. */
const MAX_RANGE_KEYS = 1024;

export interface ReverseResult {
  config: OciConfigDocument;
  /** What has no OCI config field (isolators, event handlers) or was guessed (a missing arch). */
  warnings: string[];
}

/** The OCI image config of an appc image manifest whose rendered tree has the layers `diffIds`. */
export function ociConfigFromManifest(manifest: ImageManifest, diffIds: string[]): ReverseResult {
  const warnings: string[] = [];
  const annotations = new Map((manifest.annotations ?? []).map((a) => [a.name, a.value]));
  const os = labelValue(manifest.labels, 'os') ?? 'linux';
  const archLabel = labelValue(manifest.labels, 'arch');
  let platform = archLabel === undefined ? undefined : APPC_TO_OCI_ARCH[archLabel];
  if (platform === undefined) {
    platform = { architecture: ociArchitecture() };
    warnings.push(
      archLabel === undefined
        ? `image has no arch label; exported as ${platform.architecture} (this machine's)`
        : `arch "${archLabel}" has no OCI architecture; exported as ${platform.architecture} (this machine's)`,
    );
  }

  const c: NonNullable<OciImageConfig['config']> = {};
  const app = manifest.app;
  if (app !== undefined) {
    if (!(app.user === '0' && app.group === '0')) c.User = `${app.user}:${app.group}`;
    if (app.exec !== undefined && app.exec.length > 0) {
      // An image imported from OCI: split exec where its Entrypoint ended (exec[0] may have been
      // made absolute on import, so the split is by length).
      const entrypoint = jsonStringArray(annotations.get(ANNOTATIONS.entrypoint));
      const cmd = jsonStringArray(annotations.get(ANNOTATIONS.cmd));
      const split = (entrypoint !== undefined || cmd !== undefined) && (entrypoint?.length ?? 0) + (cmd?.length ?? 0) === app.exec.length;
      if (split && entrypoint === undefined) c.Cmd = [...app.exec];
      else if (split && cmd !== undefined) {
        c.Entrypoint = app.exec.slice(0, entrypoint!.length);
        c.Cmd = app.exec.slice(entrypoint!.length);
      } else c.Entrypoint = [...app.exec];
    }
    if (app.environment !== undefined && app.environment.length > 0) c.Env = app.environment.map((e) => `${e.name}=${e.value}`);
    if (app.workingDirectory !== undefined) c.WorkingDir = app.workingDirectory;
    if (app.ports !== undefined && app.ports.length > 0) {
      const ports: Record<string, object> = {};
      for (const p of app.ports) {
        const count = p.count ?? 1;
        if (count > MAX_RANGE_KEYS) {
          ports[`${p.port}-${p.port + count - 1}/${p.protocol}`] = {};
          warnings.push(`port ${p.name}: a range of ${count} ports is written as one ${p.port}-${p.port + count - 1}/${p.protocol} key`);
        } else for (let i = 0; i < count; i += 1) ports[`${p.port + i}/${p.protocol}`] = {};
      }
      c.ExposedPorts = ports;
    }
    if (app.mountPoints !== undefined && app.mountPoints.length > 0) {
      c.Volumes = Object.fromEntries(app.mountPoints.map((m) => [m.path, {}]));
    }
    const stopSignal = annotations.get(ANNOTATIONS.stopSignal);
    if (stopSignal !== undefined) c.StopSignal = stopSignal;
    if (app.isolators !== undefined && app.isolators.length > 0) {
      warnings.push(`isolators (${app.isolators.map((i) => i.name).join(', ')}) have no OCI config field; left out`);
    }
    if (app.eventHandlers !== undefined && app.eventHandlers.length > 0) warnings.push('event handlers have no OCI config field; left out');
  } else {
    warnings.push('image has no app; the config has no Entrypoint');
  }

  const labels: Record<string, string> = {};
  for (const l of manifest.labels ?? []) {
    if (l.name === 'os' || l.name === 'arch') continue;
    labels[l.name === 'version' ? OCI_VERSION : l.name] = l.value;
  }
  for (const [name, value] of annotations) if (!CONSUMED_ANNOTATIONS.has(name)) labels[name] = value;
  // `tspod fetch oci:DIR` names the image by its title: the export comes back under its own name.
  labels[OCI_TITLE] ??= manifest.name;
  c.Labels = labels;

  const created = annotations.get(ANNOTATIONS.created);
  const author = annotations.get(ANNOTATIONS.authors);
  const config: OciConfigDocument = {
    ...(created === undefined ? {} : { created }),
    ...(author === undefined ? {} : { author }),
    architecture: platform.architecture,
    ...(platform.variant === undefined ? {} : { variant: platform.variant }),
    os,
    config: c,
    rootfs: { type: 'layers', diff_ids: diffIds },
    history: [{ ...(created === undefined ? {} : { created }), created_by: `tspod image export ${manifest.name}`, comment: 'the rendered appc image, dependencies applied' }],
  };
  return { config, warnings };
}

/** image-layout.md: the grammar of `org.opencontainers.image.ref.name`. */
const REF_NAME = /^[A-Za-z0-9]+(?:(?:[-._:@+]|--)[A-Za-z0-9]+)*(?:\/[A-Za-z0-9]+(?:(?:[-._:@+]|--)[A-Za-z0-9]+)*)*$/;

/** The tag of the export: `--tag`, else the version label, else `latest`. */
export function exportTag(manifest: ImageManifest, tag: string | undefined): string {
  const chosen = tag ?? labelValue(manifest.labels, 'version') ?? 'latest';
  if (!REF_NAME.test(chosen)) {
    throw new UsageError(`export ${manifest.name}: "${chosen}" is not a valid OCI layout tag (org.opencontainers.image.ref.name)`, {
      suggestions: ['choose one with --tag, e.g. --tag 1.0'],
    });
  }
  return chosen;
}

/** A Transform that hashes what passes through. */
function hashing(alg: 'sha256'): { stream: Transform; digest: () => string; size: () => number } {
  const hash = crypto.createHash(alg);
  let size = 0;
  const stream = new Transform({
    transform(chunk: Buffer, _enc, callback: TransformCallback) {
      hash.update(chunk);
      size += chunk.length;
      callback(null, chunk);
    },
  });
  let result: string | undefined;
  return { stream, digest: () => (result ??= `${alg}:${hash.digest('hex')}`), size: () => size };
}

/** Linux dev_t (glibc's gnu_dev_major/minor). */
function devNumbers(rdev: number): { devmajor: number; devminor: number } {
  const hi = Math.floor(rdev / 2 ** 32);
  const lo = rdev >>> 0;
  return { devmajor: ((lo >>> 8) & 0xfff) | (hi & ~0xfff), devminor: (lo & 0xff) | ((lo >>> 12) & ~0xff) };
}

const LAYER_BUFFER = 1 << 20;
/** How many bytes of the archive may wait for gzip before packing pauses. */
const LAYER_QUEUE = 4 * LAYER_BUFFER;

/** A TarSink whose filled buffers are the chunks of a Readable (the layer's gzip pipeline reads it). */
class LayerStream implements TarSink {
  private wake: (() => void) | undefined;
  readonly readable = new Readable({ highWaterMark: LAYER_QUEUE, read: () => this.resume() });

  constructor() {
    this.readable.once('close', () => this.resume());
  }

  private resume(): void {
    this.wake?.();
    this.wake = undefined;
  }

  take(): Buffer {
    return Buffer.allocUnsafe(LAYER_BUFFER);
  }

  update(buf: Buffer, length: number): void {
    this.readable.push(buf.subarray(0, length));
  }

  /** Waits while the queue is full; throws when the pipeline has stopped reading (it failed). */
  async ready(): Promise<void> {
    while (!this.readable.destroyed && this.readable.readableLength >= LAYER_QUEUE) await new Promise<void>((resolve) => (this.wake = resolve));
    if (this.readable.destroyed) throw new Error('the layer\'s output stream was closed');
  }
}

export interface PackTreeOptions {
  /** Keep the tree's owners (a tree rendered as root has the image's); otherwise everything is 0:0. */
  keepOwners: boolean;
  /** Reads the entries' extended attributes, which the archive then keeps; without it, none are kept. */
  sys?: XattrSyscalls;
  onWarning: (message: string) => void;
}

/**
 * Writes the tree under `root` as a layer (layer.md) into `tar`: names relative to the root,
 * children sorted by name, directories before their contents, hardlinks to the first name seen,
 * modes (with setuid/setgid/sticky), owners, mtimes, xattrs (`SCHILY.xattr.*`, security.selinux
 * left out), symlinks, device nodes and FIFOs. Sockets carry nothing and are left out; a name with
 * the whiteout prefix `.wh.` would delete rather than add, so it is left out with a warning.
 * `pace` is awaited before each entry (the reader's backpressure).
 */
async function packTree(tar: TarWriter, root: string, options: PackTreeOptions, pace: () => Promise<void>): Promise<void> {
  const links = new Map<string, string>();
  const walk = async (rel: string): Promise<void> => {
    for (const child of fs.readdirSync(path.join(root, rel)).sort()) {
      const name = rel === '' ? child : `${rel}/${child}`;
      const abs = path.join(root, name);
      if (child.startsWith('.wh.')) {
        options.onWarning(`${name}: an OCI whiteout name (.wh.) in the tree; left out of the layer`);
        continue;
      }
      await pace();
      const st = fs.lstatSync(abs);
      const common = {
        name,
        mode: st.mode & 0o7777,
        uid: options.keepOwners ? st.uid : 0,
        gid: options.keepOwners ? st.gid : 0,
        size: 0,
        mtime: Math.floor(st.mtimeMs / 1000),
        ...(options.sys === undefined ? {} : treeXattrs(options.sys, abs)),
      };
      if (st.isDirectory()) {
        tar.header({ ...common, name: `${name}/`, type: TYPE.directory });
        await walk(name);
      } else if (st.isSymbolicLink()) {
        tar.header({ ...common, type: TYPE.symlink, linkname: fs.readlinkSync(abs) });
      } else if (st.isFile()) {
        const key = `${st.dev}:${st.ino}`;
        const first = st.nlink > 1 ? links.get(key) : undefined;
        if (first !== undefined) {
          tar.header({ ...common, type: TYPE.link, linkname: first });
          continue;
        }
        if (st.nlink > 1) links.set(key, name);
        const fd = fs.openSync(abs, 'r');
        try {
          tar.header({ ...common, type: TYPE.file, size: st.size });
          tar.body(fd, st.size, name);
        } finally {
          fs.closeSync(fd);
        }
      } else if (st.isCharacterDevice() || st.isBlockDevice()) {
        tar.header({ ...common, type: st.isCharacterDevice() ? TYPE.char : TYPE.block, ...devNumbers(st.rdev) });
      } else if (st.isFIFO()) {
        tar.header({ ...common, type: TYPE.fifo });
      }
    }
  };
  await walk('');
}

export interface LayerBlob {
  descriptor: OciDescriptor;
  /** sha256 of the uncompressed tar (config.md rootfs.diff_ids). */
  diffId: string;
}

/** The tree under `root` as an archive: `readable` gives its bytes while `packed` settles when all were given. */
function packedTree(root: string, options: PackTreeOptions): { readable: Readable; packed: Promise<void> } {
  const layer = new LayerStream();
  const tar = new TarWriter(layer);
  const packed = packTree(tar, root, options, () => layer.ready()).then(
    () => {
      tar.end();
      layer.readable.push(null);
    },
    (err: unknown) => {
      layer.readable.destroy(err as Error);
      throw err;
    },
  );
  return { readable: layer.readable, packed };
}

/** Packs `rootfs` as a gzip layer into `file`; returns its descriptor and diff id. */
export async function writeTreeLayer(rootfs: string, file: string, options: PackTreeOptions): Promise<LayerBlob> {
  const { readable, packed } = packedTree(rootfs, options);
  const raw = hashing('sha256');
  const gz = hashing('sha256');
  // gzip's header carries no time or name here (zlib writes mtime 0): the same tree, the same bytes.
  await Promise.all([pipeline(readable, raw.stream, zlib.createGzip(), gz.stream, fs.createWriteStream(file, { flags: 'wx', mode: 0o644 })), packed]);
  return { descriptor: { mediaType: LAYER_MEDIA_TYPE_GZIP, digest: gz.digest(), size: gz.size() }, diffId: raw.digest() };
}

export interface WriteOciImageOptions {
  tag: string;
  keepOwners: boolean;
  sys: Syscalls;
  onWarning: (message: string) => void;
}

/**
 * Writes the image (its appc manifest and rendered `rootfs`) into `dir`, a new directory, as an
 * OCI image layout with one image tagged `tag`. Returns the manifest's index entry.
 */
export async function writeOciImage(dir: string, manifest: ImageManifest, rootfs: string, options: WriteOciImageOptions): Promise<OciDescriptor> {
  const blobs = ensureDir(path.join(dir, 'blobs', 'sha256'));
  const tmpLayer = path.join(blobs, `.layer-${crypto.randomBytes(6).toString('hex')}`);
  let layer: LayerBlob;
  try {
    layer = await writeTreeLayer(rootfs, tmpLayer, options);
    // In place before writeLayout, which then leaves the blob as it is (it was hashed as written).
    fs.renameSync(tmpLayer, blobPath(dir, layer.descriptor.digest));
  } finally {
    fs.rmSync(tmpLayer, { force: true });
  }
  const { config, warnings } = ociConfigFromManifest(manifest, [layer.diffId]);
  for (const w of warnings) options.onWarning(`export ${manifest.name}: ${w}`);
  const configBytes = Buffer.from(JSON.stringify(config));
  const configDescriptor: OciDescriptor = {
    mediaType: MEDIA_TYPE_CONFIG,
    digest: sha256Digest(configBytes),
    size: configBytes.length,
  };
  const ociManifest = { schemaVersion: 2, mediaType: OCI_MANIFEST, config: configDescriptor, layers: [layer.descriptor] };
  const layerFile = blobPath(dir, layer.descriptor.digest);
  return writeLayout(
    dir,
    {
      manifestBytes: Buffer.from(JSON.stringify(ociManifest)),
      configBytes,
      layers: [{ descriptor: layer.descriptor, open: () => fs.createReadStream(layerFile) }],
      tag: options.tag,
      mediaType: OCI_MANIFEST,
    },
    { sys: options.sys },
  );
}

/** `oci-archive:`: the layout directory `dir` as a tar at `file` (sorted, plain files and directories). */
export async function packLayoutArchive(dir: string, file: string): Promise<void> {
  const { readable, packed } = packedTree(dir, { keepOwners: false, onWarning: () => {} });
  await Promise.all([pipeline(readable, fs.createWriteStream(file, { flags: 'wx', mode: 0o644 })), packed]);
}
