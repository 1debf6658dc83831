// The `tspod trust` flow (rkt/trust.go, rkt-notes §4.2): resolve the target (`--prefix` xor
// `--root`), load the keys from files or HTTPS URLs, show each key's prefix, where it came from,
// fingerprint, user ids and creation time, ask `Are you sure you want to trust this key
// (yes/no)?` and add the accepted ones to the local keystore. Without a TTY the review cannot
// happen: refuse (naming the keys found) unless `--skip-fingerprint-review`. Keys found by
// discovery (discover-keys.ts: ac-discovery-pubkeys, WKD, OPENPGPKEY) come through the same
// function with their origin; a key found for a signer identity that does not carry that
// identity as a user id is left out, with the reason shown.
import fs from 'node:fs';
import readline from 'node:readline';
import type { Readable, Writable } from 'node:stream';

import type { HttpGet } from '../discovery/http-get.js';
import { parseMailbox } from '../discovery/signer-keys.js';
import { TrustError, UsageError } from '../errors.js';
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

/** Where a discovered key came from, for the review. */
export interface KeyOrigin {
  /** Shown as `Found through: ...`, e.g. `ac-discovery-pubkeys of https://example.com?ac-discovery=1`. */
  foundThrough: string;
  /** The signer identity (`user@domain`) the key was looked up for; it must be one of its user ids. */
  identity?: string;
}

export interface KeySource {
  /** The file path or URL, as given (or `dns OPENPGPKEY <owner name>`). */
  location: string;
  bytes: Uint8Array;
  /** Set for keys found by discovery. */
  origin?: KeyOrigin;
}

export interface LoadKeySourcesOptions extends Pick<GetBytesOptions, 'allowHttp' | 'insecureTls' | 'ca' | 'timeoutMs' | 'lookup' | 'auth'> {
  /** Size cap for one key file (default 1 MiB). */
  maxBytes?: number;
  /** The HTTP getter for URLs (the command's, bound to its network context); default getBytes with these options. */
  get?: HttpGet;
}

/** Size cap of one key file or key download. */
export const MAX_KEY_BYTES = 1024 * 1024;

/** Whether a key argument is a URL (`https://...`) rather than a file. */
export function isKeyUrl(location: string): boolean {
  return /^[a-z][a-z0-9+.-]*:\/\//i.test(location);
}

/** Reads each key location: `https://` (or `http://` when allowed) URLs via the HTTP client, else a file. */
export async function loadKeySources(locations: string[], opts: LoadKeySourcesOptions = {}): Promise<KeySource[]> {
  const { get, ...getOptions } = opts;
  const maxBytes = opts.maxBytes ?? MAX_KEY_BYTES;
  const out: KeySource[] = [];
  for (const location of locations) {
    if (isKeyUrl(location)) {
      const { bytes } = get
        ? await get(location, { allowHttp: opts.allowHttp === true, maxBytes })
        : await getBytes(location, { ...getOptions, maxBytes });
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
  /** How each item of `keys` was found, for discovered keys; parallel to `keys`. */
  origins?: (KeyOrigin | undefined)[];
  target: TrustTarget;
  skipReview: boolean;
  input: Readable;
  output: Writable;
  isTTY: boolean;
  /** The key arguments as given, to spell the `--skip-fingerprint-review` suggestion (default `<key file or URL>`). */
  keyArguments?: string[];
}

/** A key found but not offered, and why. */
export interface SkippedKey {
  fingerprint: string;
  source: string;
  reason: string;
}

export interface ReviewResult {
  added: TrustedKeyInfo[];
  /** Fingerprints the user declined. */
  declined: string[];
  /** Keys left out before the review: found for an identity they do not carry, or given twice. */
  skipped: SkippedKey[];
}

type ParsedKey = Awaited<ReturnType<typeof readPublicKeys>>[number];

/** `user@domain` of a user id (`Name <user@domain>` or a bare address), normalised as parseMailbox does; undefined if none. */
function userIdAddress(userId: string): string | undefined {
  try {
    const { local, domain } = parseMailbox(userId);
    return `${local}@${domain}`.toLowerCase();
  } catch {
    return undefined;
  }
}

/**
 * Whether a key carries the identity it was found for. draft-koch-openpgp-webkey-service §3.1:
 * "The key needs to carry a User ID packet ([RFC4880]) with that mail address"; a server that
 * returns another address's key is misconfigured or hostile, so such a key is not offered.
 * Compared without case: the domain is case-insensitive and WKD itself lowercases the local part.
 */
export function carriesIdentity(userIds: readonly string[], identity: string): boolean {
  const wanted = userIdAddress(identity);
  return wanted !== undefined && userIds.some((u) => userIdAddress(u) === wanted);
}

function targetFlag(target: TrustTarget): string {
  return 'root' in target ? '--root' : `--prefix ${target.prefix}`;
}

function describeShort(source: string, key: ParsedKey): string {
  const ids = key.getUserIDs();
  return `${key.getFingerprint().toLowerCase()}${ids.length > 0 ? ` (${ids.join(', ')})` : ''} from ${source}`;
}

/** Shows each key, asks for confirmation (unless skipped), and adds the accepted keys. */
export async function reviewAndAddKeys(opts: ReviewOptions): Promise<ReviewResult> {
  const { keystore, target, output } = opts;
  if (opts.keys.length === 0) {
    throw new UsageError('trust: no key given', { suggestions: ['tspod trust --prefix example.com/app ./key.asc'] });
  }
  // Parse everything first, so a bad key fails before any question is asked.
  const result: ReviewResult = { added: [], declined: [], skipped: [] };
  const parsed: { source: string; origin: KeyOrigin | undefined; key: ParsedKey }[] = [];
  const seen = new Set<string>();
  for (const [i, bytes] of opts.keys.entries()) {
    const source = opts.sources?.[i] ?? `key ${i + 1}`;
    const origin = opts.origins?.[i];
    for (const key of await readPublicKeys(bytes, source)) {
      const fp = key.getFingerprint().toLowerCase();
      let reason: string | undefined;
      if (seen.has(fp)) reason = 'the same key was found before';
      else if (origin?.identity !== undefined && !carriesIdentity(key.getUserIDs(), origin.identity)) {
        const ids = key.getUserIDs();
        reason = `none of its user ids is ${origin.identity} (it has ${ids.length === 0 ? 'none' : ids.join(', ')})`;
      }
      if (reason !== undefined) {
        result.skipped.push({ fingerprint: fp, source, reason });
        continue;
      }
      seen.add(fp);
      parsed.push({ source, origin, key });
    }
  }
  for (const s of result.skipped) output.write(`Leaving out key ${s.fingerprint} from "${s.source}": ${s.reason}.\n`);
  if (parsed.length === 0) {
    throw new TrustError(`trust: no key left to review: ${result.skipped.map((s) => `key ${s.fingerprint} from ${s.source}: ${s.reason}`).join('; ')}`, {
      suggestions: [`ask the key's owner for the key and its fingerprint, then: tspod trust ${targetFlag(target)} ./key.asc`],
    });
  }
  if (!opts.skipReview && !opts.isTTY) {
    // The keys are named, so the user can compare the fingerprints with the publisher's.
    throw new UsageError(
      `trust: cannot ask for fingerprint review without a terminal; check the fingerprints yourself and pass --skip-fingerprint-review: ${parsed
        .map((p) => describeShort(p.source, p.key))
        .join('; ')}`,
      { suggestions: [`tspod trust ${targetFlag(target)} --skip-fingerprint-review ${opts.keyArguments?.join(' ') ?? '<key file or URL>'}`.trimEnd()] },
    );
  }

  const rl = opts.skipReview ? undefined : readline.createInterface({ input: opts.input, terminal: false, crlfDelay: Infinity });
  const lines = rl?.[Symbol.asyncIterator]();
  try {
    for (const { source, origin, key } of parsed) {
      const fp = key.getFingerprint().toLowerCase();
      const scopeLine = 'root' in target ? 'Root key (trusted for every image name)' : `Prefix: "${target.prefix}"`;
      const text = [
        scopeLine,
        `Key: "${source}"`,
        ...(origin ? [`Found through: ${origin.foundThrough}`] : []),
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
