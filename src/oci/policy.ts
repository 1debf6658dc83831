// Which OCI images tspod accepts: a policy.json in the shape of containers-policy.json(5)
// (containers/image docs/containers-policy.json.5.md), validated by schemas/oci-policy.json.
//
//   {"default": [REQ...], "transports": {"docker": {"<scope>": [REQ...]}, "oci": {...}, "oci-archive": {...}, "docker-archive": {...}}}
//
// - Files: `<local config dir>/policy.json`, else `<system config dir>/policy.json` (the local
//   file wins whole, no merging), else the built-in default `{"default":[{"type":"signedBy","keyType":"GPGKeys"}]}`.
// - Scopes, most specific first: docker `registry/repo:tag` (or `@digest`), `registry/repo`,
//   `registry/namespace`..., `registry`, then wildcards of the registry's parent domains without
//   its port (`*.b.example.com`, `*.example.com`, `*.com`; a wildcard covers subdomains, not the
//   domain itself), then the transport's `""`, then `default`. oci and
//   oci-archive: `/abs/path:tag`, `/abs/path`, its parent directories up to `/`, then `""`, then
//   `default`. docker-archive has only `""` (as in containers/image): an archive of `docker save`
//   carries no signature, so its images pass `insecureAcceptAnything` or nothing. The first scope
//   present is used; ALL of its requirements must pass.
// - Requirements: `insecureAcceptAnything`; `reject`; `signedBy` with `keyType: "GPGKeys"` and
//   `keyPath` | `keyPaths` | `keyData` (base64 keyring) and optional `signedIdentity`
//   (matchExact, matchRepoDigestOrExact (default), matchRepository, exactReference,
//   exactRepository, remapIdentity). tspod's addition: `signedBy` without key fields means the keys tspod's
//   keystore trusts for the image (`tspod trust`: root keys, and keys whose prefix covers
//   `docker://registry/repository`). For an oci layout, which has no docker name, those are the
//   keys trusted for the repository the signature names, and no further identity check is made.
// - signedBy accepts when one of the image's signatures verifies against its keys
// (src/oci/simple-signing.ts), names the digest of the manifest the reference resolved to (or of
//   the per-platform manifest), and passes the identity rule.
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import type { ErrorObject, ValidateFunction } from 'ajv/dist/2020.js';

import { createAjv, schemasDir } from '../appc/validate.js';
import { TrustError, ValidationError } from '../errors.js';
import type { Keystore } from '../trust/keystore.js';
import type { CandidateKey } from '../trust/verify.js';
import type { DockerIdentity, SignedIdentity } from './simple-signing.js';

export type Requirement =
  | { type: 'insecureAcceptAnything' }
  | { type: 'reject' }
  | { type: 'signedBy'; keyType: 'GPGKeys'; keyPath?: string; keyPaths?: string[]; keyData?: string; signedIdentity?: SignedIdentity };

export type PolicyTransport = 'docker' | 'oci' | 'oci-archive' | 'docker-archive';

export interface OciPolicy {
  default: Requirement[];
  transports?: Partial<Record<PolicyTransport, Record<string, Requirement[]>>>;
}

export const BUILTIN_POLICY: OciPolicy = Object.freeze({ default: [{ type: 'signedBy', keyType: 'GPGKeys' }] }) as OciPolicy;

export const OCI_POLICY_SCHEMA_ID = 'https://tspod.dev/schemas/oci-policy.json';
/** The standalone validator scripts/compile-schemas.mjs writes beside the compiled policy.js. */
export const OCI_POLICY_VALIDATOR = 'oci-policy.validator.generated.cjs';

export interface LoadedPolicy {
  policy: OciPolicy;
  /** The file it came from; undefined for the built-in default. */
  file: string | undefined;
}

let validator: ValidateFunction | undefined;

function policyValidator(): ValidateFunction {
  if (validator !== undefined) return validator;
  const generated = path.join(path.dirname(fileURLToPath(import.meta.url)), OCI_POLICY_VALIDATOR);
  if (fs.existsSync(generated)) {
    validator = (createRequire(import.meta.url)(generated) as { validate: ValidateFunction }).validate;
  } else {
    const ajv = createAjv();
    ajv.addSchema(JSON.parse(fs.readFileSync(path.join(schemasDir(), 'oci-policy.json'), 'utf8')) as object);
    validator = ajv.getSchema(OCI_POLICY_SCHEMA_ID)!;
  }
  return validator;
}

function problemsOf(errors: ErrorObject[] | null | undefined): string[] {
  const seen = new Set<string>();
  for (const e of errors ?? []) {
    // if/then and not/anyOf produce wrapper errors: the x-message of the failing part says it better.
    if (e.keyword === 'if') continue;
    const custom = (e.parentSchema as { 'x-message'?: string } | undefined)?.['x-message'];
    seen.add(`${e.instancePath || '/'}: ${custom ?? e.message ?? 'is invalid'}`);
  }
  return [...seen];
}

/** Parses and validates a policy document. */
export function parsePolicy(text: string, what: string): OciPolicy {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new ValidationError(`${what}: not valid JSON: ${(err as Error).message}`, [], { cause: err });
  }
  const validate = policyValidator();
  if (!validate(doc)) {
    throw new ValidationError(`${what}: not a valid policy`, problemsOf(validate.errors), {
      suggestions: [`fix ${what} (see the README section "OCI image signatures" and containers-policy.json(5))`],
    });
  }
  const policy = doc as OciPolicy;
  const problems = [...wildcardProblems(policy), ...remapProblems(policy)];
  if (problems.length > 0) {
    throw new ValidationError(`${what}: not a valid policy`, problems, {
      suggestions: [`fix ${what} (see the README section "OCI image signatures" and containers-policy.json(5))`],
    });
  }
  return policy;
}

/** containers-policy.json(5): `*.example.com` matches subdomains; `*` anywhere else (or with a port or path) is no scope. */
const WILDCARD_SCOPE = /^\*(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)+$/;

/** Scopes with a `*` that is not a docker wildcard scope: they would silently never match. */
function wildcardProblems(policy: OciPolicy): string[] {
  const problems: string[] = [];
  for (const [transport, table] of Object.entries(policy.transports ?? {})) {
    for (const scope of Object.keys(table ?? {})) {
      if (!scope.includes('*')) continue;
      if (transport !== 'docker') problems.push(`/transports/${transport}: scope ${JSON.stringify(scope)}: wildcard scopes exist for the docker transport only`);
      else if (!WILDCARD_SCOPE.test(scope)) problems.push(`/transports/docker: scope ${JSON.stringify(scope)}: a wildcard scope is "*.DOMAIN" (every subdomain of DOMAIN, no port or path)`);
    }
  }
  return problems;
}

/** Every signedBy's remapIdentity of the policy, with where it is. */
function* remapRules(policy: OciPolicy): Generator<{ where: string; rule: Extract<SignedIdentity, { type: 'remapIdentity' }> }> {
  const lists: [string, Requirement[]][] = [['/default', policy.default]];
  for (const [transport, table] of Object.entries(policy.transports ?? {})) {
    for (const [scope, reqs] of Object.entries(table ?? {})) lists.push([`/transports/${transport}/${JSON.stringify(scope)}`, reqs]);
  }
  for (const [where, reqs] of lists) {
    for (const [i, req] of reqs.entries()) {
      if (req.type === 'signedBy' && req.signedIdentity?.type === 'remapIdentity') yield { where: `${where}/${i}/signedIdentity`, rule: req.signedIdentity };
    }
  }
}

/** A registry as a remapIdentity prefix: host[:port] (a name, an IPv4 address or a bracketed IPv6 one). */
const REGISTRY_HOST = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?)(:\d+)?$/;

/** distribution/reference: a path component of a repository name. */
const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;

/** Why `text` cannot be a remapIdentity prefix, or undefined when it can. */
function remapPrefixProblem(text: string): string | undefined {
  const [first, ...path] = text.split('/');
  if (path.length === 0) return REGISTRY_HOST.test(text) ? undefined : 'is not a registry host[:port]';
  if (text.includes('@') || path.at(-1)!.includes(':')) return 'must name a namespace or repository, without tag or digest';
  // docker's rule for the first component: a registry has a `.` or a port, or is localhost.
  if (!REGISTRY_HOST.test(first!) || !(first!.includes('.') || first!.includes(':') || first === 'localhost')) {
    return `must be in the fully expanded form, starting with its registry (e.g. "docker.io/${text}")`;
  }
  const bad = path.find((component) => !PATH_COMPONENT.test(component));
  return bad === undefined ? undefined : `has ${JSON.stringify(bad)}, which is not a repository path component`;
}

/** remapIdentity's prefixes must be a registry (host[:port]), or a namespace or repository in the fully expanded form, without tag or digest. */
function remapProblems(policy: OciPolicy): string[] {
  const problems: string[] = [];
  for (const { where, rule } of remapRules(policy)) {
    for (const key of ['prefix', 'signedPrefix'] as const) {
      const reason = remapPrefixProblem(rule[key]);
      if (reason !== undefined) problems.push(`${where}/${key}: ${JSON.stringify(rule[key])} ${reason}`);
    }
  }
  return problems;
}

/** policy.json of the local config dir, else of the system one, else the built-in default. */
export function loadPolicy(dirs: { localDir: string; systemDir: string }): LoadedPolicy {
  for (const dir of [dirs.localDir, dirs.systemDir]) {
    const file = path.join(dir, 'policy.json');
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw new ValidationError(`read ${file}: ${(err as Error).message}`, [], { cause: err });
    }
    return { policy: parsePolicy(text, file), file };
  }
  return { policy: BUILTIN_POLICY, file: undefined };
}

// ---------------------------------------------------------------------------------------------
// Scopes

/** docker scopes of `registry/repo[:tag][@digest]`, most specific first (without `""`). */
export function dockerScopes(image: DockerIdentity): string[] {
  const scopes: string[] = [];
  if (!image.nameOnly) scopes.push(image.full);
  const parts = image.name.split('/');
  for (let n = parts.length; n >= 1; n--) scopes.push(parts.slice(0, n).join('/'));
  return scopes;
}

/**
 * policy.json's docker scopes of an image: dockerScopes, then wildcards of the registry's parent
 * domains, port left out, most specific first (containers/image
 * docker/policyconfiguration DockerReferenceNamespaces). registries.d has no wildcards.
 */
export function policyDockerScopes(image: DockerIdentity): string[] {
  const scopes = dockerScopes(image);
  let domain = image.name.split('/')[0]!.replace(/:\d+$/, '');
  for (let dot = domain.indexOf('.'); dot !== -1; dot = domain.indexOf('.')) {
    domain = domain.slice(dot + 1);
    scopes.push(`*.${domain}`);
  }
  return scopes;
}

/** oci/oci-archive scopes of an absolute path and tag, most specific first (without `""`). */
export function layoutScopes(absPath: string, tag: string | undefined): string[] {
  const scopes: string[] = [];
  if (tag !== undefined) scopes.push(`${absPath}:${tag}`);
  for (let p = absPath; ; p = path.dirname(p)) {
    scopes.push(p);
    if (path.dirname(p) === p) break;
  }
  return scopes;
}

export interface ScopedRequirements {
  /** `transports.docker["registry/repo"]`, `transports.oci[""]` or `default`. */
  scope: string;
  requirements: Requirement[];
}

/** The requirements of the most specific scope present (see the module comment). */
export function requirementsFor(policy: OciPolicy, transport: PolicyTransport, scopes: readonly string[]): ScopedRequirements {
  const table = policy.transports?.[transport];
  if (table !== undefined) {
    for (const scope of [...scopes, '']) {
      const reqs = Object.hasOwn(table, scope) ? table[scope] : undefined;
      if (reqs !== undefined) return { scope: `transports.${transport}[${JSON.stringify(scope)}]`, requirements: reqs };
    }
  }
  return { scope: 'default', requirements: policy.default };
}

// ---------------------------------------------------------------------------------------------
// Evaluation

/** One signature found for the image, and where it came from (a URL, a file). */
export interface SignatureBlob {
  bytes: Uint8Array;
  source: string;
}

/** The image as the policy sees it. */
export interface PolicyImage {
  transport: PolicyTransport;
  /** As the user gave it, normalised (`docker://...`, `oci:/abs:tag`), for messages and suggestions. */
  reference: string;
  /** The docker reference of a registry image; undefined for a layout. */
  docker: DockerIdentity | undefined;
  /** Most specific first. */
  scopes: string[];
  /** The scope a user would add to policy.json for this image (`registry/repo`, the layout's path). */
  editScope: string;
  /** Digests a signature may name: the manifest the reference resolved to, and the per-platform manifest. */
  digests: string[];
}

export interface PolicyDecision {
  /** Fingerprint of the key whose signature was accepted; null when no signedBy was required. */
  signer: string | null;
  scope: string;
  file: string | undefined;
}

export interface EvaluateOptions {
  keystore: Keystore;
  /** The image's signatures; called at most once, and only when a signedBy requirement needs them. */
  signatures: () => Promise<SignatureBlob[]>;
  /** Extra suggestions for "no signature exists" (where signatures come from for this transport). */
  noSignatureHints: string[];
  now?: Date;
}

/** The trust prefix a keystore key needs for this image (`docker://registry/repo`). */
export function trustPrefixOf(image: DockerIdentity): string {
  return `docker://${image.name}`;
}

/** Applies the policy to the image; TrustError naming the scope, the requirement and the fix when refused. */
export async function evaluatePolicy(loaded: LoadedPolicy, image: PolicyImage, opts: EvaluateOptions): Promise<PolicyDecision> {
  const { scope, requirements } = requirementsFor(loaded.policy, image.transport, image.scopes);
  const policyName = loaded.file ?? 'the built-in default policy (no policy.json)';
  const where = `image ${image.reference}: refused by ${policyName}, scope ${scope}`;
  const editPolicy = `edit ${loaded.file ?? 'policy.json in the local config dir'}: give ${JSON.stringify(image.editScope)} under transports.${image.transport} the requirements you want (e.g. [{"type":"insecureAcceptAnything"}] to accept it unsigned)`;
  const skip = `skip the check (stored unverified): tspod fetch --insecure-options=image ${image.reference}`;
  let signatures: SignatureBlob[] | undefined;
  let signer: string | null = null;
  for (const [i, req] of requirements.entries()) {
    const label = `requirement ${i + 1} (${req.type})`;
    if (req.type === 'insecureAcceptAnything') continue;
    if (req.type === 'reject') {
      throw new TrustError(`${where}: ${label} rejects every image there`, { suggestions: [editPolicy] });
    }
    signatures ??= await opts.signatures();
    const accepted = await checkSignedBy(req, image, signatures, opts, `${where}: ${label}`, [...opts.noSignatureHints, skip, editPolicy]);
    signer ??= accepted;
  }
  return { signer, scope, file: loaded.file };
}

/** Candidate keys of a signedBy: its key files or data, or the keystore's keys for `trustName`. */
async function keysOf(req: Extract<Requirement, { type: 'signedBy' }>, keystore: Keystore, trustName: string): Promise<CandidateKey[]> {
  const { readPublicKeys } = await import('../trust/keystore.js');
  const toCandidates = (keys: Awaited<ReturnType<typeof readPublicKeys>>): CandidateKey[] => keys.map((key) => ({ key, fingerprint: key.getFingerprint().toLowerCase() }));
  if (req.keyData !== undefined) return toCandidates(await readPublicKeys(Buffer.from(req.keyData, 'base64'), 'policy.json keyData'));
  const files = req.keyPath !== undefined ? [req.keyPath] : req.keyPaths;
  if (files !== undefined) {
    const out: CandidateKey[] = [];
    for (const f of files) {
      let bytes: Buffer;
      try {
        bytes = fs.readFileSync(f);
      } catch (err) {
        throw new TrustError(`read key file ${f} named by policy.json: ${(err as Error).message}`, { cause: err });
      }
      out.push(...toCandidates(await readPublicKeys(bytes, `key file ${f}`)));
    }
    return out;
  }
  return keystore.keysForName(trustName);
}

/** The fingerprint of the accepted signer; TrustError listing why each signature was refused. */
async function checkSignedBy(
  req: Extract<Requirement, { type: 'signedBy' }>,
  image: PolicyImage,
  signatures: SignatureBlob[],
  opts: EvaluateOptions,
  where: string,
  noSignatureSuggestions: string[],
): Promise<string> {
  const { verifySimpleSignature, identityMismatch, peekSignedReference, parseDockerIdentity, UntrustedSignerError } = await import('./simple-signing.js');
  const fromKeystore = req.keyPath === undefined && req.keyPaths === undefined && req.keyData === undefined;
  if (signatures.length === 0) {
    throw new TrustError(`${where}: a signature is required, but the image has none`, { suggestions: noSignatureSuggestions });
  }
  const reasons: string[] = [];
  const suggestions = new Set<string>();
  for (const sig of signatures) {
    try {
      // The keystore's keys are those trusted for the image's repository; a layout has none, so
      // the repository the signature claims picks them (checked again once the claim is verified).
      let trustName: string;
      if (image.docker !== undefined) trustName = trustPrefixOf(image.docker);
      else trustName = trustPrefixOf(parseDockerIdentity(await peekSignedReference(sig.bytes, sig.source)));
      const keys = await keysOf(req, opts.keystore, trustName);
      const verified = await verifySimpleSignature(sig.bytes, { keys, name: trustName, what: `signature ${sig.source}`, ...(opts.now ? { now: opts.now } : {}) });
      if (!image.digests.includes(verified.manifestDigest)) {
        throw new TrustError(`signature ${sig.source} (by ${verified.signerFingerprint}) is for manifest ${verified.manifestDigest}, not ${image.digests.join(' or ')}`);
      }
      if (image.docker === undefined && fromKeystore && req.signedIdentity === undefined) {
        const claimed = trustPrefixOf(parseDockerIdentity(verified.dockerReference));
        if (claimed !== trustName) throw new TrustError(`signature ${sig.source}: the signed identity changed between reads`);
      } else {
        const mismatch = identityMismatch(req.signedIdentity ?? { type: 'matchRepoDigestOrExact' }, image.docker, verified.dockerReference);
        if (mismatch !== undefined) throw new TrustError(`signature ${sig.source} (by ${verified.signerFingerprint}): ${mismatch}`);
      }
      return verified.signerFingerprint;
    } catch (err) {
      if (!(err instanceof TrustError || err instanceof ValidationError)) throw err;
      reasons.push(err.message);
      if (err instanceof UntrustedSignerError && !fromKeystore) {
        suggestions.add(`add the key ${err.issuer} to the keys of this signedBy (keyPath, keyPaths or keyData) in policy.json`);
      } else {
        for (const s of err.suggestions) suggestions.add(s);
      }
    }
  }
  throw new TrustError(`${where}: no signature is acceptable: ${reasons.join('; ')}`, { suggestions: [...suggestions] });
}
