// The app to discover: an image reference (`example.com/app:1.0,os=linux`, parsed by
// appc/labels.ts) plus `--label k=v` flags, completed with the defaults discovery needs:
// `version=latest` when no version is given (spec/discovery.md, used for the URL only), and the
// host's `os`/`arch` in appc spelling (as rkt did). Pure, no I/O.
import { appcArch, checkOsArch, parseImageReference, parseLabelFlag } from '../appc/labels.js';
import type { Label } from '../appc/types.js';
import { ValidationError } from '../errors.js';

/** spec/discovery.md: "{version} ... defaults to latest". */
export const DEFAULT_VERSION = 'latest';

export interface DiscoveryApp {
  name: string;
  /** Every label used to fill templates: the requested ones in order, then the defaults added. */
  labels: Label[];
  /** Names of the labels in `labels` that tspod filled in rather than the user. */
  defaulted: string[];
}

export interface ParseDiscoveryAppOptions {
  /** `--label k=v` flags, in order. */
  labels?: readonly string[];
  /** The host os in appc spelling (default from process.platform). */
  os?: string;
  /** The host arch in appc spelling (default from process.arch via appcArch). */
  arch?: string;
}

/** Common non-appc spellings people pass (Docker/Go/uname), for the suggestion only. */
const ARCH_ALIASES: Record<string, string> = { arm64: 'aarch64', x86_64: 'amd64', x64: 'amd64', '386': 'i386', arm: 'armv7l' };

/** The appc os label for a Node platform (schema/types/labels.go knows linux, freebsd, darwin). */
export function appcOs(platform: NodeJS.Platform = process.platform): string {
  return platform;
}

/**
 * `example.com/app:1.0` + `--label arch=aarch64` -> name and labels for discovery. A label given
 * both inline and as a flag must have the same value. os/arch must be a pair appc knows.
 */
export function parseDiscoveryApp(reference: string, options: ParseDiscoveryAppOptions = {}): DiscoveryApp {
  const ref = parseImageReference(reference);
  const labels: Label[] = [...ref.labels];
  for (const flag of options.labels ?? []) {
    const label = parseLabelFlag(flag);
    const existing = labels.find((l) => l.name === label.name);
    if (existing === undefined) labels.push(label);
    else if (existing.value !== label.value) {
      throw new ValidationError(`invalid image reference "${reference}"`, [
        `/: label "${label.name}" is "${existing.value}" in the reference but "${label.value}" in --label`,
      ], { suggestions: ['give each label once'] });
    }
  }
  const defaulted: string[] = [];
  const add = (name: string, value: () => string): void => {
    if (labels.some((l) => l.name === name)) return;
    labels.push({ name, value: value() });
    defaulted.push(name);
  };
  add('version', () => DEFAULT_VERSION);
  add('os', () => options.os ?? appcOs());
  add('arch', () => options.arch ?? appcArch());
  const problem = checkOsArch(labels);
  if (problem) {
    const given = labels.find((l) => l.name === problem.label)!.value;
    const alias = problem.label === 'arch' ? ARCH_ALIASES[given] : undefined;
    throw new ValidationError(`invalid image reference "${reference}"`, [`/labels/${problem.label}: ${problem.message}`], {
      suggestions: alias ? [`appc spells it ${alias}: --label arch=${alias}`] : [],
    });
  }
  return { name: ref.name, labels, defaulted };
}

/** The variables a discovery template may use: `name` and every label (spec/discovery.md). */
export function templateVariables(app: DiscoveryApp): Map<string, string> {
  const vars = new Map<string, string>([['name', app.name]]);
  for (const l of app.labels) vars.set(l.name, l.value);
  return vars;
}

/**
 * The labels the fetched manifest must carry (spec/discovery.md "Validation"): all of `labels`
 * except a defaulted version, since `latest` only shapes the URL.
 */
export function requiredManifestLabels(app: DiscoveryApp): Label[] {
  return app.labels.filter((l) => !(l.name === 'version' && app.defaulted.includes('version')));
}

/** `example.com/app:1.0,os=linux,arch=amd64`: the app as the user would write it (for messages). */
export function formatDiscoveryApp(app: DiscoveryApp): string {
  const version = app.labels.find((l) => l.name === 'version');
  const rest = app.labels.filter((l) => l.name !== 'version').map((l) => `${l.name}=${l.value}`);
  return `${app.name}${version ? `:${version.value}` : ''}${rest.length > 0 ? `,${rest.join(',')}` : ''}`;
}
