// Applying OCI layers top-down: the topmost layer is extracted first and each lower layer only
// where no upper layer decided the path, so every file is written once, in its final state, and a
// recorder (src/fetch/oci-pack.ts) can write the image's ACI from the same bytes while they are
// extracted, with no second pass over the tree. The result is the tree applyLayers (layers.ts)
// makes bottom-up; where that cannot be shown for an image, MergeFallback is thrown and the caller
// applies the layers bottom-up instead.
//
// image-spec layer.md "Applying Changesets", turned around. A lower entry at path P is skipped when
// an upper layer has
// - an entry at P (the topmost entry of a path wins, a directory's metadata included);
// - an implicit directory at P (a parent of its entries) and the lower entry is not a directory
//   (bottom-up, the directory replaces it; a lower directory entry still gives it its metadata);
// - a non-directory entry or a whiteout `.wh.X` at P or at an ancestor of P (bottom-up, these
//   remove the lower tree there);
// - an opaque marker in an ancestor directory of P.
// What a layer hides applies only to the layers below it (whiteouts never hide their own layer's
// entries). Entries that are skipped are still checked as bottom-up checks them: an entry below a
// same-layer symlink or file, or a file where the layer made a directory, refuses the layer.
//
// Hardlinks are made after all layers (extract.ts deferHardlinks, linkInTree), lowest layer
// first, so every target exists. Bottom-up, a hardlink names its target as it was when its layer
// was applied: when an upper layer, or a later entry of the link's own layer, replaces or hides
// that target, the link's bytes are not in the tree this merge makes, and MergeFallback is thrown.
import { ImageFormatError } from '../errors.js';
import { extractTar, linkInTree, type EntryType, type ExtractRecorder } from '../image/extract.js';
import { forEachLayer, type ApplyLayersOptions, type LayerReport, type LayerSource } from './layers.js';
import { parseWhiteout } from './whiteouts.js';

/** The merge cannot reproduce the bottom-up tree of this image: apply its layers bottom-up. */
export class MergeFallback extends Error {
  override readonly name = 'MergeFallback';
}

export interface MergeOptions extends ApplyLayersOptions {
  /**
   * Told about every entry as it is made, in the merge's order (extract.ts ExtractRecorder), except
   * the root, the implicit directories and the hardlinks, which the result lists.
   */
  recorder?: ExtractRecorder;
  /** Awaited between chunks (extract.ts `pace`): lets the recorder's consumer catch up. */
  pace?: () => Promise<void>;
}

export interface MergeResult {
  reports: LayerReport[];
  /** Every directory of the tree, '' for the root. */
  directories: string[];
  /** Directories no layer has an entry for (parents of entries only), in the order they were made. */
  implicit: string[];
  /** The hardlinks, as [path, target], in the order they were made: a target always comes before a link to it. */
  links: Array<[string, string]>;
}

/**
 * Applies `layers` (lowest first, as in the manifest) onto `target`, an existing empty directory,
 * from the top down (see the module comment). Rejects with ImageFormatError on a hostile, corrupt
 * or digest-mismatched layer and with MergeFallback when the image needs the bottom-up order;
 * `target` then holds a partial tree, which the caller discards.
 */
export async function mergeLayers(target: string, layers: readonly LayerSource[], options: MergeOptions): Promise<MergeResult> {
  /** Paths an upper layer has an entry for. */
  const claimed = new Set<string>();
  /** Directories upper layers made as parents of their entries, without an entry of their own. */
  const implicitAbove = new Set<string>();
  /** Paths whose whole subtree upper layers replaced (non-directories, whiteouts). */
  const hiddenTrees = new Set<string>();
  /** Directories whose lower contents upper layers' opaque markers hide. */
  const opaque = new Set<string>();
  const directories = new Set<string>();
  const implicitOrder: string[] = [];
  /** Directories made or merged from an entry of some layer (the others are implicit). */
  const explicitDirs = new Set<string>();
  const linksByLayer: Array<Array<[string, string]>> = [];
  const reports: LayerReport[] = [];
  /** Whether an upper layer had a root entry (`./`): the topmost one gives the root its metadata. */
  let rootDecided = false;

  const shadowed = (rel: string, type: EntryType): boolean => {
    if (claimed.has(rel) || hiddenTrees.has(rel) || opaque.has('')) return true;
    if (type !== 'directory' && implicitAbove.has(rel)) return true;
    for (let end = rel.indexOf('/'); end !== -1; end = rel.indexOf('/', end + 1)) {
      const ancestor = rel.slice(0, end);
      if (hiddenTrees.has(ancestor) || opaque.has(ancestor)) return true;
    }
    return false;
  };

  const order = layers.map((_, index) => layers.length - 1 - index);
  await forEachLayer(layers, order, options, async (index, { compression, output }) => {
    /** Every entry of this layer, skipped ones included (whiteout markers are not entries). */
    const entries = new Map<string, EntryType>();
    /** The strict ancestors of this layer's entries: the directories it makes. */
    const parents = new Set<string>();
    const hides: string[] = [];
    const opaques: string[] = [];
    /** Targets of this layer's hardlinks not yet seen in it: a lower layer's files, which it must not replace. */
    const lowerTargets = new Set<string>();
    const links: Array<[string, string]> = [];
    let whiteouts = 0;
    const recorder: ExtractRecorder = {
      entry: (rel, type, meta) => {
        // The root's metadata is final only after all layers: the caller records the root then.
        if (rel === '') {
          rootDecided = true;
          return;
        }
        if (type === 'directory') explicitDirs.add(rel);
        options.recorder?.entry(rel, type, meta);
      },
      data: (chunk) => options.recorder?.data(chunk),
      entryEnd: () => options.recorder?.entryEnd(),
    };
    const result = await extractTar(output, target, {
      sys: options.sys,
      ...(options.privileged === undefined ? {} : { privileged: options.privileged }),
      ...(options.limits === undefined ? {} : { limits: options.limits }),
      ...(options.onWarning === undefined ? {} : { onWarning: options.onWarning }),
      ...(options.pace === undefined ? {} : { pace: options.pace }),
      recorder,
      rootEntry: rootDecided ? 'ignore' : 'apply',
      filter: (rel, type) => {
        const whiteout = parseWhiteout(rel);
        if (whiteout === 'ignore') return false;
        if (whiteout !== undefined) {
          whiteouts += 1;
          (whiteout.kind === 'opaque' ? opaques : hides).push(whiteout.path);
          // Whiteout files themselves never appear in the result (layer.md).
          return false;
        }
        // The refusals of extract.ts's ensureDir and makeRoom, for entries skipped here too.
        for (let end = rel.indexOf('/'); end !== -1; end = rel.indexOf('/', end + 1)) {
          const ancestor = rel.slice(0, end);
          const known = entries.get(ancestor);
          if (known !== undefined && known !== 'directory') {
            throw new ImageFormatError(`extract ${rel}: parent ${ancestor} is a ${known === 'link' ? 'file' : known} in this archive`);
          }
          parents.add(ancestor);
        }
        if (type !== 'directory' && parents.has(rel)) {
          throw new ImageFormatError(`extract ${rel}: conflicts with the directory ${rel} created earlier from this archive`);
        }
        if (lowerTargets.has(rel)) throw new MergeFallback(`a hardlink of layer ${index + 1} names the file ${rel} of a lower layer, which the layer then replaces`);
        entries.set(rel, type);
        if (type !== 'directory') hides.push(rel);
        return !shadowed(rel, type);
      },
      deferHardlinks: (rel, linkRel) => {
        // Bottom-up, the link would get the target as it was before the upper layers replaced it.
        if (shadowed(linkRel, 'file')) throw new MergeFallback(`the target ${linkRel} of the hardlink ${rel} is replaced by an upper layer`);
        if (!entries.has(linkRel)) lowerTargets.add(linkRel);
        links.push([rel, linkRel]);
      },
    });
    // What this layer decided holds for the layers below it.
    for (const rel of entries.keys()) claimed.add(rel);
    for (const rel of hides) hiddenTrees.add(rel);
    for (const rel of opaques) opaque.add(rel);
    for (const [rel, type] of result.paths) if (type === 'directory') directories.add(rel);
    for (const rel of result.implicit) {
      if (!claimed.has(rel) && !implicitAbove.has(rel)) {
        implicitAbove.add(rel);
        implicitOrder.push(rel);
      }
    }
    linksByLayer.push(links);
    const report: LayerReport = { index, name: layers[index]!.name, compression, entries: result.entries, bytes: result.bytes, whiteouts, removed: 0 };
    options.onLayer?.(report);
    reports.push(report);
  });

  // Lowest layer first: a link's target, when it is itself a link of a lower layer, exists by then.
  const links = linksByLayer.reverse().flat();
  for (const [rel, linkRel] of links) {
    const why = linkInTree(target, rel, linkRel);
    if (why !== undefined) throw new MergeFallback(`the hardlink ${rel} cannot be made after the layers: ${why}`);
  }
  directories.add('');
  return {
    reports: reports.sort((a, b) => a.index - b.index),
    directories: [...directories],
    implicit: implicitOrder.filter((rel) => !explicitDirs.has(rel)),
    links,
  };
}
