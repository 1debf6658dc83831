import { Flags } from '@oclif/core';

import { shortImageId } from '../../appc/identifiers.js';
import { TspodCommand } from '../../cli/base-command.js';
import { parseDuration } from '../../cli/duration.js';
import { collectGarbage, type GcReport } from '../../store/gc.js';

export default class ImageGc extends TspodCommand<typeof ImageGc> {
  static override summary = 'Remove unused images, unused rendered trees and leftovers of interrupted imports';
  static override examples = ['<%= config.bin %> image gc', '<%= config.bin %> image gc --grace-period=0'];
  static override enableJsonFlag = true;
  static override flags = {
    'grace-period': Flags.string({ description: 'remove images not used for this long (Go duration: 24h, 30m, 0)', default: '24h' }),
  };

  public async run(): Promise<GcReport> {
    const report = await collectGarbage(this.context.store, { gracePeriodMs: parseDuration(this.flags['grace-period'], 'grace-period') });
    for (const image of report.removedImages) this.log(`removed image ${shortImageId(image.id)} (${image.name})`);
    for (const tree of report.removedTrees) this.log(`removed tree ${tree}`);
    for (const tree of report.deferredTrees) this.log(`kept tree ${tree}: in use`);
    if (report.removedLeftovers.length > 0) this.log(`removed ${report.removedLeftovers.length} leftover file(s) of interrupted work`);
    return report;
  }
}
