// "Simple signing" of container images, as containers-signature(5) defines it (containers/image
// docs/containers-signature.5.md; what `skopeo standalone-sign` and `skopeo copy --sign-by` write):
// an OpenPGP signed message (RFC 4880 §11.3; binary, usually inside a compressed-data packet, not
// detached, not cleartext) whose literal data is the JSON
//
//   {"critical": {"type": "atomic container signature",
//                 "image": {"docker-manifest-digest": "sha256:..."},
//                 "identity": {"docker-reference": "registry/repo:tag"}},
//    "optional": {"creator": "...", "timestamp": 1700000000, ...}}
//
// Rules kept from the format's definition: the cryptography is verified before the JSON is read
// (so nothing an attacker wrote is parsed unless a trusted key signed it); exactly one signature;
// the signer must be one of the candidate keys and valid (src/trust/verify.ts's policy: able to
// sign when the signature was made and now); the top level has exactly `critical` and `optional`;
// every object under `critical` has exactly its defined members (an unknown critical member is a
// refusal, because a newer format may have meant it to restrict the signature); `optional` may
// hold anything; a duplicated member anywhere is a refusal (two parsers must not read two meanings).
// The digest is compared by the caller (src/oci/policy.ts) with the digest of the manifest bytes,
// and the identity with the image reference under the policy's `signedIdentity` rule
// (`matchesIdentity` here, containers-policy.json(5) "signedIdentity").
import * as openpgp from 'openpgp';

import { TrustError } from '../errors.js';
import { causeText } from '../trust/keystore.js';
import { checkSignerAmong, signatureIssuer, type CandidateKey } from '../trust/verify.js';
import { parseReference } from './reference.js';

/** The largest signature accepted, and the largest payload it may decompress to (containers: 4 MiB). */
export const MAX_SIGNATURE_BYTES = 4 * 1024 * 1024;

export const SIGNATURE_TYPE = 'atomic container signature';

/** openpgp's limits for reading a signature: a compression bomb stops at the cap. */
const READ_CONFIG = { maxDecompressedMessageSize: MAX_SIGNATURE_BYTES };

/** Parses the binary OpenPGP message (a compression bomb stops at MAX_SIGNATURE_BYTES). */
async function readSigned(bytes: Uint8Array): Promise<openpgp.Message<Uint8Array>> {
  return openpgp.readMessage({ binaryMessage: bytes, config: READ_CONFIG });
}

/** The critical claims of a simple signature (and what optional members it had). */
export interface SignaturePayload {
  manifestDigest: string;
  /** As signed (`docker-reference`); compare with `parseDockerIdentity`. */
  dockerReference: string;
  creator: string | undefined;
  timestamp: number | undefined;
}

export interface VerifiedSimpleSignature extends SignaturePayload {
  /** Lowercase fingerprint of the primary key that signed. */
  signerFingerprint: string;
  /** 16-hex id of the key (primary or subkey) that made the signature. */
  keyId: string;
  /** Signature creation time, ISO 8601. */
  created: string;
}

/** A signature that is well formed but made by none of the candidate keys. */
export class UntrustedSignerError extends TrustError {
  constructor(
    message: string,
    readonly issuer: string,
    options: { suggestions?: string[] } = {},
  ) {
    super(message, options);
  }
}

export interface VerifySimpleSignatureOptions {
  /** The keys that may have made it. */
  keys: readonly CandidateKey[];
  /** The image, in messages and in the trust suggestion (`docker://registry/repo`). */
  name: string;
  /** Where the signature came from, in messages. */
  what: string;
  now?: Date;
}

/**
 * Verifies a simple signature against candidate keys and returns its claims. TrustError when it
 * is not a signed message, has not exactly one signature, is by none of the keys
 * (UntrustedSignerError, naming the issuer), by an expired or revoked key, does not verify, or
 * its payload breaks the format.
 */
export async function verifySimpleSignature(bytes: Uint8Array, opts: VerifySimpleSignatureOptions): Promise<VerifiedSimpleSignature> {
  const { what, name } = opts;
  const now = opts.now ?? new Date();
  if (bytes.length > MAX_SIGNATURE_BYTES) throw new TrustError(`${what}: ${bytes.length} bytes; a signature is at most ${MAX_SIGNATURE_BYTES}`);
  // First pass, nothing verified yet: which signature packets the message carries (openpgp hands
  // the trailing signature packets of a one-pass signed message out only through verify).
  let packets: openpgp.SignaturePacket[];
  try {
    const { signatures } = await openpgp.verify({ message: await readSigned(bytes), verificationKeys: [], format: 'binary', config: READ_CONFIG });
    for (const sig of signatures) sig.verified.catch(() => undefined); // none can verify: no keys were given
    packets = [];
    for (const sig of signatures) packets.push(...(await sig.signature).packets);
  } catch (err) {
    throw new TrustError(`${what}: not an OpenPGP signed message (containers-signature(5)): ${causeText(err)}`, { cause: err });
  }
  if (packets.length !== 1) {
    throw new TrustError(`${what}: holds ${packets.length} signatures; a container signature holds exactly one`);
  }
  const packet = packets[0]!;
  if (packet.signatureType !== openpgp.enums.signature.binary && packet.signatureType !== openpgp.enums.signature.text) {
    throw new TrustError(`${what}: not a document signature (signature type ${packet.signatureType})`);
  }
  const signer = await checkSignerAmong(packets, opts.keys, name, now);
  if (signer === undefined) {
    const issuer = signatureIssuer(packet);
    throw new UntrustedSignerError(`${what}: signed by key ${issuer}, which is not trusted for ${name}`, issuer, {
      suggestions: [`tspod trust --prefix ${name} KEYFILE   (the public key of ${issuer}, if you trust it for ${name})`],
    });
  }
  // Second pass: verified with the one key found, the signature required.
  let data: Uint8Array;
  try {
    const result = await openpgp.verify({
      message: await readSigned(bytes),
      verificationKeys: [signer.key.key],
      expectSigned: true,
      format: 'binary',
      date: now,
      config: READ_CONFIG,
    });
    data = result.data;
  } catch (err) {
    throw new TrustError(`${what}: signature by key ${signer.key.fingerprint} does not verify: ${causeText(err)}`, { cause: err });
  }
  const payload = parseSignaturePayload(data, what);
  return {
    ...payload,
    signerFingerprint: signer.key.fingerprint,
    keyId: signer.keyId,
    created: (signer.packet.created ?? now).toISOString(),
  };
}

// ---------------------------------------------------------------------------------------------
// The payload

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

function isObject(v: Json | undefined): v is { [k: string]: Json } {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** An object with exactly `members` (all present, nothing else), as containers' paranoid unmarshal. */
function exactObject(v: Json | undefined, members: readonly string[], where: string, what: string): { [k: string]: Json } {
  if (!isObject(v)) throw new TrustError(`${what}: ${where} is not a JSON object`);
  for (const m of members) if (!(m in v)) throw new TrustError(`${what}: ${where} has no "${m}"`);
  const unknown = Object.keys(v).filter((k) => !members.includes(k));
  if (unknown.length > 0) throw new TrustError(`${what}: ${where} has unknown member${unknown.length > 1 ? 's' : ''} ${unknown.map((k) => `"${k}"`).join(', ')}; refused as containers-signature(5) requires`);
  return v;
}

function stringMember(v: Json | undefined, where: string, what: string): string {
  if (typeof v !== 'string') throw new TrustError(`${what}: ${where} is not a string`);
  return v;
}

const DIGEST_RE = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;

/** The signed JSON, checked member by member (see the module comment). */
export function parseSignaturePayload(bytes: Uint8Array, what = 'signature'): SignaturePayload {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch (err) {
    throw new TrustError(`${what}: the signed payload is not UTF-8`, { cause: err });
  }
  let doc: Json;
  try {
    doc = JSON.parse(text) as Json;
  } catch (err) {
    throw new TrustError(`${what}: the signed payload is not JSON: ${causeText(err)}`, { cause: err });
  }
  const duplicate = firstDuplicateMember(text);
  if (duplicate !== undefined) throw new TrustError(`${what}: the signed payload repeats the member "${duplicate}"`);
  const top = exactObject(doc, ['critical', 'optional'], 'the payload', what);
  const critical = exactObject(top.critical, ['type', 'image', 'identity'], '"critical"', what);
  const type = stringMember(critical.type, '"critical.type"', what);
  if (type !== SIGNATURE_TYPE) throw new TrustError(`${what}: signature type "${type}" is not "${SIGNATURE_TYPE}"`);
  const image = exactObject(critical.image, ['docker-manifest-digest'], '"critical.image"', what);
  const manifestDigest = stringMember(image['docker-manifest-digest'], '"critical.image.docker-manifest-digest"', what);
  if (!DIGEST_RE.test(manifestDigest)) throw new TrustError(`${what}: "${manifestDigest}" is not a digest`);
  const identity = exactObject(critical.identity, ['docker-reference'], '"critical.identity"', what);
  const dockerReference = stringMember(identity['docker-reference'], '"critical.identity.docker-reference"', what);
  const optional = top.optional;
  if (!isObject(optional)) throw new TrustError(`${what}: "optional" is not a JSON object`);
  let creator: string | undefined;
  let timestamp: number | undefined;
  if (optional.creator !== undefined) creator = stringMember(optional.creator, '"optional.creator"', what);
  if (optional.timestamp !== undefined) {
    if (typeof optional.timestamp !== 'number' || !Number.isSafeInteger(optional.timestamp)) throw new TrustError(`${what}: "optional.timestamp" is not an integer`);
    timestamp = optional.timestamp;
  }
  return { manifestDigest, dockerReference, creator, timestamp };
}

/**
 * The first member name that occurs twice in one object of a JSON text (already known to be
 * valid JSON, so the scan only tracks strings and nesting).
 */
export function firstDuplicateMember(text: string): string | undefined {
  const stack: (Set<string> | null)[] = [];
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"') {
      let j = i + 1;
      while (text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      const top = stack.at(-1);
      if (expectKey && top) {
        const key = JSON.parse(text.slice(i, j + 1)) as string;
        if (top.has(key)) return key;
        top.add(key);
        expectKey = false;
      }
      i = j;
    } else if (c === '{') {
      stack.push(new Set());
      expectKey = true;
    } else if (c === '[') {
      stack.push(null);
    } else if (c === '}' || c === ']') {
      stack.pop();
    } else if (c === ',') {
      expectKey = stack.at(-1) != null;
    }
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Identities (containers-policy.json(5) "signedIdentity")

/** A docker reference, normalised as docker does (docker.io/library/...). */
export interface DockerIdentity {
  /** `registry/repository` */
  name: string;
  tag: string | undefined;
  digest: string | undefined;
  /** Neither tag nor digest was written. */
  nameOnly: boolean;
  /** `registry/repository[:tag][@digest]` */
  full: string;
}

/** Parses a docker reference as a signature or a policy writes it (no `docker://`). */
export function parseDockerIdentity(text: string): DockerIdentity {
  if (text.includes('://')) throw new TrustError(`"${text}" is not a docker reference (no scheme is allowed)`);
  const ref = parseReference(text);
  // parseReference adds `latest` to a bare name; a signature's name-only reference must stay one.
  const beforeDigest = text.split('@')[0]!;
  const lastSlash = beforeDigest.lastIndexOf('/');
  const nameOnly = ref.digest === undefined && beforeDigest.lastIndexOf(':') <= lastSlash;
  const tag = nameOnly ? undefined : ref.tag;
  const name = `${ref.registry}/${ref.repository}`;
  return { name, tag, digest: ref.digest, nameOnly, full: `${name}${tag === undefined ? '' : `:${tag}`}${ref.digest === undefined ? '' : `@${ref.digest}`}` };
}

export type SignedIdentity =
  | { type: 'matchExact' }
  | { type: 'matchRepoDigestOrExact' }
  | { type: 'matchRepository' }
  | { type: 'exactReference'; dockerReference: string }
  | { type: 'exactRepository'; dockerRepository: string }
  | { type: 'remapIdentity'; prefix: string; signedPrefix: string };

/**
 * remapIdentity: the image as its signature should name it. When the image's name is `prefix` or
 * lies below it (`prefix/...`), that prefix is replaced by `signedPrefix`; otherwise the image is
 * unchanged (containers/image signature/policy_reference_match.go prmRemapIdentity).
 */
export function remapIdentity(image: DockerIdentity, prefix: string, signedPrefix: string): DockerIdentity {
  if (image.name !== prefix && !image.name.startsWith(`${prefix}/`)) return image;
  return parseDockerIdentity(`${signedPrefix}${image.full.slice(prefix.length)}`);
}

/**
 * Whether a signature's `docker-reference` is acceptable for the image reference under `rule`
 * (containers/image signature/policy_reference_match.go semantics). `image` is undefined for
 * images with no docker reference (oci layouts): only the exact* rules can match them. Returns
 * undefined when it matches, else the reason.
 */
export function identityMismatch(rule: SignedIdentity, image: DockerIdentity | undefined, signedText: string): string | undefined {
  let signed: DockerIdentity;
  try {
    signed = parseDockerIdentity(signedText);
  } catch (err) {
    return `the signed identity "${signedText}" is not a docker reference (${causeText(err)})`;
  }
  const noDockerName = `the image has no docker reference, so ${rule.type} cannot match; use signedIdentity exactReference or exactRepository`;
  switch (rule.type) {
    case 'matchExact':
      if (image === undefined) return noDockerName;
      if (image.nameOnly || signed.nameOnly) return `${rule.type} needs a tag or digest on both the image and the signed identity ("${signedText}")`;
      return signed.full === image.full ? undefined : `signed for ${signed.full}, not ${image.full} (${rule.type})`;
    case 'remapIdentity': {
      if (image === undefined) return noDockerName;
      // Then matchRepoDigestOrExact, against the remapped name (containers-policy.json(5)).
      const remapped = remapIdentity(image, rule.prefix, rule.signedPrefix);
      const reason = identityMismatch({ type: 'matchRepoDigestOrExact' }, remapped, signedText);
      return reason === undefined || remapped === image ? reason : `${reason}, the image read as ${remapped.full} (remapIdentity ${rule.prefix} -> ${rule.signedPrefix})`;
    }
    case 'matchRepoDigestOrExact':
      if (image === undefined) return noDockerName;
      if (image.digest !== undefined) {
        return signed.name === image.name ? undefined : `signed for repository ${signed.name}, not ${image.name} (${rule.type})`;
      }
      if (image.tag !== undefined) return signed.full === image.full ? undefined : `signed for ${signed.full}, not ${image.full} (${rule.type})`;
      return `the image reference ${image.full} has neither tag nor digest (${rule.type})`;
    case 'matchRepository':
      if (image === undefined) return noDockerName;
      return signed.name === image.name ? undefined : `signed for repository ${signed.name}, not ${image.name} (${rule.type})`;
    case 'exactReference': {
      const wanted = parseDockerIdentity(rule.dockerReference);
      if (wanted.nameOnly) return `exactReference "${rule.dockerReference}" has neither tag nor digest`;
      return signed.full === wanted.full ? undefined : `signed for ${signed.full}, not ${wanted.full} (exactReference)`;
    }
    case 'exactRepository': {
      const wanted = parseDockerIdentity(rule.dockerRepository);
      return signed.name === wanted.name ? undefined : `signed for repository ${signed.name}, not ${wanted.name} (exactRepository)`;
    }
  }
}

/**
 * The `docker-reference` a signature claims, read WITHOUT verifying it: only to choose which
 * keystore keys to verify it with when the image itself has no docker name (an oci layout). The
 * claim is read again from the verified payload before it is relied on.
 */
export async function peekSignedReference(bytes: Uint8Array, what: string): Promise<string> {
  try {
    const data = (await readSigned(bytes)).unwrapCompressed().getLiteralData();
    if (!(data instanceof Uint8Array)) throw new Error('no literal data');
    return parseSignaturePayload(data, what).dockerReference;
  } catch (err) {
    if (err instanceof TrustError) throw err;
    throw new TrustError(`${what}: not an OpenPGP signed message (containers-signature(5)): ${causeText(err)}`, { cause: err });
  }
}
