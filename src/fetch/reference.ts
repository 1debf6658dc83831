// The one rule for what an image reference on the command line names, used by `tspod fetch`,
// `run` and `prepare` alike (pure, no I/O):
//
//   file://PATH, /PATH, ./PATH, ../PATH, anything ending in .aci   a local ACI file
//   https://... (http://... with --insecure-options=http)           an ACI at a URL (.asc next to it)
//   docker://..., oci:DIR[:tag], oci-archive:FILE[:tag],             an OCI image (registry, layout,
//   docker-archive:FILE[:NAME:TAG]                                    docker save archive)
//   other SCHEME://...                                              not supported
//   sha512-HEX                                                      an image id: the store only
//   anything else                                                   an appc name (`example.com/app:1.0,os=linux`)
//
// Whether a file of that name exists plays no part: `app` is a name even when ./app exists in the
// working directory (write `./app` for the file), so the same words always mean the same thing,
// whatever directory tspod runs in. rkt let a file in the working directory win over a name
// (rkt-notes §4.4, image-fetching-behavior.md); tspod does not.

export type ImageRefKind =
  | { kind: 'file'; path: string }
  | { kind: 'url'; url: string; scheme: 'https' | 'http' }
  | { kind: 'oci'; scheme: 'docker' | 'oci' | 'oci-archive' | 'docker-archive'; ref: string }
  | { kind: 'unsupported'; scheme: string }
  | { kind: 'id'; id: string }
  | { kind: 'name'; name: string };

/** Schemes of OCI images (issue 6), `docker-archive` (docker save) included. */
const OCI_SCHEMES = new Set(['docker', 'oci', 'oci-archive', 'docker-archive']);

export function classifyImageRef(ref: string): ImageRefKind {
  if (ref.startsWith('file://')) return { kind: 'file', path: decodeURIComponent(new URL(ref).pathname) };
  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(ref)?.[1]?.toLowerCase();
  if (scheme === 'https' || scheme === 'http') return { kind: 'url', url: ref, scheme };
  // `name:version` also has a colon: only `scheme://` or one of the OCI schemes is a scheme.
  if (scheme !== undefined && (OCI_SCHEMES.has(scheme) || ref.slice(scheme.length + 1).startsWith('//'))) {
    // `docker:` without `//` is not a docker reference (skopeo's spelling is docker://).
    if (scheme === 'docker' && ref.startsWith('docker://')) return { kind: 'oci', scheme, ref };
    if (scheme === 'oci' || scheme === 'oci-archive' || scheme === 'docker-archive') return { kind: 'oci', scheme, ref };
    return { kind: 'unsupported', scheme };
  }
  if (ref.startsWith('/') || ref.startsWith('./') || ref.startsWith('../') || ref.endsWith('.aci')) return { kind: 'file', path: ref };
  if (ref.startsWith('sha512-')) return { kind: 'id', id: ref };
  return { kind: 'name', name: ref };
}

/** A reference that names a file to import rather than an image in the store or a source. */
export function isImageFileRef(ref: string): boolean {
  return classifyImageRef(ref).kind === 'file';
}

/** Whether a reference is fetched from the network (a URL, an appc name or a docker:// image). */
export function isRemoteImageRef(ref: string): boolean {
  const target = classifyImageRef(ref);
  return target.kind === 'url' || target.kind === 'name' || (target.kind === 'oci' && target.scheme === 'docker');
}
