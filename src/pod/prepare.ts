// `tspod prepare` (and the first half of `tspod run`): resolve the images under the pull policy,
// build the pod manifest, render every app's tree, and lay out the pod directory that stage1
// reads (stage1/contract.ts): embryo -> prepare (locked) -> prepared. Nothing is left listed as
// prepared unless every file is written; a failure moves the pod to garbage.
import fs from 'node:fs';
import path from 'node:path';

import { POD_FILES, type RunOptions } from '../../stage1/contract.js';
import { resolveImageRef } from '../fetch/resolve.js';
import { checkRunsHere } from '../oci/platform.js';
import type { FetchContext } from '../fetch/local-aci.js';
import { writeFileAtomic, writeJsonAtomic } from '../store/atomic.js';
import { renderTree } from '../store/trees.js';
import { buildPodManifest, type BuiltPod } from './manifest.js';
import type { RunArgs } from './run-args.js';
import { beginPrepare, createEmbryo, finishPrepare, moveToGarbage, podPath, type Pod } from './state.js';

export interface PreparedPod {
  uuid: string;
  /** The pod directory (pods/prepared/<uuid>, or pods/prepare/<uuid> while `keepLock`). */
  podDir: string;
  built: BuiltPod;
  /** The prepare-state pod with its lock, when the caller asked to keep it (`tspod run`). */
  pod?: Pod;
}

export interface PrepareOptions {
  fetch: FetchContext;
  warn: (message: string) => void;
  /** Keep the pod in `prepare`, locked, for `tspod run` to move straight to `run`. */
  keepLock?: boolean;
}

export async function preparePod(args: RunArgs, options: PrepareOptions): Promise<PreparedPod> {
  const { store } = options.fetch;
  const built = await buildPodManifest(args, {
    resolveImage: async (ref) => {
      const record = await resolveImageRef(ref, options.fetch, args.pod.pullPolicy, args.pod.platform);
      const manifest = store.manifest(record.id);
      // A foreign os/arch (fetched with --arch, say) is refused before any pod directory exists.
      checkRunsHere(ref, manifest.labels);
      return { id: record.id, manifest };
    },
    readEnvFile: (file) => fs.readFileSync(file, 'utf8'),
    readFile: (file) => fs.readFileSync(file),
    warn: options.warn,
  });
  // Rendered before the pod exists, so a missing dependency fails before anything is on disk.
  const trees = new Map<string, string>();
  for (const app of built.apps) trees.set(app.name, (await renderTree(store, app.image.id)).info.treeId);

  const dir = store.layout.root;
  let pod = beginPrepare(dir, store.sys, createEmbryo(dir, store.sys));
  try {
    const podDir = podPath(dir, pod.location, pod.uuid);
    writeJsonAtomic(store.sys, path.join(podDir, POD_FILES.manifest), built.manifest);
    writeJsonAtomic(store.sys, path.join(podDir, POD_FILES.runOptions), built.runOptions satisfies RunOptions);
    for (const app of built.apps) {
      const appDir = path.join(podDir, POD_FILES.appsDir, app.name);
      fs.mkdirSync(appDir, { recursive: true, mode: 0o750 });
      writeFileAtomic(store.sys, path.join(appDir, 'tree'), `${trees.get(app.name)}\n`);
      writeFileAtomic(store.sys, path.join(appDir, 'image-manifest'), store.manifestBytes(app.image.id));
    }
    if (built.uuidFileSave !== undefined) writeFileAtomic(store.sys, built.uuidFileSave, `${pod.uuid}\n`);
    if (options.keepLock === true) return { uuid: pod.uuid, podDir, built, pod };
    pod = finishPrepare(dir, store.sys, pod);
    return { uuid: pod.uuid, podDir: podPath(dir, pod.location, pod.uuid), built };
  } catch (err) {
    moveToGarbage(dir, store.sys, pod);
    throw err;
  }
}
