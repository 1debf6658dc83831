// appc rendering: an image and its dependencies into one root filesystem (spec/ace.md
// "Filesystem Setup"). Plan first (`planRender`: the layer order and the whitelists in force, as
// data), then apply (`renderImage`: extract each layer's rootfs bottom-up with overwrite).
//
// The rule, from the reference pkg/acirenderer (acirenderer.go, resolve.go), written down:
// 1. Order. Dependencies depth-first in list order, each dependency's own dependencies before it,
//    the image itself last; later layers override earlier ones. A->[B,C], C->[D] gives B, D, C, A.
//    A diamond repeats the shared image (A->[B,C], B->[D], C->[D] gives D, B, D, C, A), and each
//    pass uses the whitelists of its own path. The reference walks top-down with "first wins";
//    extracting bottom-up with overwrite gives the same tree: a path an upper image supplies
//    replaces the lower one, and an upper NON-directory replaces a lower directory and everything
//    under it (the reference skips lower files whose parent an upper image supplied as a
//    non-directory). A symlink at a path is replaced, never followed (extract.ts `overwrite`).
// 2. pathWhitelist, matched on EXACT cleaned paths (no prefixes, no globs; '/a/b/' == '/a/b'):
//    - an image's own whitelist filters its own non-directories; its own directories are kept;
//    - an image's entries, directories included, must be listed in the whitelist of the images
//      above it. The reference applies the top-most whitelist found scanning back through its
//      flattened list (getUpperPWLM), which can pick a sibling branch's image; we apply every
//      non-empty whitelist on the image's OWN path to the root, which is the same in the common
//      case (only the app image has one) and never lets a dependency add a path an image above
//      it excluded. Parents dropped by a whitelist are created implicitly (0755) when a listed
//      file needs them, as the reference's consumers do.
// 3. Loops are errors naming the cycle; a dependency's imageID, when given, must equal the id
//    the source resolved (the spec: the retrieved dependency MUST hash to it).
import path from 'node:path';
import type { Readable } from 'node:stream';

import type { Dependency, ImageManifest } from '../appc/types.js';
import { ImageFormatError, NotFoundError } from '../errors.js';
import type { Syscalls } from '../sys/types.js';
import { extractTar } from './extract.js';

export interface RenderSource {
  manifest(id: string): Promise<ImageManifest>;
  /** The uncompressed ACI tar. */
  openTar(id: string): Promise<Readable>;
  /** Full image id; throws NotFoundError with a clear message when missing. */
  resolveDependency(dep: Dependency): Promise<string>;
}

export interface RenderLayer {
  id: string;
  /** The image's name, for messages. */
  name: string;
  /** 0 for the image rendered, 1 for its dependencies, ... */
  depth: number;
  /** The image's own pathWhitelist as relative paths; filters its non-directories. Absent when empty. */
  ownWhitelist?: string[];
  /** Non-empty whitelists of the images above it on its path, nearest first; every one must list each entry. */
  upperWhitelists: string[][];
}

/** A guard against dependency graphs whose diamonds multiply into absurd layer counts. */
export const MAX_RENDER_LAYERS = 256;

/** '/usr/bin/' -> 'usr/bin', as filepath.Join("rootfs", p) cleans it in the reference. */
function whitelistPaths(list: string[] | undefined): string[] | undefined {
  if (list === undefined || list.length === 0) return undefined;
  return list.map((p) => path.posix.normalize(`/${p}`).replace(/^\/+/, '').replace(/\/+$/, ''));
}

function describe(manifest: ImageManifest, id: string): string {
  return `${manifest.name} (${id.length > 19 ? `${id.slice(0, 19)}...` : id})`;
}

function describeDependency(dep: Dependency): string {
  const labels = (dep.labels ?? []).map((l) => `${l.name}=${l.value}`).join(',');
  return labels === '' ? dep.imageName : `${dep.imageName},${labels}`;
}

/** The layers to extract, bottom first. Pure apart from reading manifests through `source`. */
export async function planRender(rootId: string, source: RenderSource): Promise<RenderLayer[]> {
  const layers: RenderLayer[] = [];
  const rootManifest = await source.manifest(rootId);

  const visit = async (id: string, manifest: ImageManifest, ancestors: Array<{ id: string; name: string }>, upper: string[][]): Promise<void> => {
    const own = whitelistPaths(manifest.pathWhitelist);
    // What this image's dependencies must pass: this image's whitelist, nearest first, then ours.
    const forDeps = own === undefined ? upper : [own, ...upper];
    const chain = [...ancestors, { id, name: manifest.name }];
    for (const dep of manifest.dependencies ?? []) {
      let depId: string;
      try {
        depId = await source.resolveDependency(dep);
      } catch (err) {
        // Whatever the source says, the message names the dependency and who needs it.
        if (!(err instanceof NotFoundError)) throw err;
        throw new NotFoundError(`render ${describe(manifest, id)}: dependency ${describeDependency(dep)} not found: ${err.message}`, {
          cause: err,
          suggestions: [`tspod fetch ${describeDependency(dep)}`],
        });
      }
      if (dep.imageID !== undefined && dep.imageID !== '' && dep.imageID !== depId) {
        throw new ImageFormatError(
          `render ${describe(manifest, id)}: dependency ${describeDependency(dep)} resolved to ${depId}, but the manifest requires imageID ${dep.imageID}`,
        );
      }
      const loopAt = chain.findIndex((c) => c.id === depId);
      if (loopAt !== -1) {
        const cycle = [...chain.slice(loopAt).map((c) => c.name), chain[loopAt]!.name].join(' -> ');
        throw new ImageFormatError(`render ${describe(rootManifest, rootId)}: dependency loop ${cycle}`);
      }
      const depManifest = await source.manifest(depId);
      await visit(depId, depManifest, chain, forDeps);
    }
    if (layers.length >= MAX_RENDER_LAYERS) {
      throw new ImageFormatError(`render ${describe(rootManifest, rootId)}: more than ${MAX_RENDER_LAYERS} layers`);
    }
    layers.push({
      id,
      name: manifest.name,
      depth: ancestors.length,
      ...(own === undefined ? {} : { ownWhitelist: own }),
      upperWhitelists: upper,
    });
  };

  await visit(rootId, rootManifest, [], []);
  return layers;
}

/** The filter a layer's extraction uses (rule 2 above). */
export function layerFilter(layer: RenderLayer): ((relPath: string, type: string) => boolean) | undefined {
  const own = layer.ownWhitelist === undefined ? undefined : new Set(layer.ownWhitelist);
  const upper = layer.upperWhitelists.map((list) => new Set(list));
  if (own === undefined && upper.length === 0) return undefined;
  return (relPath, type) => {
    if (own !== undefined && type !== 'directory' && !own.has(relPath)) return false;
    for (const set of upper) if (!set.has(relPath)) return false;
    return true;
  };
}

export interface RenderOptions {
  source: RenderSource;
  sys: Syscalls;
  privileged?: boolean;
  onWarning?: (message: string) => void;
}

/**
 * Renders `rootId` with its dependencies into `target`, an empty directory: the rootfs contents
 * land directly in it (no `rootfs/` level). Each layer is extracted with overwrite, bottom first.
 */
export async function renderImage(rootId: string, target: string, options: RenderOptions): Promise<{ layers: RenderLayer[]; entries: number }> {
  const layers = await planRender(rootId, options.source);
  let entries = 0;
  for (const layer of layers) {
    const tar = await options.source.openTar(layer.id);
    const filter = layerFilter(layer);
    const result = await extractTar(tar, target, {
      sys: options.sys,
      prefix: 'rootfs/',
      overwrite: true,
      ...(filter === undefined ? {} : { filter }),
      ...(options.privileged === undefined ? {} : { privileged: options.privileged }),
      ...(options.onWarning === undefined ? {} : { onWarning: options.onWarning }),
    });
    entries += result.entries;
  }
  return { layers, entries };
}
