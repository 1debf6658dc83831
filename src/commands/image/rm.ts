import { Args } from '@oclif/core';

import { shortImageId } from '../../appc/identifiers.js';
import { TspodCommand } from '../../cli/base-command.js';
import { removeImage, type ImageRemoval } from '../../store/gc.js';

export default class ImageRm extends TspodCommand<typeof ImageRm> {
  static override summary = 'Remove images from the store';
  static override description =
    'Removes each image and the rendered trees made from it. A tree that a pod still uses is left in place and removed by a later `tspod image gc`.';
  static override examples = ['<%= config.bin %> image rm sha512-0123abcd', '<%= config.bin %> image rm example.com/app:1.0 example.com/db'];
  static override strict = false;
  static override enableJsonFlag = true;
  static override args = { image: Args.string({ description: 'image id (any unique prefix) or name[:version]', required: true }) };

  public async run(): Promise<ImageRemoval[]> {
    const { store } = this.context;
    const removed: ImageRemoval[] = [];
    for (const ref of this.positionals) {
      const record = store.resolveImage(ref);
      const removal = await removeImage(store, record.id);
      removed.push(removal);
      this.log(`successfully removed image ${shortImageId(record.id)}`);
      if (removal.deferred.length > 0) this.warn(`image ${shortImageId(record.id)}: ${removal.deferred.length} rendered tree(s) in use; tspod image gc removes them once unused`);
    }
    return removed;
  }
}
