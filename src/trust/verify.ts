// OpenPGP verification of detached image signatures (appc spec/aci.md: `<image>.aci.asc`, an
// armored detached signature over the .aci bytes as transferred), against the keystore.
//
// Flow, as rkt's (rkt-notes §4.3): read the signature (armored, falling back to binary), then
// `checkSigner` BEFORE any image byte is read, so an untrusted, expired or revoked signer fails
// with the `tspod trust --prefix ...` hint before a large download; then `verifyDetached` streams
// the image through openpgp's hash (Node's crypto.createHash under openpgp) without buffering it.
//
// Validity policy: the signing key (primary, or a signing-capable subkey bound to it) must be
// valid when the signature was made (openpgp's own check) AND now: a key that has since
// expired or been revoked no longer vouches for images. Signatures dated before the key's
// creation are refused.
import type { Readable } from 'node:stream';
import { setImmediate as setImmediatePromise } from 'node:timers/promises';
import { ReadableStream as WebReadableStream } from 'node:stream/web';

import * as openpgp from 'openpgp';

import { TrustError } from '../errors.js';
import { causeText, type Keystore, type TrustedKey } from './keystore.js';

export interface VerifiedSignature {
  /** Lowercase fingerprint of the trusted primary key. */
  signerFingerprint: string;
  /** Lowercase 16-hex key id of the key that made the signature (primary or subkey). */
  keyId: string;
  userIds: string[];
  /** Signature creation time, ISO 8601. */
  created: string;
}

export interface CheckSignerOptions {
  signature: openpgp.Signature;
  /** The image name (appc identifier) the signature is for. */
  name: string;
  keystore: Keystore;
  /** The clock; tests may pin it. */
  now?: Date;
}

export interface VerifyDetachedOptions extends CheckSignerOptions {
  /** The signed bytes: a stream (read once, never buffered whole) or a buffer. */
  data: Readable | Uint8Array;
}

/** Signature packets a detached image signature may use (RFC 4880 5.2.1: binary, text). */
const DOCUMENT_SIGNATURE_TYPES = new Set<number>([openpgp.enums.signature.binary, openpgp.enums.signature.text]);

/** Parses a detached signature: armored, falling back to binary (rkt does the same). */
export async function readSignature(bytes: Uint8Array, what: string): Promise<openpgp.Signature> {
  const text = Buffer.from(bytes).toString('latin1');
  let signature: openpgp.Signature;
  try {
    if (text.trimStart().startsWith('-----BEGIN PGP')) {
      signature = await openpgp.readSignature({ armoredSignature: text });
    } else {
      signature = await openpgp.readSignature({ binarySignature: bytes });
    }
  } catch (err) {
    throw new TrustError(`${what}: not an OpenPGP signature: ${causeText(err)}`, { cause: err });
  }
  const packets = signaturePackets(signature);
  if (packets.length === 0) throw new TrustError(`${what}: not an OpenPGP signature: no signature packet found`);
  for (const p of packets) {
    if (!DOCUMENT_SIGNATURE_TYPES.has(p.signatureType ?? -1)) {
      throw new TrustError(`${what}: not a detached document signature (signature type ${p.signatureType})`);
    }
  }
  return signature;
}

function signaturePackets(signature: openpgp.Signature): openpgp.SignaturePacket[] {
  return [...signature.packets].filter((p): p is openpgp.SignaturePacket => p instanceof openpgp.SignaturePacket);
}

function hex(bytes: Uint8Array | null | undefined): string | undefined {
  return bytes && bytes.length > 0 ? Buffer.from(bytes).toString('hex') : undefined;
}

/** How the issuer is named in messages: its fingerprint when the signature carries it, else the key id. */
function issuerName(p: openpgp.SignaturePacket): string {
  return hex(p.issuerFingerprint) ?? `key id ${p.issuerKeyID.toHex()}`;
}

function trustSuggestion(name: string): string {
  return `tspod trust --prefix ${name} <key file or URL>`;
}

/** A key a signature may be checked against: from the keystore, or named by other means (policy.json). */
export type CandidateKey = Pick<TrustedKey, 'fingerprint' | 'key'>;

interface SignerMatch {
  trusted: CandidateKey;
  packet: openpgp.SignaturePacket;
  signingKey: openpgp.PublicKey | openpgp.Subkey;
}

/** The first packet whose issuer (primary key or subkey, by key id and fingerprint when given) is a candidate. */
function matchSigner(packets: openpgp.SignaturePacket[], keys: readonly CandidateKey[]): SignerMatch | undefined {
  for (const packet of packets) {
    const issuerFp = hex(packet.issuerFingerprint);
    for (const trusted of keys) {
      const candidates = trusted.key.getKeys(packet.issuerKeyID);
      const match = candidates.find((k) => issuerFp === undefined || k.getFingerprint().toLowerCase() === issuerFp);
      if (match) return { trusted, packet, signingKey: match };
    }
  }
  return undefined;
}

async function findSigner(opts: CheckSignerOptions): Promise<SignerMatch & { trusted: TrustedKey }> {
  const { signature, name, keystore } = opts;
  const packets = signaturePackets(signature);
  const found = matchSigner(packets, await keystore.keysForName(name));
  if (found) return found as SignerMatch & { trusted: TrustedKey };
  const first = packets[0]!;
  const who = issuerName(first);
  throw new TrustError(
    `image ${name}: signed by untrusted key ${who}; trust it with: ${trustSuggestion(name)}`,
    { suggestions: [trustSuggestion(name)] },
  );
}

/**
 * Confirms, before any image data is read, that the signature's issuer is a key trusted for
 * `name` (root or prefix; primary key or subkey) and that this key can sign at the signature's
 * creation time and now. Returns the trusted key.
 */
export async function checkSigner(opts: CheckSignerOptions): Promise<TrustedKey> {
  const match = await findSigner(opts);
  await checkKeyValidity(match, opts.name, opts.now ?? new Date());
  return match.trusted;
}

async function checkKeyValidity(match: SignerMatch, name: string, now: Date): Promise<void> {
  const { trusted, packet, signingKey } = match;
  const keyId = signingKey.getKeyID();
  const where = `image ${name}: signature by key ${trusted.fingerprint}`;
  const created = packet.created;
  if (created && signingKey.getCreationTime() > created) {
    throw new TrustError(
      `${where}: the signature (${created.toISOString()}) is older than the signing key (${signingKey.getCreationTime().toISOString()})`,
    );
  }
  if (created) {
    try {
      await trusted.key.getSigningKey(keyId, created);
    } catch (err) {
      throw new TrustError(`${where}: the key could not sign at ${created.toISOString()}: ${describeKeyProblem(err)}`, {
        cause: err,
      });
    }
  }
  try {
    await trusted.key.getSigningKey(keyId, now);
  } catch (err) {
    throw new TrustError(`${where}: the key is no longer valid: ${describeKeyProblem(err)}`, {
      cause: err,
      suggestions: [`tspod trust list`, trustSuggestion(name)],
    });
  }
}

/** openpgp wraps causes as "Could not find valid signing key packet in key X: Primary key is expired". */
function describeKeyProblem(err: unknown): string {
  const parts: string[] = [];
  let e: unknown = err;
  while (e instanceof Error) {
    parts.push(e.message);
    e = e.cause;
  }
  const text = parts.join(': ');
  if (/revoked/i.test(text)) return `revoked (${causeText(err)})`;
  if (/expired/i.test(text)) return `expired (${causeText(err)})`;
  return causeText(err);
}

/**
 * Verifies a detached signature over `data`, which is streamed through openpgp (no whole-image
 * buffer: each chunk is hashed and dropped). Throws TrustError naming the signer and the cause.
 */
export async function verifyDetached(opts: VerifyDetachedOptions): Promise<VerifiedSignature> {
  const now = opts.now ?? new Date();
  // We own the stream from here: listen for its errors before the first await (a file stream
  // may fail to open meanwhile; an 'error' event without a listener would crash the process).
  let sourceError: unknown;
  const source = opts.data instanceof Uint8Array ? undefined : opts.data;
  source?.on('error', (err) => (sourceError ??= err));
  let match: SignerMatch & { trusted: TrustedKey };
  try {
    match = await findSigner(opts);
    await checkKeyValidity(match, opts.name, now);
  } catch (err) {
    source?.destroy(); // nothing will be read: release the fd or socket
    throw err;
  }
  const { trusted, signingKey } = match;
  const where = `verify image ${opts.name}: signature by key ${trusted.fingerprint}`;

  // Our own web stream over the Node stream: a source error is recorded and the stream ended,
  // because openpgp tees the data and turns a stream error into "digest did not match" plus an
  // unhandled rejection; we report the source's error instead.
  const binary = source === undefined ? (opts.data as Uint8Array) : webStreamOf(source, (err) => (sourceError ??= err));
  // Only this one signature packet, so openpgp does not report the untrusted co-signers.
  const packets = new openpgp.PacketList<openpgp.SignaturePacket>();
  packets.push(match.packet);
  const signature = new openpgp.Signature(packets);
  let failure: unknown;
  try {
    const message = await openpgp.createMessage({ binary: binary as unknown as ReadableStream<Uint8Array> });
    const result = await openpgp.verify({
      message,
      signature,
      verificationKeys: [trusted.key],
      format: 'binary',
      date: now,
    });
    // Drain the data: this is what drives hashing; chunks are discarded as they pass.
    await drain(result.data as unknown);
    const [sig] = result.signatures;
    if (!sig) throw new Error('no signature to verify');
    await sig.verified;
  } catch (err) {
    failure = err;
  }
  if (sourceError !== undefined) {
    throw new TrustError(`${where}: reading the signed data failed: ${causeText(sourceError)}`, { cause: sourceError });
  }
  if (failure !== undefined) {
    throw new TrustError(`${where}: ${describeVerifyProblem(failure)}`, { cause: failure });
  }
  return {
    signerFingerprint: trusted.fingerprint,
    keyId: signingKey.getKeyID().toHex(),
    userIds: trusted.userIds,
    created: (match.packet.created ?? now).toISOString(),
  };
}

function describeVerifyProblem(err: unknown): string {
  const text = causeText(err);
  if (/digest did not match|signature did not match|invalid signature/i.test(text)) {
    return `bad signature: the data does not match (${text})`;
  }
  return describeKeyProblem(err);
}

/** A pull-based web stream over a Node Readable; on a source error it calls `onError` and ends. */
function webStreamOf(source: Readable, onError: (err: unknown) => void): WebReadableStream<Uint8Array> {
  const iterator = source[Symbol.asyncIterator]() as AsyncIterator<Buffer | string>;
  return new WebReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const { done, value } = await iterator.next();
        if (done) controller.close();
        else controller.enqueue(typeof value === 'string' ? Buffer.from(value) : value);
      } catch (err) {
        onError(err);
        controller.close();
      }
    },
    async cancel(reason) {
      source.destroy(reason instanceof Error ? reason : undefined);
    },
  });
}

/**
 * Reads openpgp's output stream to the end, discarding it. Reading it is what pulls the image
 * through; openpgp feeds the hash from a passive clone that has NO backpressure (web-stream-tools
 * passiveClone enqueues every chunk read here), so if this loop outran the hash, chunks would pile
 * up in the clone's queue. After each chunk we yield a macrotask turn: the hash side is a chain
 * of promise callbacks (microtasks), so by then it has consumed everything queued.
 */
async function drain(data: unknown): Promise<void> {
  if (data instanceof Uint8Array || typeof data === 'string') return;
  const stream = data as { getReader(): { read(): Promise<{ done: boolean }>; releaseLock(): void } };
  const reader = stream.getReader();
  for (;;) {
    const { done } = await reader.read();
    if (done) break;
    await setImmediatePromise();
  }
}

/** The key that made a signature, found among candidates and checked for validity (checkSignerAmong). */
export interface SignerCheck {
  key: CandidateKey;
  packet: openpgp.SignaturePacket;
  /** 16-hex key id of the key that signed (primary or subkey). */
  keyId: string;
}

/**
 * For signatures whose data openpgp verifies elsewhere (simple signing's signed messages): finds
 * which candidate key (primary or signing subkey) issued one of `packets`, and applies the
 * validity policy of this module (could sign when the signature was made, can still sign now,
 * not older than the key). `undefined` when no candidate issued them; TrustError when the issuer
 * is a candidate that is expired, revoked or not signing-capable. `name` names the image in
 * messages and in the `tspod trust --prefix` suggestion.
 */
export async function checkSignerAmong(
  packets: readonly openpgp.SignaturePacket[],
  keys: readonly CandidateKey[],
  name: string,
  now: Date = new Date(),
): Promise<SignerCheck | undefined> {
  const match = matchSigner([...packets], keys);
  if (match === undefined) return undefined;
  await checkKeyValidity(match, name, now);
  return { key: match.trusted, packet: match.packet, keyId: match.signingKey.getKeyID().toHex() };
}

/** How a signature packet's issuer is named in messages: its fingerprint when carried, else its key id. */
export function signatureIssuer(packet: openpgp.SignaturePacket): string {
  return issuerName(packet);
}
