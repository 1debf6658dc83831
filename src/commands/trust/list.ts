import { Flags } from '@oclif/core';

import { TspodCommand } from '../../cli/base-command.js';
import { renderTable } from '../../output/table.js';
import type { TrustedKeyInfo } from '../../trust/keystore.js';

export default class TrustList extends TspodCommand<typeof TrustList> {
  static override summary = 'List the keys trusted to sign images';
  static override examples = ['<%= config.bin %> trust list', '<%= config.bin %> trust list --json'];
  static override enableJsonFlag = true;
  static override flags = {
    'no-legend': Flags.boolean({ description: 'do not print the header line', default: false }),
  };

  public async run(): Promise<TrustedKeyInfo[]> {
    const keys = await (await this.context.keystore()).list();
    this.log(
      renderTable(
        [
          { header: 'FINGERPRINT', get: (k: TrustedKeyInfo) => k.fingerprint },
          { header: 'SCOPE', get: (k) => k.prefix ?? '(root)' },
          { header: 'LAYER', get: (k) => k.layer },
          { header: 'USER IDS', get: (k) => k.userIds.join(', ') },
          { header: 'EXPIRES', get: (k) => k.expires ?? 'never' },
        ],
        keys,
        { noLegend: this.flags['no-legend'] },
      ),
    );
    return keys;
  }
}
