// Applying OCI layers: an ordered list of layer blobs becomes one directory tree. Each layer is
// decompressed (decompress.ts), extracted through the project's safe extractor
// (src/image/extract.ts, so hostile entries are refused exactly as for ACIs) with `overwrite`,
// and its whiteouts (whiteouts.ts) are then applied to what the lower layers left.
//
// image-spec layer.md "Applying Changesets": entries replace lower ones at the same path;
// whiteout files are never materialised; whiteouts apply only to lower layers, so a layer's own
// entries survive its opaque marker whatever their order in the tar.
import type { Readable } from 'node:stream';

import { ImageFormatError } from '../errors.js';
import { extractTar, type ExtractLimits } from '../image/extract.js';
import type { Syscalls } from '../sys/types.js';
import { openLayer, type LayerCompression } from './decompress.js';
import { applyWhiteouts, parseWhiteout, type Whiteout } from './whiteouts.js';

export interface LayerSource {
  /** The layer's media type from the manifest descriptor. */
  mediaType: string;
  /** For messages: usually the descriptor digest. */
  name: string;
  /** Opens the blob; a digest-verifying stream (layout.ts openBlob) fails at its end on mismatch. */
  open: () => Readable | Promise<Readable>;
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
 * Applies `layers` in order (lowest first) onto `target`, an existing directory (normally empty).
 * Rejects with ImageFormatError on a hostile, corrupt or digest-mismatched layer; `target` then
 * holds a partial tree and the caller, which extracts into a temporary directory, discards it.
 */
export async function applyLayers(target: string, layers: readonly LayerSource[], options: ApplyLayersOptions): Promise<LayerReport[]> {
  const reports: LayerReport[] = [];
  for (const [index, layer] of layers.entries()) {
    const what = `layer ${index + 1}/${layers.length} (${layer.name})`;
    const input = await layer.open();
    const { compression, output } = await openLayer(input, layer.mediaType, what, { onWarning: options.onWarning });
    const whiteouts: Whiteout[] = [];
    let result;
    try {
      result = await extractTar(output, target, {
        sys: options.sys,
        overwrite: index > 0,
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
    } catch (err) {
      output.destroy();
      if (err instanceof ImageFormatError && !err.message.includes(layer.name)) {
        throw new ImageFormatError(`apply ${what}: ${err.message}`, { cause: err, suggestions: err.suggestions });
      }
      throw err;
    }
    const removed = applyWhiteouts(target, whiteouts, result.paths);
    const report: LayerReport = {
      index,
      name: layer.name,
      compression,
      entries: result.entries,
      bytes: result.bytes,
      whiteouts: whiteouts.length,
      removed,
    };
    options.onLayer?.(report);
    reports.push(report);
  }
  return reports;
}
