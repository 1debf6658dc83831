import { Args, Flags } from '@oclif/core';

import { TspodCommand } from '../cli/base-command.js';
import { runFetchCommand } from '../cli/fetch-command.js';
import { PULL_POLICIES, type FetchResult, type PullPolicy } from '../fetch/context.js';
import { PLATFORM_FLAG_HELP } from '../oci/platform.js';

export default class Fetch extends TspodCommand<typeof Fetch> {
  static override summary = 'Fetch an image by name, URL or file, verify it against the trust policy and store it';
  static override description =
    'IMAGE is an appc name (example.com/app:1.0, found by appc discovery: meta tags, then the _appc-discovery DNS TXT ' +
    'record), an https:// URL (its signature is URL.asc), or an ACI file (./app.aci, /path/app.aci, file://..., ' +
    'anything ending in .aci; its signature is FILE.asc), or an OCI image (docker://[REGISTRY/]REPO[:TAG|@DIGEST], ' +
    'oci:DIR[:TAG], oci-archive:FILE[:TAG]; converted to an ACI after its simple signing signatures pass the policy ' +
    '(policy.json, registries.d lookasides; by default a key trusted for docker://REGISTRY/REPO), before any layer is ' +
    'downloaded). The detached signature is fetched first and its signer checked ' +
    'against the keys trusted for the image name before the image is downloaded; the image is verified again as it ' +
    'streams into the store, and its name and labels must match what was asked for. Missing dependencies are fetched ' +
    'the same way. --os/--arch/--variant choose the manifest of an OCI index (default: this machine) and mean ' +
    '--label os=/arch= (appc spelling) for the other kinds. Prints the image id; progress goes to stderr (JSON lines ' +
    'on stdout with --json).';
  static override examples = [
    '<%= config.bin %> fetch example.com/app:1.0',
    '<%= config.bin %> fetch --label arch=aarch64 example.com/app:1.0',
    '<%= config.bin %> fetch https://example.com/images/app-1.0-linux-amd64.aci',
    '<%= config.bin %> fetch --pull-policy=new example.com/app    # no request when the store has it',
    '<%= config.bin %> fetch ./app.aci',
    '<%= config.bin %> fetch --insecure-options=image ./unsigned.aci',
    '<%= config.bin %> fetch --signature ./sigs/app.aci.asc ./app.aci',
    '<%= config.bin %> fetch --insecure-options=image docker://docker.io/library/busybox:1.36',
    '<%= config.bin %> fetch --insecure-options=image oci:./layout:1.0',
    '<%= config.bin %> fetch --insecure-options=image --arch arm64 docker://docker.io/library/busybox:1.36',
    '<%= config.bin %> fetch --json example.com/app:1.0 | jq -c .',
  ];
  static override enableJsonFlag = true;
  static override args = {
    image: Args.string({ description: 'appc name (example.com/app:1.0), https:// URL, image file (.aci), docker://, oci: or oci-archive: reference', required: true }),
  };
  static override flags = {
    'pull-policy': Flags.string({
      description: 'never: the store only; new: the store, fetching what is missing; update: ask the source again (revalidating a stored download)',
      options: [...PULL_POLICIES],
      default: 'update',
    }),
    'no-store': Flags.boolean({ description: 'ignore the store: always download (the image is still stored)', default: false }),
    label: Flags.string({ description: 'label the image must carry (name=value), also a discovery template variable', multiple: true }),
    signature: Flags.string({ description: 'detached signature file of a local image file or URL (default: IMAGE.asc); for an OCI image, a simple signing signature file' }),
    quiet: Flags.boolean({ char: 'q', description: 'print nothing but the image id (no progress)', default: false }),
    os: Flags.string({ description: PLATFORM_FLAG_HELP.os }),
    arch: Flags.string({ description: PLATFORM_FLAG_HELP.arch }),
    variant: Flags.string({ description: PLATFORM_FLAG_HELP.variant }),
  };

  public async run(): Promise<FetchResult> {
    return runFetchCommand(
      {
        image: this.args.image,
        quiet: this.flags.quiet,
        json: this.jsonEnabled(),
        pullPolicy: this.flags['pull-policy'] as PullPolicy,
        noStore: this.flags['no-store'],
        labels: this.flags.label ?? [],
        signature: this.flags.signature,
        os: this.flags.os,
        arch: this.flags.arch,
        variant: this.flags.variant,
      },
      this.context,
      (line) => this.log(line),
    );
  }

  /** `--json` prints JSON lines (progress events, then this result), so one object per line. */
  public override logJson(json: unknown): void {
    process.stdout.write(`${JSON.stringify(json)}\n`);
  }
}
