import { Args, Flags } from '@oclif/core';

import { parseLabelFlag } from '../../appc/labels.js';
import { TspodCommand } from '../../cli/base-command.js';

export default class ImageCatManifest extends TspodCommand<typeof ImageCatManifest> {
  static override summary = 'Print the manifest of a stored image';
  static override examples = [
    '<%= config.bin %> image cat-manifest sha512-0123abcd',
    '<%= config.bin %> image cat-manifest example.com/app:1.0 --pretty-print=false',
  ];
  static override args = { image: Args.string({ description: 'image id (any unique prefix) or name[:version]', required: true }) };
  static override flags = {
    'pretty-print': Flags.boolean({ description: 'indent the JSON', default: true, allowNo: true }),
    label: Flags.string({ description: 'label to select the image by (name=value)', multiple: true }),
  };

  public async run(): Promise<unknown> {
    const { store } = this.context;
    const record = store.resolveImage(this.args.image, (this.flags.label ?? []).map((l) => parseLabelFlag(l)));
    const manifest = store.manifest(record.id);
    this.log(this.flags['pretty-print'] ? JSON.stringify(manifest, null, 2) : JSON.stringify(manifest));
    return manifest;
  }
}
