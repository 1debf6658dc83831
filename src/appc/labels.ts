// Image labels (spec/aci.md "labels", spec/discovery.md): the os/arch whitelist, the host's
// appc os/arch, label matching for discovery and dependencies, and the CLI image reference
// form `example.com/app:1.0,os=linux,arch=amd64` (discovery/parse.go). Pure, no I/O.

import { endianness } from 'node:os';

import { ValidationError } from '../errors.js';
import { isACIdentifier } from './identifiers.js';
import type { Label } from './types.js';

/** schema/types/labels.go ValidOSArch: the os values appc knows and the arch values of each. */
export const VALID_OS_ARCH: Readonly<Record<string, readonly string[]>> = {
  linux: ['amd64', 'i386', 'aarch64', 'aarch64_be', 'armv6l', 'armv7l', 'armv7b', 'ppc64', 'ppc64le', 's390x'],
  freebsd: ['amd64', 'i386', 'arm'],
  darwin: ['x86_64', 'i386'],
};

export type OsArchProblem = { label: 'os' | 'arch'; message: string };

/** The os/arch rule of schema/types/labels.go IsValidOSArch; arch is only checked when os is set. */
export function checkOsArch(labels: readonly Label[]): OsArchProblem | undefined {
  const os = labelValue(labels, 'os');
  if (os === undefined) return undefined;
  const arches = Object.hasOwn(VALID_OS_ARCH, os) ? VALID_OS_ARCH[os] : undefined;
  if (arches === undefined) {
    return { label: 'os', message: `unknown os "${os}" (must be one of: ${Object.keys(VALID_OS_ARCH).sort().join(', ')})` };
  }
  const arch = labelValue(labels, 'arch');
  if (arch !== undefined && !arches.includes(arch)) {
    return { label: 'arch', message: `arch "${arch}" is not valid for os "${os}" (must be one of: ${arches.join(', ')})` };
  }
  return undefined;
}

/**
 * The appc arch label of a Node `process.arch` value (schema/types/labels.go ToAppcOSArch).
 * Node says `arm` for every 32-bit ARM; its build variable arm_version tells v6 from v7.
 * Node says `ppc64` for both byte orders; os.endianness() tells them apart.
 */
export function appcArch(nodeArch: string = process.arch): string {
  switch (nodeArch) {
    case 'x64':
      return 'amd64';
    case 'ia32':
      return 'i386';
    case 'arm64':
      return 'aarch64';
    case 'arm': {
      const variables = process.config.variables as Record<string, unknown>;
      return String(variables['arm_version'] ?? '7') === '6' ? 'armv6l' : 'armv7l';
    }
    case 'ppc64':
      return endianness() === 'LE' ? 'ppc64le' : 'ppc64';
    case 's390x':
      return 's390x';
    default:
      throw new ValidationError(`map node architecture "${nodeArch}" to an appc arch label`, [
        `/: unsupported architecture (supported: x64, ia32, arm64, arm, ppc64, s390x)`,
      ]);
  }
}

/** The labels an image must carry to run here: {os: linux, arch: <this machine>}. */
export function defaultLabels(): Label[] {
  return [
    { name: 'os', value: 'linux' },
    { name: 'arch', value: appcArch() },
  ];
}

/** The value of label `name`, or undefined when absent. */
export function labelValue(labels: readonly Label[] | undefined, name: string): string | undefined {
  return labels?.find((l) => l.name === name)?.value;
}

/**
 * spec/discovery.md "Validation": every requested label is present in `actual` with the same
 * value. Labels present only in `actual` do not matter.
 */
export function labelsMatch(requested: readonly Label[], actual: readonly Label[]): boolean {
  return requested.every((r) => actual.some((a) => a.name === r.name && a.value === r.value));
}

export interface ImageReference {
  name: string;
  labels: Label[];
}

/** Parses a `--label`-style `name=value` pair: `os=linux`. */
export function parseLabelFlag(text: string): Label {
  const eq = text.indexOf('=');
  const problems: string[] = [];
  if (eq <= 0) {
    problems.push('/: must have the form name=value, e.g. os=linux');
  } else {
    const name = text.slice(0, eq);
    if (!isACIdentifier(name)) problems.push(`/: label name "${name}" must be an ac identifier`);
    else if (name === 'name') problems.push('/: "name" is reserved and cannot be a label name');
    if (problems.length === 0) return { name, value: text.slice(eq + 1) };
  }
  throw new ValidationError(`invalid label "${text}"`, problems);
}

/**
 * Parses the CLI image reference (discovery/parse.go NewAppFromString):
 * `example.com/app:1.0,os=linux,arch=amd64` -> name and labels. A `:` is shorthand for
 * `,version=`; it may appear once, right after the name. Labels may not repeat. Unlike the
 * reference, values are taken literally (no URL query unescaping) and label order is kept.
 */
export function parseImageReference(text: string): ImageReference {
  const fail = (problem: string): never => {
    throw new ValidationError(`invalid image reference "${text}"`, [`/: ${problem}`], {
      suggestions: ['write it as name[:version][,label=value...], e.g. example.com/app:1.0,os=linux'],
    });
  };
  const firstComma = text.indexOf(',');
  const firstColon = text.indexOf(':');
  if (firstColon !== text.lastIndexOf(':')) fail('a colon may appear at most once');
  if (firstColon >= 0 && firstComma >= 0 && firstColon > firstComma) fail('a colon may appear only right after the image name');
  const head = firstComma >= 0 ? text.slice(0, firstComma) : text;
  const rest = firstComma >= 0 ? text.slice(firstComma + 1).split(',') : [];
  const [name = '', version] = firstColon >= 0 ? [head.slice(0, firstColon), head.slice(firstColon + 1)] : [head];
  if (name === '') fail('the image name is empty');
  if (!isACIdentifier(name)) fail(`image name "${name}" must be an ac identifier (lowercase, e.g. example.com/app)`);
  const labels: Label[] = [];
  if (version !== undefined) {
    if (version === '') fail('the version after ":" is empty');
    labels.push({ name: 'version', value: version });
  }
  for (const part of rest) {
    if (part === '') fail('empty label (two commas in a row or a trailing comma)');
    let label: Label;
    try {
      label = parseLabelFlag(part);
    } catch (err) {
      return fail(err instanceof ValidationError ? `${err.problems.map((p) => p.slice(3)).join('; ')} in "${part}"` : String(err));
    }
    if (labels.some((l) => l.name === label.name)) fail(`label "${label.name}" given more than once`);
    labels.push(label);
  }
  return { name, labels };
}
