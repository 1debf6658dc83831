import { Args, Flags } from '@oclif/core';

import { TspodCommand } from '../../cli/base-command.js';
import type { TrustedKeyInfo } from '../../trust/keystore.js';
import { loadKeySources, resolveTrustTarget, reviewAndAddKeys } from '../../trust/review.js';

export default class Trust extends TspodCommand<typeof Trust> {
  static override summary = 'Trust a key to sign images whose name starts with a prefix (or all images)';
  static override description =
    'Imports ASCII-armored or binary OpenPGP public keys from files or HTTPS URLs into the local configuration ' +
    '(LOCAL_CONFIG/trustedkeys/prefix.d/PREFIX/FINGERPRINT or root.d/FINGERPRINT, the layout rkt used). On a terminal the ' +
    'fingerprint, user ids and creation time are shown and you are asked to confirm; without a terminal ' +
    '--skip-fingerprint-review is required.';
  static override examples = [
    '<%= config.bin %> trust --prefix example.com ./pubkeys.gpg',
    '<%= config.bin %> trust --prefix example.com/app https://example.com/pubkeys.gpg',
    '<%= config.bin %> trust --root --skip-fingerprint-review ./root.gpg',
    '<%= config.bin %> trust list',
    '<%= config.bin %> trust rm 0123456789abcdef0123456789abcdef01234567',
  ];
  static override strict = false;
  static override enableJsonFlag = true;
  static override args = { key: Args.string({ description: 'key file or https:// URL (several may be given)', required: true }) };
  static override flags = {
    prefix: Flags.string({ description: 'image name prefix the key is trusted for (example.com/app)', exclusive: ['root'] }),
    root: Flags.boolean({ description: 'trust the key for every image name', default: false }),
    'skip-fingerprint-review': Flags.boolean({ description: 'add the keys without asking (required without a terminal)', default: false }),
  };

  public async run(): Promise<TrustedKeyInfo[]> {
    const target = resolveTrustTarget({ prefix: this.flags.prefix, root: this.flags.root });
    const { insecure } = this.context;
    const keystore = await this.context.keystore();
    const sources = await loadKeySources(this.positionals, { allowHttp: insecure.http || insecure.pubkey, insecureTls: insecure.tls });
    const result = await reviewAndAddKeys({
      keystore,
      keys: sources.map((s) => s.bytes),
      sources: sources.map((s) => s.location),
      target,
      skipReview: this.flags['skip-fingerprint-review'],
      input: process.stdin,
      output: process.stderr,
      isTTY: process.stdin.isTTY === true && process.stderr.isTTY === true,
    });
    // The review has already told the user, on stderr, what was added or declined.
    return result.added;
  }
}
