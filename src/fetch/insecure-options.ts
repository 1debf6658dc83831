// `--insecure-options`: the checks a user chose to skip, rkt's vocabulary.
// none (default), image (no signature check), tls (no certificate check), http (plain HTTP
// allowed), pubkey (keys fetched over HTTP or without review), all.
import { UsageError } from '../errors.js';

export const INSECURE_OPTIONS = ['none', 'image', 'tls', 'http', 'pubkey', 'all'] as const;
export type InsecureOption = (typeof INSECURE_OPTIONS)[number];

export interface InsecureOptions {
  image: boolean;
  tls: boolean;
  http: boolean;
  pubkey: boolean;
}

export const SECURE: InsecureOptions = Object.freeze({ image: false, tls: false, http: false, pubkey: false });

export function parseInsecureOptions(values: readonly string[] | string | undefined): InsecureOptions {
  const words = (Array.isArray(values) ? values : values === undefined ? [] : [values])
    .flatMap((v: string) => v.split(','))
    .map((v: string) => v.trim())
    .filter((v: string) => v !== '');
  const result: InsecureOptions = { ...SECURE };
  for (const word of words) {
    if (!(INSECURE_OPTIONS as readonly string[]).includes(word)) {
      throw new UsageError(`--insecure-options: unknown option "${word}"; expected a comma-separated list of ${INSECURE_OPTIONS.join(', ')}`);
    }
    if (word === 'all') return { image: true, tls: true, http: true, pubkey: true };
    if (word !== 'none') result[word as keyof InsecureOptions] = true;
  }
  return result;
}
