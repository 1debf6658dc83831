import { Args } from '@oclif/core';

import { TspodCommand } from '../../cli/base-command.js';
import { imageArg, resolveImageArg, unpackFlags } from '../../cli/image-flags.js';
import { renderImageTo } from '../../image/unpack.js';

export default class ImageRender extends TspodCommand<typeof ImageRender> {
  static override summary = 'Unpack a stored image with its dependencies applied, as a pod sees it';
  static override examples = ['<%= config.bin %> image render example.com/app:1.0 ./app', '<%= config.bin %> image render --rootfs-only sha512-0123 ./rootfs'];
  static override args = { image: imageArg, directory: Args.string({ description: 'directory to create', required: true }) };
  static override flags = unpackFlags;

  public async run(): Promise<{ id: string; path: string }> {
    const { store } = this.context;
    const record = resolveImageArg(store, this.args.image, this.flags.label);
    const path = await renderImageTo(store, record.id, this.args.directory, { rootfsOnly: this.flags['rootfs-only'], overwrite: this.flags.overwrite });
    return { id: record.id, path };
  }
}
