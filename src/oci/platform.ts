// Platforms (image-spec image-index.md `platform`): os, architecture and variant. Choosing one
// manifest from an index for the wanted platform (defaulting to this machine: Node's process.arch
// mapped to the GOARCH names that OCI uses, arm variants as containerd/containers-image treat them)
// with an error listing what the index offers when nothing matches; the `--os/--arch/--variant`
// flags of fetch, run and prepare; their appc `os`/`arch` labels (discovery, spec/discovery.md);
// and whether an image's `os`/`arch` labels can run on this machine. Pure, no I/O.
import { appcArch as hostAppcArch, labelValue } from '../appc/labels.js';
import type { Label } from '../appc/types.js';
import { NotFoundError, UsageError } from '../errors.js';
import { appcArch } from './convert.js';
import type { Descriptor, Platform } from './media-types.js';
import { isManifestMediaType } from './media-types.js';

export interface PlatformWanted {
  os: string;
  architecture: string;
  /** Undefined: any variant (arm64's default v8 and an unspecified one both match). */
  variant?: string | undefined;
}

// image-spec image-index.md: architecture values are GOARCH values.
const NODE_TO_OCI_ARCH: Record<string, string> = {
  x64: 'amd64',
  arm64: 'arm64',
  arm: 'arm',
  ia32: '386',
  ppc64: 'ppc64le', // Node reports ppc64 on little-endian Linux too
  s390x: 's390x',
  riscv64: 'riscv64',
  loong64: 'loong64',
  mips: 'mips',
  mipsel: 'mipsle',
};

export function ociArchitecture(nodeArch: string = process.arch): string {
  return NODE_TO_OCI_ARCH[nodeArch] ?? nodeArch;
}

/** This machine's arm variant: Node's build setting `arm_version` (6 or 7), v7 when unknown. */
function hostArmVariant(): string {
  const variables = process.config.variables as Record<string, unknown>;
  return `v${String(variables['arm_version'] ?? '7')}`;
}

/** This machine: linux, its GOARCH, and for arm its variant (arm64's v8 is left open, as containerd does). */
export function defaultPlatform(): PlatformWanted {
  const architecture = ociArchitecture();
  return architecture === 'arm' ? { os: 'linux', architecture, variant: hostArmVariant() } : { os: 'linux', architecture };
}

/** `--os`, `--arch`, `--variant` as given on the command line (each may be absent). */
export interface PlatformFlags {
  os?: string | undefined;
  arch?: string | undefined;
  variant?: string | undefined;
}

/** Other tools' spellings accepted by `--arch` (appc labels, `uname -m`, Debian), as GOARCH + variant. */
const ARCH_ALIASES: Record<string, { architecture: string; variant?: string }> = {
  x86_64: { architecture: 'amd64' },
  x64: { architecture: 'amd64' },
  i386: { architecture: '386' },
  i686: { architecture: '386' },
  aarch64: { architecture: 'arm64' },
  armv7l: { architecture: 'arm', variant: 'v7' },
  armhf: { architecture: 'arm', variant: 'v7' },
  armv6l: { architecture: 'arm', variant: 'v6' },
  armel: { architecture: 'arm', variant: 'v6' },
};

const WORD = /^[a-z0-9_]+$/;

export const PLATFORM_FLAG_HELP = {
  os: 'operating system of the image to fetch (OCI index platform; for an appc name or ACI the same as --label os=VALUE); default linux',
  arch: 'architecture of the image to fetch: amd64, arm64, arm, 386, ppc64le, s390x... (OCI index platform; for an appc name or ACI the same as --label arch=VALUE in appc spelling: arm64 is aarch64); default this machine\'s',
  variant: 'cpu variant for --arch (arm: v6, v7 (default), v8; arm64: v8)',
} as const;

/**
 * The platform the flags ask for, or undefined when none was given (this machine's is then used).
 * The os defaults to linux, the architecture to this machine's, arm's variant to v7 (this
 * machine's when it is arm) and other variants to "any"; `--arch aarch64`/`armv7l`/`x86_64` are
 * taken as arm64, arm/v7, amd64.
 */
export function platformFromFlags(flags: PlatformFlags): PlatformWanted | undefined {
  if (flags.os === undefined && flags.arch === undefined && flags.variant === undefined) return undefined;
  const check = (name: string, value: string, pattern: RegExp, example: string): string => {
    if (!pattern.test(value)) throw new UsageError(`--${name} ${JSON.stringify(value)}: not a platform word (${example})`);
    return value;
  };
  const os = flags.os === undefined ? 'linux' : check('os', flags.os, WORD, 'e.g. linux');
  const given = flags.arch === undefined ? undefined : check('arch', flags.arch, WORD, 'e.g. amd64, arm64, arm');
  const alias = given === undefined ? undefined : ARCH_ALIASES[given];
  const architecture = alias?.architecture ?? given ?? ociArchitecture();
  let variant = flags.variant === undefined ? undefined : check('variant', flags.variant, /^[a-z0-9.]+$/, 'e.g. v7, v8');
  if (alias?.variant !== undefined) {
    if (variant !== undefined && variant !== alias.variant) {
      throw new UsageError(`--arch ${given} is arm/${alias.variant}, but --variant is ${variant}`, { suggestions: [`--arch arm --variant ${variant}`] });
    }
    variant = alias.variant;
  }
  if (variant === undefined && architecture === 'arm') variant = given === undefined && ociArchitecture() === 'arm' ? hostArmVariant() : 'v7';
  return variant === undefined ? { os, architecture } : { os, architecture, variant };
}

/**
 * The appc `os`/`arch` labels of a platform (docker2aci's arch names: arm64 is aarch64, 386 is
 * i386, arm/v6 armv6l, arm/v7 armv7l); what `--os`/`--arch` mean for appc names and ACI files.
 */
export function platformLabels(p: PlatformWanted): Label[] {
  const arch = appcArch(p.architecture, p.variant);
  if (arch === undefined) {
    throw new UsageError(`--arch ${formatPlatform(p)}: appc images have no arch label for it (appc knows amd64, i386, aarch64, armv6l, armv7l, ppc64, ppc64le, s390x)`);
  }
  return [
    { name: 'os', value: p.os },
    { name: 'arch', value: arch },
  ];
}

/**
 * A reference naming one image manifest (no index) is taken whatever its platform, as
 * containers/image does; this says how it differs from an explicitly wanted one (for a warning).
 */
export function platformMismatch(config: { os?: string | undefined; architecture?: string | undefined; variant?: string | undefined }, wanted: PlatformWanted): string | undefined {
  const have: PlatformWanted = { os: config.os ?? 'linux', architecture: config.architecture ?? 'unknown', ...(config.variant ? { variant: config.variant } : {}) };
  const sameArch = have.os === wanted.os && have.architecture === wanted.architecture;
  const variantFits = wanted.variant === undefined || acceptedVariants(wanted.architecture, wanted.variant).includes(normalVariant(have.architecture, have.variant));
  if (sameArch && variantFits) return undefined;
  return `the image is for ${formatPlatform(have)}, not ${formatPlatform(wanted)} (the reference names one image, not an index)`;
}

/** Whether an image's `os`/`arch` labels fit the platform (an absent label fits any). */
export function labelsFitPlatform(labels: readonly Label[] | undefined, p: PlatformWanted): boolean {
  const os = labelValue(labels, 'os');
  const arch = labelValue(labels, 'arch');
  if (os !== undefined && os !== p.os) return false;
  const wanted = appcArch(p.architecture, p.variant);
  return arch === undefined || wanted === undefined || arch === wanted;
}

/**
 * The appc arch labels this machine runs, best first (containerd's platforms.Only: amd64 also runs
 * 386; arm64 also runs 32-bit arm; arm/v7 also runs arm/v6).
 */
export function runnableArches(host: string = hostAppcArch()): string[] {
  switch (host) {
    case 'amd64':
      return ['amd64', 'i386'];
    case 'aarch64':
      return ['aarch64', 'armv7l', 'armv6l'];
    case 'armv7l':
      return ['armv7l', 'armv6l'];
    default:
      return [host];
  }
}

function hostOsArch(): { os: string; arch: string } | undefined {
  try {
    return { os: process.platform, arch: hostAppcArch() };
  } catch {
    return undefined;
  }
}

/**
 * Refuses an image whose `os`/`arch` labels say it cannot run on this machine (an image without
 * them is allowed, as appc allows). `run`/`prepare` call it before any pod directory exists.
 */
export function checkRunsHere(image: string, labels: readonly Label[] | undefined, host: { os: string; arch: string } | undefined = hostOsArch()): void {
  // A machine appc has no arch name for (riscv64): nothing to compare with.
  if (host === undefined) return;
  const os = labelValue(labels, 'os');
  const arch = labelValue(labels, 'arch');
  const runnable = runnableArches(host.arch);
  if ((os === undefined || os === host.os) && (arch === undefined || runnable.includes(arch))) return;
  throw new UsageError(
    `run image ${image}: it is built for ${os ?? host.os}/${arch ?? 'any arch'}, and this machine runs ${host.os}/${runnable.join(', ')}`,
    { suggestions: [`fetch the image for this machine (without --os/--arch, or with --arch ${ociArchitecture()}) and run that one`] },
  );
}

export function formatPlatform(p: Platform | PlatformWanted | undefined): string {
  if (p === undefined) return 'unknown';
  return `${p.os}/${p.architecture}${p.variant ? `/${p.variant}` : ''}`;
}

/** containerd's platforms.Normalize: arm64 without a variant is v8, arm without one is v7. */
function normalVariant(arch: string, variant: string | undefined): string | undefined {
  if (variant !== undefined && variant !== '') return variant;
  return arch === 'arm64' ? 'v8' : arch === 'arm' ? 'v7' : undefined;
}

/** The variants a CPU of `variant` runs, best first (arm/v8 runs v8..v5, as containerd's matcher). */
function acceptedVariants(arch: string, variant: string | undefined): (string | undefined)[] {
  const wanted = normalVariant(arch, variant);
  const m = arch === 'arm' && wanted !== undefined ? /^v([5-8])$/.exec(wanted) : null;
  if (m === null) return [wanted];
  const out: string[] = [];
  for (let v = Number(m[1]); v >= 5; v -= 1) out.push(`v${v}`);
  return out;
}

/**
 * The manifest of the index for the wanted platform: an exact variant first, then an older one
 * the CPU also runs (arm); among equals the first listed (an index lists in preference order).
 * A wanted variant of undefined takes any.
 */
export function selectPlatform(manifests: readonly Descriptor[], wanted: PlatformWanted, imageName = 'the image'): Descriptor {
  const candidates = manifests.filter(
    (d) => isManifestMediaType(d.mediaType) && d.platform !== undefined && d.platform.os === wanted.os && d.platform.architecture === wanted.architecture,
  );
  const anyVariant = wanted.variant === undefined || wanted.variant === '';
  const match = anyVariant
    ? candidates[0]
    : acceptedVariants(wanted.architecture, wanted.variant)
        .map((v) => candidates.find((d) => normalVariant(wanted.architecture, d.platform!.variant) === v))
        .find((d) => d !== undefined);
  if (match) return match;
  const available = manifests.filter((d) => d.platform !== undefined).map((d) => formatPlatform(d.platform));
  throw new NotFoundError(
    `select platform ${formatPlatform(wanted)} from ${imageName}: no manifest for it; available: ${available.length > 0 ? available.join(', ') : 'none'}`,
    { suggestions: available.length > 0 ? [`pass --os, --arch and --variant for one of them, e.g. --arch=${available[0]!.split('/')[1]}`] : [] },
  );
}
