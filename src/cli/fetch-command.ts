// What `tspod fetch IMAGE` does once its flags are parsed, shared by the oclif command
// (src/commands/fetch.ts) and the fast path of bin/run.js (src/cli/fast-path.ts), which runs the
// plain form `fetch [--quiet] IMAGE` without loading oclif: so both print the same things.
import { parseLabelFlag } from '../appc/labels.js';
import type { FetchResult, PullPolicy } from '../fetch/context.js';
import { fetchImage } from '../fetch/index.js';
import { withPlatform } from '../fetch/platform-request.js';
import { platformFromFlags } from '../oci/platform.js';
import { chooseProgressMode, createProgressReporter } from '../output/progress.js';
import type { Context } from './context.js';

export interface FetchCommandInput {
  image: string;
  quiet: boolean;
  /** --json: progress events and the result as JSON lines (printed by the caller). */
  json: boolean;
  pullPolicy: PullPolicy;
  noStore: boolean;
  labels: readonly string[];
  signature?: string | undefined;
  os?: string | undefined;
  arch?: string | undefined;
  variant?: string | undefined;
}

/** Fetches the image; reports on stderr unless quiet or json; `log` prints the image id. */
export async function runFetchCommand(input: FetchCommandInput, context: Context, log: (line: string) => void): Promise<FetchResult> {
  const { json, quiet } = input;
  const progress = createProgressReporter({
    mode: chooseProgressMode({ json, quiet, stderrIsTTY: process.stderr.isTTY === true, term: process.env.TERM }),
    stderr: process.stderr,
    stdout: process.stdout,
  });
  const platform = platformFromFlags({ os: input.os, arch: input.arch, variant: input.variant });
  const request = withPlatform(
    input.image,
    {
      labels: input.labels.map((l) => parseLabelFlag(l)),
      pullPolicy: input.pullPolicy,
      noStore: input.noStore,
      ...(input.signature === undefined ? {} : { signaturePath: input.signature }),
    },
    platform,
  );
  const result = await fetchImage(input.image, context.fetchContext({ progress }), request);
  if (!quiet && !json) {
    for (const image of [result, ...result.dependencies]) {
      const name = `${image.record.name}${image === result ? '' : ' (dependency)'}`;
      if (image.outcome === 'in-store') process.stderr.write(`tspod: ${name}: in the store, not fetched (--pull-policy=${input.pullPolicy})\n`);
      else if (image.outcome === 'not-modified') process.stderr.write(`tspod: ${name}: unchanged on the server (304 Not Modified)\n`);
      else if (image.signer !== null) process.stderr.write(`tspod: ${name}: signature verified: signed by ${image.signer}\n`);
    }
  }
  log(result.record.id);
  return result;
}
