// Applying OCI layers: an ordered list of layer blobs becomes one directory tree. Each layer is
// decompressed (decompress.ts), extracted through the project's safe extractor
// (src/image/extract.ts, so hostile entries are refused exactly as for ACIs) with `overwrite`,
// and its whiteouts (whiteouts.ts) are then applied to what the lower layers left.
//
// image-spec layer.md "Applying Changesets": entries replace lower ones at the same path;
// whiteout files are never materialised; whiteouts apply only to lower layers, so a layer's own
// entries survive its opaque marker whatever their order in the tar. A hardlink may name a
// regular file of a lower layer (the extractor's `hardlinksToTarget`). The next layer is
// decompressed ahead while the current one is extracted.
import type { Readable } from 'node:stream';

import { ImageFormatError } from '../errors.js';
import { extractTar, type ExtractLimits } from '../image/extract.js';
import type { Syscalls } from '../sys/types.js';
import { openLayer, type LayerCompression, type LayerStream } from './decompress.js';
import { applyWhiteouts, parseWhiteout, type Whiteout } from './whiteouts.js';

export interface LayerSource {
  /** The layer's media type from the manifest descriptor. */
  mediaType: string;
  /** For messages: usually the descriptor digest. */
  name: string;
  /** Opens the blob; a digest-verifying stream (layout.ts openBlob) fails at its end on mismatch. */
  open: () => Readable | Promise<Readable>;
  /**
   * For a blob read while it downloads: settles once its digest is checked, rejecting on a
   * mismatch. A layer that fails to apply is then reported by that rejection, the cause.
   */
  verified?: () => Promise<void>;
}

/** The layers of a manifest as LayerSources, opened through `open` (a digest-verifying reader). */
export function layerSources<D extends { mediaType: string; digest: string }>(layers: readonly D[], open: (descriptor: D) => Readable | Promise<Readable>): LayerSource[] {
  return layers.map((d) => ({ mediaType: d.mediaType, name: d.digest, open: () => open(d) }));
}

export interface ApplyLayersOptions {
  sys: Syscalls;
  privileged?: boolean;
  limits?: Partial<ExtractLimits>;
  onWarning?: (message: string) => void;
  /** Called after each layer with its index and what it did. */
  onLayer?: (report: LayerReport) => void;
}

export interface LayerReport {
  index: number;
  name: string;
  compression: LayerCompression;
  entries: number;
  bytes: number;
  whiteouts: number;
  /** Lower-layer entries removed by this layer's whiteouts. */
  removed: number;
}

/**
 * Runs `apply` for each layer in `order` (indexes into `layers`) on its decompressed tar. The next
 * layer is opened (its decompression starts filling its read-ahead buffer, decompress.ts) when
 * the current one starts; a layer whose blob is still downloading waits in open(). An error of
 * `apply` is reported as the layer's digest failure when the blob fails its digest (corrupt data
 * read before it was checked), else prefixed with the layer it happened in.
 */
export async function forEachLayer(
  layers: readonly LayerSource[],
  order: readonly number[],
  options: Pick<ApplyLayersOptions, 'onWarning'>,
  apply: (index: number, stream: LayerStream) => Promise<void>,
): Promise<void> {
  const whatOf = (index: number): string => `layer ${index + 1}/${layers.length} (${layers[index]!.name})`;
  const open = (index: number): Promise<LayerStream> => {
    const opening = (async () => openLayer(await layers[index]!.open(), layers[index]!.mediaType, whatOf(index), { onWarning: options.onWarning }))();
    opening.catch(() => {}); // awaited in its turn
    return opening;
  };
  let next = order.length > 0 ? open(order[0]!) : undefined;
  try {
    for (const [position, index] of order.entries()) {
      const layer = layers[index]!;
      const stream = await next!;
      next = position + 1 < order.length ? open(order[position + 1]!) : undefined;
      try {
        await apply(index, stream);
      } catch (err) {
        stream.output.destroy();
        const unverified = layer.verified === undefined ? undefined : await layer.verified().then(() => undefined, (e: unknown) => e);
        if (unverified !== undefined) throw unverified;
        if (err instanceof ImageFormatError && !err.message.includes(layer.name)) {
          throw new ImageFormatError(`apply ${whatOf(index)}: ${err.message}`, { cause: err, suggestions: err.suggestions });
        }
        throw err;
      }
    }
  } finally {
    // A failure leaves the next layer opened ahead: stop its decompression.
    void next?.then(
      (stream) => stream.output.destroy(),
      () => {},
    );
  }
}

/**
 * Applies `layers` in order (lowest first) onto `target`, an existing directory (normally empty).
 * Rejects with ImageFormatError on a hostile, corrupt or digest-mismatched layer; `target` then
 * holds a partial tree and the caller, which extracts into a temporary directory, discards it.
 */
export async function applyLayers(target: string, layers: readonly LayerSource[], options: ApplyLayersOptions): Promise<LayerReport[]> {
  const reports: LayerReport[] = [];
  await forEachLayer(layers, layers.map((_, index) => index), options, async (index, { compression, output }) => {
    const whiteouts: Whiteout[] = [];
    const result = await extractTar(output, target, {
      sys: options.sys,
      overwrite: index > 0,
      // image-spec layer.md: a hardlink may name a file of a lower layer.
      hardlinksToTarget: index > 0,
      ...(options.privileged === undefined ? {} : { privileged: options.privileged }),
      ...(options.limits === undefined ? {} : { limits: options.limits }),
      ...(options.onWarning === undefined ? {} : { onWarning: options.onWarning }),
      filter: (relPath) => {
        const whiteout = parseWhiteout(relPath);
        if (whiteout === undefined) return true;
        if (whiteout !== 'ignore') whiteouts.push(whiteout);
        // Whiteout files themselves never appear in the result (layer.md).
        return false;
      },
    });
    const removed = applyWhiteouts(target, whiteouts, result.paths);
    const report: LayerReport = {
      index,
      name: layers[index]!.name,
      compression,
      entries: result.entries,
      bytes: result.bytes,
      whiteouts: whiteouts.length,
      removed,
    };
    options.onLayer?.(report);
    reports.push(report);
  });
  return reports;
}
