// The `tspod trust` flow (rkt/trust.go, rkt-notes §4.2): resolve the target (`--prefix` xor
// `--root`), load the keys from files or HTTPS URLs, show each key's prefix, fingerprint, user
// ids and creation time, ask `Are you sure you want to trust this key (yes/no)?` and add the
// accepted ones to the local keystore. Without a TTY the review cannot happen: refuse unless
// `--skip-fingerprint-review`. (Meta discovery of keys when no location is given belongs to
// discovery/, which hands its downloaded keys to this same function.)
import fs from 'node:fs';
import readline from 'node:readline';
import type { Readable, Writable } from 'node:stream';

import { UsageError } from '../errors.js';
import { getBytes, type GetBytesOptions } from '../http/client.js';
import {
  causeText,
  formatFingerprint,
  prefixToRelDir,
  readPublicKeys,
  type Keystore,
  type TrustedKeyInfo,
  type TrustTarget,
} from './keystore.js';

export const TRUST_QUESTION = 'Are you sure you want to trust this key (yes/no)? ';

/** `--prefix` and `--root` to a target: exactly one, and the prefix an image-name prefix. */
export function resolveTrustTarget(flags: { prefix?: string | undefined; root?: boolean | undefined }): TrustTarget {
  const hasPrefix = flags.prefix !== undefined && flags.prefix !== '';
  if (hasPrefix && flags.root) {
    throw new UsageError('trust: --prefix and --root are mutually exclusive; give one of them');
  }
  if (flags.root) return { root: true };
  if (!hasPrefix) {
    // rkt: "implicit unbounded trust (root domain)" is refused; root trust must be asked for.
    throw new UsageError('trust: give --prefix <image name prefix> or --root (a root key is trusted for every image)', {
      suggestions: ['tspod trust --prefix example.com/app ./key.asc', 'tspod trust --root ./key.asc'],
    });
  }
  prefixToRelDir(flags.prefix!, '--prefix');
  return { prefix: flags.prefix! };
}

export interface KeySource {
  /** The file path or URL, as given. */
  location: string;
  bytes: Uint8Array;
}

export interface LoadKeySourcesOptions extends Pick<GetBytesOptions, 'allowHttp' | 'insecureTls' | 'ca' | 'timeoutMs'> {
  /** Size cap for one key file (default 1 MiB). */
  maxBytes?: number;
}

/** Reads each key location: `https://` (or `http://` when allowed) URLs via the HTTP client, else a file. */
export async function loadKeySources(locations: string[], opts: LoadKeySourcesOptions = {}): Promise<KeySource[]> {
  const maxBytes = opts.maxBytes ?? 1024 * 1024;
  const out: KeySource[] = [];
  for (const location of locations) {
    if (/^[a-z][a-z0-9+.-]*:\/\//i.test(location)) {
      const { bytes } = await getBytes(location, { ...opts, maxBytes });
      out.push({ location, bytes });
      continue;
    }
    try {
      const st = fs.statSync(location);
      if (st.size > maxBytes) throw new UsageError(`read key ${location}: ${st.size} bytes is too large for a key file`);
      out.push({ location, bytes: fs.readFileSync(location) });
    } catch (err) {
      if (err instanceof UsageError) throw err;
      throw new UsageError(`read key ${location}: ${causeText(err)}`, { cause: err });
    }
  }
  return out;
}

export interface ReviewOptions {
  keystore: Keystore;
  /** Key material; each item may hold one or more keys (armored or binary). */
  keys: Uint8Array[];
  /** Where each item of `keys` came from (file or URL), shown in the review; parallel to `keys`. */
  sources?: string[];
  target: TrustTarget;
  skipReview: boolean;
  input: Readable;
  output: Writable;
  isTTY: boolean;
}

export interface ReviewResult {
  added: TrustedKeyInfo[];
  /** Fingerprints the user declined. */
  declined: string[];
}

/** Shows each key, asks for confirmation (unless skipped), and adds the accepted keys. */
export async function reviewAndAddKeys(opts: ReviewOptions): Promise<ReviewResult> {
  const { keystore, target, output } = opts;
  if (!opts.skipReview && !opts.isTTY) {
    throw new UsageError(
      'trust: cannot ask for fingerprint review without a terminal; check the fingerprints yourself and pass --skip-fingerprint-review',
      { suggestions: [`tspod trust ${'root' in target ? '--root' : `--prefix ${target.prefix}`} --skip-fingerprint-review <key file or URL>`] },
    );
  }
  if (opts.keys.length === 0) {
    throw new UsageError('trust: no key given', { suggestions: ['tspod trust --prefix example.com/app ./key.asc'] });
  }
  // Parse everything first, so a bad key fails before any question is asked.
  const parsed: { source: string; key: Awaited<ReturnType<typeof readPublicKeys>>[number] }[] = [];
  for (const [i, bytes] of opts.keys.entries()) {
    const source = opts.sources?.[i] ?? `key ${i + 1}`;
    for (const key of await readPublicKeys(bytes, source)) parsed.push({ source, key });
  }

  const rl = opts.skipReview ? undefined : readline.createInterface({ input: opts.input, terminal: false, crlfDelay: Infinity });
  const lines = rl?.[Symbol.asyncIterator]();
  const result: ReviewResult = { added: [], declined: [] };
  try {
    for (const { source, key } of parsed) {
      const fp = key.getFingerprint().toLowerCase();
      const scopeLine = 'root' in target ? 'Root key (trusted for every image name)' : `Prefix: "${target.prefix}"`;
      const text = [
        scopeLine,
        `Key: "${source}"`,
        `GPG key fingerprint is: ${formatFingerprint(fp)}`,
        ...key.getUserIDs().map((u) => `\t${u}`),
        `Created: ${key.getCreationTime().toISOString()}`,
        '',
      ].join('\n');
      output.write(text);
      if (lines) {
        output.write(TRUST_QUESTION);
        const next = await lines.next();
        const answer = next.done ? '' : String(next.value).trim().toLowerCase();
        if (answer !== 'yes' && answer !== 'y') {
          output.write(`Not trusting key ${fp}.\n`);
          result.declined.push(fp);
          continue;
        }
      }
      const armored = new TextEncoder().encode(key.armor());
      const info = await keystore.add(armored, target);
      output.write(
        `Trusting ${'root' in target ? 'as a root key' : `"${target.prefix}"`} for key ${fp}.\nAdded key at "${info.path}".\n`,
      );
      result.added.push(info);
    }
  } finally {
    rl?.close();
  }
  return result;
}
