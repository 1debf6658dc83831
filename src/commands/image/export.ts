import { Args, Flags } from '@oclif/core';

import { parseLabelFlag } from '../../appc/labels.js';
import { TspodCommand } from '../../cli/base-command.js';
import { exportImage } from '../../image/unpack.js';

export default class ImageExport extends TspodCommand<typeof ImageExport> {
  static override summary = 'Write a stored image to an ACI file, byte-identical to the stored tar';
  static override examples = ['<%= config.bin %> image export example.com/app:1.0 app.aci', '<%= config.bin %> image export --overwrite sha512-0123 app.aci'];
  static override args = {
    image: Args.string({ description: 'image id (any unique prefix) or name[:version]', required: true }),
    output: Args.string({ description: 'the .aci file to write', required: true }),
  };
  static override flags = {
    overwrite: Flags.boolean({ description: 'replace the output file if it exists', default: false }),
    label: Flags.string({ description: 'label to select the image by (name=value)', multiple: true }),
  };

  public async run(): Promise<{ id: string; path: string }> {
    const { store } = this.context;
    const record = store.resolveImage(this.args.image, (this.flags.label ?? []).map((l) => parseLabelFlag(l)));
    const path = await exportImage(store, record.id, this.args.output, { overwrite: this.flags.overwrite });
    return { id: record.id, path };
  }
}
