import { Args, Flags } from '@oclif/core';

import { TspodCommand } from '../../cli/base-command.js';
import { imageArg, labelFlag, resolveImageArg } from '../../cli/image-flags.js';
import { exportImage } from '../../image/unpack.js';

export default class ImageExport extends TspodCommand<typeof ImageExport> {
  static override summary = 'Write a stored image to an ACI file, byte-identical to the stored tar';
  static override examples = ['<%= config.bin %> image export example.com/app:1.0 app.aci', '<%= config.bin %> image export --overwrite sha512-0123 app.aci'];
  static override args = {
    image: imageArg,
    output: Args.string({ description: 'the .aci file to write', required: true }),
  };
  static override flags = {
    overwrite: Flags.boolean({ description: 'replace the output file if it exists', default: false }),
    label: labelFlag,
  };

  public async run(): Promise<{ id: string; path: string }> {
    const { store } = this.context;
    const record = resolveImageArg(store, this.args.image, this.flags.label);
    const path = await exportImage(store, record.id, this.args.output, { overwrite: this.flags.overwrite });
    return { id: record.id, path };
  }
}
