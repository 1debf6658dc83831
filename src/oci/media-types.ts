// The media types of OCI and Docker images that the registry client asks for and understands
// (OCI image-spec media-types.md; Docker image manifest v2 schema 2), and the Accept header of a
// manifest request (OCI distribution-spec "Pulling manifests": the client lists what it accepts).
export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
export const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
export const DOCKER_MANIFEST_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';

export const MANIFEST_MEDIA_TYPES = [OCI_MANIFEST, DOCKER_MANIFEST] as const;
export const INDEX_MEDIA_TYPES = [OCI_INDEX, DOCKER_MANIFEST_LIST] as const;

/** Every manifest kind tspod reads, in order of preference (schema 1 is not asked for). */
export const MANIFEST_ACCEPT = [OCI_INDEX, DOCKER_MANIFEST_LIST, OCI_MANIFEST, DOCKER_MANIFEST].join(', ');

export function isIndexMediaType(mediaType: string | undefined): boolean {
  return mediaType !== undefined && (INDEX_MEDIA_TYPES as readonly string[]).includes(mediaType);
}

export function isManifestMediaType(mediaType: string | undefined): boolean {
  return mediaType !== undefined && (MANIFEST_MEDIA_TYPES as readonly string[]).includes(mediaType);
}

/** image-spec descriptor.md: what a manifest or index says about another blob. */
export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: Platform;
  annotations?: Record<string, string>;
}

/** image-spec image-index.md `platform`. */
export interface Platform {
  architecture: string;
  os: string;
  variant?: string;
  'os.version'?: string;
  'os.features'?: string[];
}
