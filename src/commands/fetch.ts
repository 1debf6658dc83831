import { Args, Flags } from '@oclif/core';

import { parseLabelFlag } from '../appc/labels.js';
import { TspodCommand } from '../cli/base-command.js';
import { fetchImage } from '../fetch/index.js';
import type { FetchResult } from '../fetch/local-aci.js';

export default class Fetch extends TspodCommand<typeof Fetch> {
  static override summary = 'Fetch an image, verify it against the trust policy and store it';
  static override description =
    'Reads an ACI from a file, checks its detached signature (FILE.asc) against the trusted keys for the image name, ' +
    'and stores it content-addressed. Prints the image id.';
  static override examples = [
    '<%= config.bin %> fetch ./app.aci',
    '<%= config.bin %> fetch --insecure-options=image ./unsigned.aci',
    '<%= config.bin %> fetch --signature ./sigs/app.aci.asc ./app.aci',
  ];
  static override enableJsonFlag = true;
  static override args = {
    image: Args.string({ description: 'image file (.aci)', required: true }),
  };
  static override flags = {
    signature: Flags.string({ description: 'detached signature file (default: IMAGE.asc)' }),
    label: Flags.string({ description: 'label the image must carry (name=value)', multiple: true }),
  };

  public async run(): Promise<FetchResult> {
    const result = await fetchImage(this.args.image, this.context.fetchContext(), {
      signaturePath: this.flags.signature,
      labels: (this.flags.label ?? []).map((l) => parseLabelFlag(l)),
    });
    if (result.signer !== null) process.stderr.write(`tspod: signature verified: signed by ${result.signer}\n`);
    this.log(result.record.id);
    return result;
  }
}
