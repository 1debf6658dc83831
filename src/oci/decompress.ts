// OCI layer decompression: which compression a layer uses (media type, then magic bytes) and the
// stream of its uncompressed tar. tar and gzip go through the project's image decompressor
// (src/image/decompress.ts); zstd goes through the `zstd` binary.
//
// Why the binary for zstd: Node 20 has no zstd in node:zlib (ecosystem-notes §0.7). The `zstd`
// program (Debian package zstd) is the reference C implementation, streams through pipes and is
// what the project already does for xz and bzip2; fzstd (pure JS) is several times slower on
// layer-sized inputs, @mongodb-js/zstd needs a native build, and a koffi binding to libzstd's
// streaming API would have to live in src/sys. When tspod moves to Node >= 22.15,
// zlib.createZstdDecompress can replace the spawn here without changing callers.
//
// Read-ahead: the tar comes out through a buffer of READ_AHEAD_CHUNKS, so the decompressor (zlib on
// libuv's thread pool, or the zstd process) keeps working while the extractor writes files on the
// main thread, within a layer and for the next layer while the current one is applied.
import { PassThrough, Readable } from 'node:stream';

import { ImageFormatError } from '../errors.js';
import { decompressExternal, decompressStream, detectFormat, DETECT_HEAD_SIZE, peek } from '../image/decompress.js';

/**
 * Chunks buffered ahead of the extractor, per open layer (zlib's are 1 MiB, zstd's pipe reads
 * 64 KiB). Counted in chunks: the buffer is object mode so each read() hands over one chunk as it
 * came, where a byte-mode stream would concatenate everything buffered into a new Buffer.
 */
export const READ_AHEAD_CHUNKS = 48;

export const LAYER_COMPRESSIONS = ['tar', 'gzip', 'zstd'] as const;
export type LayerCompression = (typeof LAYER_COMPRESSIONS)[number];

// image-spec media-types.md and layer.md; Docker's names from manifest-v2-2.md (gzip only).
const LAYER_MEDIA_TYPES: ReadonlyMap<string, LayerCompression> = new Map([
  ['application/vnd.oci.image.layer.v1.tar', 'tar'],
  ['application/vnd.oci.image.layer.v1.tar+gzip', 'gzip'],
  ['application/vnd.oci.image.layer.v1.tar+zstd', 'zstd'],
  ['application/vnd.oci.image.layer.nondistributable.v1.tar', 'tar'],
  ['application/vnd.oci.image.layer.nondistributable.v1.tar+gzip', 'gzip'],
  ['application/vnd.oci.image.layer.nondistributable.v1.tar+zstd', 'zstd'],
  ['application/vnd.docker.image.rootfs.diff.tar.gzip', 'gzip'],
  ['application/vnd.docker.image.rootfs.foreign.diff.tar.gzip', 'gzip'],
  // Docker's own "tar" layers are rare but valid (docker save of uncompressed layers).
  ['application/vnd.docker.image.rootfs.diff.tar', 'tar'],
]);

/** RFC 8878 §3.1.1: a zstd frame starts with 0xFD2FB528 little-endian. */
const ZSTD_MAGIC = Buffer.from([0x28, 0xb5, 0x2f, 0xfd]);

/** The compression a layer media type declares, or undefined for a type that is not a layer. */
export function compressionOfMediaType(mediaType: string): LayerCompression | undefined {
  return LAYER_MEDIA_TYPES.get(mediaType);
}

/** The compression the first bytes show (DETECT_HEAD_SIZE of them for a plain tar). */
export function detectLayerCompression(head: Buffer): LayerCompression | 'unknown' {
  if (head.length >= 4 && head.subarray(0, 4).equals(ZSTD_MAGIC)) return 'zstd';
  const format = detectFormat(head);
  return format === 'tar' || format === 'gzip' ? format : 'unknown';
}

export interface LayerStream {
  compression: LayerCompression;
  /** The uncompressed tar; fails with ImageFormatError when the data is corrupt or truncated. */
  output: Readable;
}

/**
 * Turns a layer blob into its tar. The media type must name a layer; the magic bytes decide the
 * decompressor, as containerd's compression.DecompressStream does, because registries and tools
 * have shipped gzip data under `+zstd` names and plain tars under `+gzip` (a mismatch is reported
 * through onWarning). An empty tar (a zero-length blob is not one) is refused as unknown.
 */
export async function openLayer(
  input: Readable,
  mediaType: string,
  what: string,
  options: { onWarning?: (message: string) => void } = {},
): Promise<LayerStream> {
  const declared = compressionOfMediaType(mediaType);
  if (declared === undefined) {
    input.destroy();
    throw new ImageFormatError(`read ${what}: unsupported layer media type ${JSON.stringify(mediaType)}`);
  }
  const { head, ended } = await peek(input, DETECT_HEAD_SIZE);
  const source = ended ? Readable.from(head.length > 0 ? [head] : []) : input;
  const detected = detectLayerCompression(head);
  if (detected === 'unknown') {
    source.destroy();
    const detail = head.length === 0 ? 'empty blob' : 'not tar, gzip or zstd';
    throw new ImageFormatError(`read ${what}: unknown layer format (${detail})`);
  }
  if (detected !== declared) {
    options.onWarning?.(`read ${what}: media type says ${declared} but the data is ${detected}; using ${detected}`);
  }
  if (detected === 'zstd') return { compression: 'zstd', output: readAhead(decompressExternal(source, 'zstd', what)) };
  const { output } = await decompressStream(source, what);
  return { compression: detected, output: detected === 'tar' ? output : readAhead(output) };
}

/** `input` through a buffer of READ_AHEAD_CHUNKS; errors and early closes travel both ways. */
function readAhead(input: Readable): Readable {
  const output = new PassThrough({ readableObjectMode: true, readableHighWaterMark: READ_AHEAD_CHUNKS, writableHighWaterMark: 1 << 20 });
  input.on('error', (err) => output.destroy(err));
  output.on('close', () => {
    if (!input.destroyed && !input.readableEnded) input.destroy();
  });
  input.pipe(output);
  return output;
}
