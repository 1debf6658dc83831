// appc resource quantities (spec/ace.md "Resource isolators"; schema/types/resource/quantity.go):
// parsing `500m`, `128Mi`, `1G`, `1e3` or a JSON number into a plain number in base units.

import { ValidationError } from '../errors.js';

/**
 * Number, then at most one suffix: decimal SI (n u m k M G T P E), binary SI (Ki..Ei) or an
 * exponent (e3, E-2). The spec text lists uppercase `K`, but the reference parser rejects it
 * ("unable to parse quantity's suffix"), so tspod does too. Negative values are accepted, as the
 * reference does; isolator code decides whether a sign makes sense.
 */
export const QUANTITY_PATTERN = /^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(n|u|m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei|[eE][+-]?[0-9]+)?$/;

const SUFFIX_FACTORS: Readonly<Record<string, number>> = {
  '': 1,
  n: 1e-9,
  u: 1e-6,
  m: 1e-3,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
  Ei: 2 ** 60,
};

export function isQuantity(q: unknown): q is string | number {
  return (typeof q === 'number' && Number.isFinite(q)) || (typeof q === 'string' && QUANTITY_PATTERN.test(q));
}

/** Parses a quantity into a number of base units (cores, bytes, bytes/s, IOPS): "300m" -> 0.3. */
export function parseQuantity(q: string | number): number {
  if (typeof q === 'number') {
    if (!Number.isFinite(q)) throw badQuantity(q, 'must be a finite number');
    return q;
  }
  const m = QUANTITY_PATTERN.exec(q);
  if (m === null) {
    const hint = /^[+-]?[0-9.]+K$/.test(q) ? ' (use lowercase "k" for 1000 or "Ki" for 1024)' : '';
    throw badQuantity(q, `must be a number with an optional suffix n, u, m, k, M, G, T, P, E, Ki..Ei or an exponent such as e3${hint}`);
  }
  const [, numberPart = '', suffix = ''] = m;
  const value = Number(numberPart);
  if (/^[eE][+-]?[0-9]/.test(suffix)) {
    // A decimal exponent: "1e3", "5E-1". Parse it as one literal so 1e-3 stays exact in floating point.
    return Number(`${numberPart}e${suffix.slice(1)}`);
  }
  const factor = SUFFIX_FACTORS[suffix];
  if (factor === undefined) throw badQuantity(q, `unknown suffix "${suffix}"`);
  // Divide for sub-unit suffixes: 300 / 1000 is exactly 0.3, 300 * 0.001 is not.
  return factor < 1 ? value / Math.round(1 / factor) : value * factor;
}

function badQuantity(q: unknown, problem: string): ValidationError {
  return new ValidationError(`parse resource quantity ${JSON.stringify(q)}`, [`/: ${problem}`]);
}
