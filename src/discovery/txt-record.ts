// tspod's DNS fallback for discovery (not in the appc spec, proposed in appc/spec#3): TXT records
// at `_appc-discovery.<host>` carrying what ac-discovery meta tags carry. Format (one entry per
// TXT record, documented in src/discovery/README.md):
//
//   v=appc1 prefix=<image name prefix> aci=<URL template> [pubkeys=<URL>]
//   v=appc1 prefix=<image name prefix> pubkeys=<URL>
//
// - The character-strings of one record are joined without separator (as SPF does, RFC 7208
//   §3.3), so a value longer than 255 bytes can span strings.
// - `v=appc1` must come first; records without it are someone else's and are ignored.
// - Fields are `key=value`, separated by spaces; values contain no spaces (percent-encode them).
// - `prefix` is required, and at least one of `aci` and `pubkeys`. Each key at most once.
//   Unknown keys are ignored (future versions add keys; incompatible changes bump `v=`).
// - DNS keeps no order between the records of a set (RFC 2181 §5), so entries are ordered by
//   longest prefix first, then by record text, which makes the choice deterministic.
// Pure, no I/O.

export const TXT_DISCOVERY_LABEL = '_appc-discovery';
export const TXT_VERSION = 'v=appc1';

export interface TxtDiscoveryEntry {
  prefix: string;
  /** An ac-discovery URL template, expanded like a meta tag's. */
  aci?: string;
  /** An ac-discovery-pubkeys URL. */
  pubkeys?: string;
  /** The record text, for messages. */
  text: string;
}

export interface ParsedTxtRecords {
  entries: TxtDiscoveryEntry[];
  /** appc records that were unusable, with the reason. */
  ignored: string[];
}

/** The DNS name holding the records for an image name: `_appc-discovery.<host>`. */
export function txtDiscoveryName(imageName: string): string {
  return `${TXT_DISCOVERY_LABEL}.${imageName.split('/')[0]!}`;
}

/** Parses the TXT records of `_appc-discovery.<host>` (each record as its list of strings). */
export function parseTxtRecords(records: readonly (readonly string[])[]): ParsedTxtRecords {
  const entries: TxtDiscoveryEntry[] = [];
  const ignored: string[] = [];
  for (const strings of records) {
    const text = strings.join('');
    const fields = text.trim().split(/ +/);
    if (fields[0] !== TXT_VERSION) continue;
    const seen = new Map<string, string>();
    let problem: string | undefined;
    for (const field of fields.slice(1)) {
      const eq = field.indexOf('=');
      if (eq <= 0 || eq === field.length - 1) {
        problem = `field "${field}" is not key=value`;
        break;
      }
      const key = field.slice(0, eq);
      if (seen.has(key)) {
        problem = `key "${key}" appears twice`;
        break;
      }
      seen.set(key, field.slice(eq + 1));
    }
    const prefix = seen.get('prefix');
    const aci = seen.get('aci');
    const pubkeys = seen.get('pubkeys');
    if (problem === undefined && prefix === undefined) problem = 'no prefix=';
    if (problem === undefined && aci === undefined && pubkeys === undefined) problem = 'neither aci= nor pubkeys=';
    if (problem !== undefined) {
      ignored.push(`record "${text}": ${problem}`);
      continue;
    }
    entries.push({ prefix: prefix!, ...(aci !== undefined ? { aci } : {}), ...(pubkeys !== undefined ? { pubkeys } : {}), text });
  }
  entries.sort((a, b) => b.prefix.length - a.prefix.length || (a.text < b.text ? -1 : a.text > b.text ? 1 : 0));
  return { entries, ignored };
}

/** Entries whose prefix is a string prefix of `name`, as for meta tags. */
export function matchingTxtEntries(parsed: ParsedTxtRecords, name: string): TxtDiscoveryEntry[] {
  return parsed.entries.filter((e) => name.startsWith(e.prefix));
}
