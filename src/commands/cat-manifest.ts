// `tspod cat-manifest UUID`: prints the pod manifest stage0 wrote (`pod` in the pod directory).
import fs from 'node:fs';
import path from 'node:path';

import { Flags } from '@oclif/core';

import { TspodCommand } from '../cli/base-command.js';
import { podUuidArg, uuidFileFlag } from '../cli/pod-flags.js';
import { NotFoundError, ValidationError } from '../errors.js';
import { findPod, podPath } from '../pod/state.js';
import { podUuidsFromArgs } from '../pod/uuid.js';
import { POD_FILES } from '../../stage1/contract.js';

export default class CatManifest extends TspodCommand<typeof CatManifest> {
  static override summary = 'Print the manifest of a pod';
  static override examples = [
    '<%= config.bin %> cat-manifest 5f3a2b1c',
    '<%= config.bin %> cat-manifest --pretty-print=false 5f3a2b1c',
    '<%= config.bin %> cat-manifest --uuid-file=/run/app.uuid',
  ];
  static override args = { uuid: podUuidArg };
  static override flags = {
    'pretty-print': Flags.boolean({ description: 'indent the JSON', default: true, allowNo: true }),
    'uuid-file': uuidFileFlag,
  };

  public async run(): Promise<unknown> {
    const { dir } = this.flags;
    const [uuid] = podUuidsFromArgs(dir, this.args.uuid === undefined ? [] : [this.args.uuid], this.flags['uuid-file']);
    const location = findPod(dir, uuid!);
    if (location === undefined) throw new NotFoundError(`pod ${uuid}: no such pod`, { suggestions: ['tspod list'] });
    const file = path.join(podPath(dir, location, uuid!), POD_FILES.manifest);
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      throw new NotFoundError(`pod ${uuid}: no pod manifest yet (the pod is in ${location})`, { cause: err });
    }
    let manifest: unknown;
    try {
      manifest = JSON.parse(text);
    } catch (err) {
      throw new ValidationError(`pod ${uuid}: manifest ${file} is not JSON`, [(err as Error).message], { cause: err });
    }
    this.log(this.flags['pretty-print'] ? JSON.stringify(manifest, null, 2) : JSON.stringify(manifest));
    return manifest;
  }
}
