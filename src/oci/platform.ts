// Choosing one manifest from an index by platform (image-spec image-index.md `platform`): os,
// architecture and variant, defaulting to this machine (Node's process.arch mapped to the GOARCH
// names that OCI uses), and an error listing what the index offers when nothing matches.
import { NotFoundError } from '../errors.js';
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

export function defaultPlatform(): PlatformWanted {
  return { os: 'linux', architecture: ociArchitecture() };
}

export function formatPlatform(p: Platform | PlatformWanted | undefined): string {
  if (p === undefined) return 'unknown';
  return `${p.os}/${p.architecture}${p.variant ? `/${p.variant}` : ''}`;
}

function variantMatches(wanted: string | undefined, have: string | undefined, arch: string): boolean {
  if (wanted === undefined) return true;
  // containers/image platform matcher: arm64 without a variant is v8.
  const norm = (v: string | undefined): string | undefined => (v === undefined && arch === 'arm64' ? 'v8' : v);
  return norm(wanted) === norm(have);
}

/** The first manifest of the index for the wanted platform (an index lists in preference order). */
export function selectPlatform(manifests: readonly Descriptor[], wanted: PlatformWanted, imageName = 'the image'): Descriptor {
  const match = manifests.find(
    (d) =>
      isManifestMediaType(d.mediaType) &&
      d.platform !== undefined &&
      d.platform.os === wanted.os &&
      d.platform.architecture === wanted.architecture &&
      variantMatches(wanted.variant, d.platform.variant, wanted.architecture),
  );
  if (match) return match;
  const available = manifests.filter((d) => d.platform !== undefined).map((d) => formatPlatform(d.platform));
  throw new NotFoundError(
    `select platform ${formatPlatform(wanted)} from ${imageName}: no manifest for it; available: ${available.length > 0 ? available.join(', ') : 'none'}`,
    { suggestions: available.length > 0 ? [`pass --os, --arch and --variant for one of them, e.g. --arch=${available[0]!.split('/')[1]}`] : [] },
  );
}
