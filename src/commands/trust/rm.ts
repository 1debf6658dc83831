import { Args } from '@oclif/core';

import { TspodCommand } from '../../cli/base-command.js';
import type { RemovedKeyInfo } from '../../trust/keystore.js';

export default class TrustRm extends TspodCommand<typeof TrustRm> {
  static override summary = 'Stop trusting a key';
  static override description =
    'Removes the key from the local configuration. A key shipped in the system configuration is masked by an empty ' +
    'file of the same name in the local configuration, as rkt did.';
  static override examples = ['<%= config.bin %> trust rm 0123456789abcdef0123456789abcdef01234567', '<%= config.bin %> trust rm 01234567'];
  static override enableJsonFlag = true;
  static override args = { fingerprint: Args.string({ description: 'key fingerprint (or a unique prefix of 8+ hex digits)', required: true }) };

  public async run(): Promise<RemovedKeyInfo[]> {
    const removed = await (await this.context.keystore()).remove(this.args.fingerprint);
    for (const key of removed) {
      this.log(`${key.action === 'masked' ? 'masked system key' : 'removed key'} ${key.fingerprint} (${key.prefix ?? 'root'}): ${key.changedPath}`);
    }
    return removed;
  }
}
