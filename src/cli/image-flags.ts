// Arguments and flags shared by the commands that take a stored image: the image reference
// (id prefix or name[:version]) with `--label`, and the output flags of export/extract/render.
import { Args, Flags } from '@oclif/core';

import { parseLabelFlag } from '../appc/labels.js';
import type { ImageRecord } from '../store/catalog.js';
import type { Store } from '../store/store.js';

export const imageArg = Args.string({ description: 'image id (any unique prefix) or name[:version]', required: true });

export const labelFlag = Flags.string({ description: 'label to select the image by (name=value)', multiple: true });

export const unpackFlags = {
  'rootfs-only': Flags.boolean({ description: 'write only the contents of rootfs/', default: false }),
  overwrite: Flags.boolean({ description: 'replace the directory if it exists', default: false }),
  label: labelFlag,
};

/** The stored image a command argument names, narrowed by `--label` flags. */
export function resolveImageArg(store: Store, ref: string, labels: string[] | undefined): ImageRecord {
  return store.resolveImage(ref, (labels ?? []).map((l) => parseLabelFlag(l)));
}
