// `tspod trust`: keys from files, URLs, the prefix's ac-discovery-pubkeys (no key argument) or a
// signer identity's WKD/OPENPGPKEY keys (`user@domain`), reviewed and added to the local keystore.
import { Args, Flags } from '@oclif/core';

import { TspodCommand } from '../../cli/base-command.js';
import { closeAgents } from '../../http/client.js';
import { gatherTrustKeys, networkGetter } from '../../trust/discover-keys.js';
import type { TrustedKeyInfo } from '../../trust/keystore.js';
import { resolveTrustTarget, reviewAndAddKeys } from '../../trust/review.js';

export default class Trust extends TspodCommand<typeof Trust> {
  static override summary = 'Trust a key to sign images whose name starts with a prefix (or all images)';
  static override description =
    'Imports ASCII-armored or binary OpenPGP public keys into the local configuration ' +
    '(LOCAL_CONFIG/trustedkeys/prefix.d/PREFIX/FINGERPRINT or root.d/FINGERPRINT, the layout rkt used). A key argument is a ' +
    'file, an https:// URL, or a signer identity user@domain, whose keys are looked up through WKD and OPENPGPKEY DNS ' +
    'records. With --prefix and no key argument, the keys are discovered through the ac-discovery-pubkeys meta tags of ' +
    'https://PREFIX?ac-discovery=1 (walking up the prefix, then the _appc-discovery TXT record). On a terminal the ' +
    'fingerprint, user ids, creation time and origin of each key are shown and you are asked to confirm; without a ' +
    'terminal --skip-fingerprint-review is required.';
  static override examples = [
    '<%= config.bin %> trust --prefix example.com',
    '<%= config.bin %> trust --prefix example.com alice@example.com',
    '<%= config.bin %> trust --prefix example.com ./pubkeys.gpg',
    '<%= config.bin %> trust --prefix example.com/app https://example.com/pubkeys.gpg',
    '<%= config.bin %> trust --root --skip-fingerprint-review ./root.gpg',
    '<%= config.bin %> trust list',
    '<%= config.bin %> trust rm 0123456789abcdef0123456789abcdef01234567',
  ];
  static override strict = false;
  static override enableJsonFlag = true;
  static override args = {
    key: Args.string({
      description: 'key file, https:// URL or signer identity user@domain (several may be given); none: discover the keys of --prefix',
      required: false,
    }),
  };
  static override flags = {
    prefix: Flags.string({ description: 'image name prefix the key is trusted for (example.com/app)', exclusive: ['root'] }),
    root: Flags.boolean({ description: 'trust the key for every image name (needs a key file or URL)', default: false }),
    'skip-fingerprint-review': Flags.boolean({ description: 'add the keys without asking (required without a terminal)', default: false }),
  };

  public async run(): Promise<TrustedKeyInfo[]> {
    const target = resolveTrustTarget({ prefix: this.flags.prefix, root: this.flags.root });
    const { insecure } = this.context;
    const [keystore, network] = await Promise.all([this.context.keystore(), this.context.network()]);
    try {
      // rkt's trust took plain http with --insecure-allow-http; here `http`, or `pubkey` (keys fetched insecurely).
      const allowHttp = insecure.http || insecure.pubkey;
      const sources = await gatherTrustKeys(target, this.positionals, {
        get: networkGetter(network.http),
        dns: network.resolver,
        allowHttp,
        warn: (message) => this.warn(message),
      });
      const result = await reviewAndAddKeys({
        keystore,
        keys: sources.map((s) => s.bytes),
        sources: sources.map((s) => s.location),
        origins: sources.map((s) => s.origin),
        target,
        skipReview: this.flags['skip-fingerprint-review'],
        input: process.stdin,
        output: process.stderr,
        isTTY: process.stdin.isTTY === true && process.stderr.isTTY === true,
        keyArguments: this.positionals,
      });
      // The review has already told the user, on stderr, what was added or declined.
      return result.added;
    } finally {
      // Kept-alive connections would hold the process open after the command is done.
      await closeAgents();
    }
  }
}
