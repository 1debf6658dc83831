import { Flags } from '@oclif/core';

import { TspodCommand } from '../../cli/base-command.js';
import { imageArg, labelFlag, resolveImageArg } from '../../cli/image-flags.js';

export default class ImageCatManifest extends TspodCommand<typeof ImageCatManifest> {
  static override summary = 'Print the manifest of a stored image';
  static override examples = [
    '<%= config.bin %> image cat-manifest sha512-0123abcd',
    '<%= config.bin %> image cat-manifest example.com/app:1.0 --pretty-print=false',
  ];
  static override args = { image: imageArg };
  static override flags = {
    'pretty-print': Flags.boolean({ description: 'indent the JSON', default: true, allowNo: true }),
    label: labelFlag,
  };

  public async run(): Promise<unknown> {
    const { store } = this.context;
    const record = resolveImageArg(store, this.args.image, this.flags.label);
    const manifest = store.manifest(record.id);
    this.log(this.flags['pretty-print'] ? JSON.stringify(manifest, null, 2) : JSON.stringify(manifest));
    return manifest;
  }
}
