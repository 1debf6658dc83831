import { Args, Flags } from '@oclif/core';

import { parseLabelFlag } from '../../appc/labels.js';
import { TspodCommand } from '../../cli/base-command.js';
import { extractImage } from '../../image/unpack.js';

export default class ImageExtract extends TspodCommand<typeof ImageExtract> {
  static override summary = 'Unpack a stored image (without its dependencies) into a directory';
  static override examples = ['<%= config.bin %> image extract example.com/app:1.0 ./app', '<%= config.bin %> image extract --rootfs-only sha512-0123 ./rootfs'];
  static override args = {
    image: Args.string({ description: 'image id (any unique prefix) or name[:version]', required: true }),
    directory: Args.string({ description: 'directory to create', required: true }),
  };
  static override flags = {
    'rootfs-only': Flags.boolean({ description: 'write only the contents of rootfs/', default: false }),
    overwrite: Flags.boolean({ description: 'replace the directory if it exists', default: false }),
    label: Flags.string({ description: 'label to select the image by (name=value)', multiple: true }),
  };

  public async run(): Promise<{ id: string; path: string }> {
    const { store } = this.context;
    const record = store.resolveImage(this.args.image, (this.flags.label ?? []).map((l) => parseLabelFlag(l)));
    const path = await extractImage(store, record.id, this.args.directory, { rootfsOnly: this.flags['rootfs-only'], overwrite: this.flags.overwrite });
    return { id: record.id, path };
  }
}
