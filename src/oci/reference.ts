// Parsing of `docker://` image references ([registry[:port]/]repository[:tag][@sha256:hex]) and
// Docker Hub's normalisation, as containers/image's docker/reference does: a first component
// without `.` or `:` and other than `localhost` is a path on docker.io; docker.io's one-component
// repositories live under `library/`; docker.io is served at registry-1.docker.io.
import { UsageError } from '../errors.js';

export const DOCKER_HUB = 'docker.io';
export const DOCKER_HUB_ENDPOINT = 'registry-1.docker.io';
export const DEFAULT_TAG = 'latest';

export interface ImageReference {
  /** As written by the user (`docker.io` for Docker Hub, `host:port` otherwise). */
  registry: string;
  /** The host[:port] that serves the distribution API (registry-1.docker.io for docker.io). */
  endpoint: string;
  repository: string;
  /** Undefined when only a digest was given. */
  tag: string | undefined;
  digest: string | undefined;
}

// distribution-spec "Pulling manifests": repository name components and tag grammar.
const COMPONENT = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*$/;
const TAG = /^[\w][\w.-]{0,127}$/;
// image-spec descriptor.md "Digests": sha256 is 64 lowercase hex characters.
const DIGEST = /^sha256:[a-f0-9]{64}$/;
const DIGEST_ANY = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;

function bad(input: string, cause: string): UsageError {
  return new UsageError(`parse image reference ${input}: ${cause}`, {
    suggestions: ['write it as docker://[registry[:port]/]repository[:tag|@sha256:<64 hex>], e.g. docker://docker.io/library/busybox:1.36'],
  });
}

export function isDigest(value: string): boolean {
  return DIGEST.test(value);
}

/** Parses `docker://...` (the prefix is optional) into a normalised reference. */
export function parseReference(input: string): ImageReference {
  let rest = input.startsWith('docker://') ? input.slice('docker://'.length) : input;
  if (rest === '') throw bad(input, 'empty reference');
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST_ANY.test(digest)) throw bad(input, `"${digest}" is not a digest`);
    if (!DIGEST.test(digest)) throw bad(input, `digest "${digest}" is not supported (sha256 only)`);
  }
  let tag: string | undefined;
  const slash = rest.lastIndexOf('/');
  const colon = rest.lastIndexOf(':');
  if (colon > slash) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) throw bad(input, `"${tag}" is not a valid tag`);
  }
  const parts = rest.split('/');
  let registry = DOCKER_HUB;
  const first = parts[0] ?? '';
  if (parts.length > 1 && (first.includes('.') || first.includes(':') || first === 'localhost')) {
    registry = first;
    parts.shift();
  }
  if (registry === 'index.docker.io' || registry === DOCKER_HUB_ENDPOINT) registry = DOCKER_HUB;
  if (registry === DOCKER_HUB && parts.length === 1) parts.unshift('library');
  for (const p of parts) {
    if (!COMPONENT.test(p)) throw bad(input, `"${p}" is not a valid repository component (lowercase letters, digits, . _ -)`);
  }
  if (!/^[a-zA-Z0-9.-]+(:\d+)?$|^\[[0-9a-fA-F:]+\](:\d+)?$/.test(registry)) throw bad(input, `"${registry}" is not a registry host`);
  if (tag === undefined && digest === undefined) tag = DEFAULT_TAG;
  return {
    registry,
    endpoint: registry === DOCKER_HUB ? DOCKER_HUB_ENDPOINT : registry,
    repository: parts.join('/'),
    tag,
    digest,
  };
}

/** The canonical string: `docker://registry/repository[:tag][@digest]`. */
export function formatReference(ref: ImageReference): string {
  return `docker://${ref.registry}/${ref.repository}${ref.tag === undefined ? '' : `:${ref.tag}`}${ref.digest === undefined ? '' : `@${ref.digest}`}`;
}
