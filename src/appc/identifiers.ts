// AC names, AC identifiers and image ids (spec/types.md): predicates, rkt's app-name
// sanitiser and the conversions between image ids, id prefixes and hex digests. Pure, no I/O.

import { ValidationError } from '../errors.js';

/**
 * spec/types.md "AC Identifier Type". The reference code (schema/types/acidentifier.go) only
 * checks the characters and the first/last character, so it accepts `a//b`; tspod follows the
 * spec's regex, which forbids consecutive separators.
 */
export const AC_IDENTIFIER_PATTERN = /^[a-z0-9]+([-._~/][a-z0-9]+)*$/;
/** spec/types.md "AC Name Type" (same strictness decision as AC_IDENTIFIER_PATTERN). */
export const AC_NAME_PATTERN = /^[a-z0-9]+(-[a-z0-9]+)*$/;
export const IMAGE_ID_PATTERN = /^sha512-[0-9a-f]{128}$/;
export const IMAGE_ID_PREFIX_PATTERN = /^sha512-[0-9a-f]{1,128}$/;
export const IMAGE_ID_ALGORITHM_PREFIX = 'sha512-';
/** rkt prints ids shortened to `sha512-` and 32 hex digits (types.ShortHash). */
export const SHORT_IMAGE_ID_HEX_LENGTH = 32;

export function isACIdentifier(s: unknown): s is string {
  return typeof s === 'string' && AC_IDENTIFIER_PATTERN.test(s);
}

export function isACName(s: unknown): s is string {
  return typeof s === 'string' && AC_NAME_PATTERN.test(s);
}

/**
 * rkt's app name for an image name (rkt common/apps imageNameToAppName + types.SanitizeACName):
 * the last `/` component, lowercased, every character outside [a-z0-9-] replaced by `-`, and
 * leading/trailing `-` trimmed. tspod also collapses runs of `-` so that the result always
 * matches the spec's AC Name regex (the reference code would return `a--b`).
 */
export function sanitizeACName(s: string): string {
  const last = s.split('/').pop() ?? '';
  const name = last
    .toLowerCase()
    .replace(/[^a-z0-9-]/g, '-')
    .replace(/-+/g, '-')
    .replace(/^-+|-+$/g, '');
  if (name === '') {
    throw new ValidationError(`derive an app name from "${s}"`, ['/: must contain at least one character in [a-z0-9]']);
  }
  return name;
}

/** A full image id: `sha512-` and 128 lowercase hex digits. */
export function isImageId(s: unknown): s is string {
  return typeof s === 'string' && IMAGE_ID_PATTERN.test(s);
}

/** An image id or a prefix of one, as the CLI accepts: `sha512-` and 1..128 lowercase hex digits. */
export function isImageIdPrefix(s: unknown): s is string {
  return typeof s === 'string' && IMAGE_ID_PREFIX_PATTERN.test(s);
}

/** `sha512-` and the first 32 hex digits of an id (or the id itself if it is shorter). */
export function shortImageId(id: string): string {
  if (!isImageIdPrefix(id)) {
    throw new ValidationError(`shorten image id "${id}"`, ['/: must be an image id or id prefix']);
  }
  return id.slice(0, IMAGE_ID_ALGORITHM_PREFIX.length + SHORT_IMAGE_ID_HEX_LENGTH);
}

/** The image id of a SHA-512 hex digest (as node:crypto's digest('hex') prints it). */
export function imageIdFromHex(hex: string): string {
  const id = `${IMAGE_ID_ALGORITHM_PREFIX}${hex}`;
  if (!isImageId(id)) {
    throw new ValidationError(`make an image id from "${hex}"`, ['/: must be 128 lowercase hex digits']);
  }
  return id;
}

/** The 128 hex digits of a full image id. */
export function hexOfImageId(id: string): string {
  if (!isImageId(id)) {
    throw new ValidationError(`read image id "${id}"`, ['/: must be a full image id ("sha512-" and 128 lowercase hex digits)']);
  }
  return id.slice(IMAGE_ID_ALGORITHM_PREFIX.length);
}
