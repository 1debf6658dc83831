// Fetching an ACI from an `{aci, asc}` endpoint pair (a discovered template, or an https:// URL
// with its `.asc` next to it), in the order rkt settled on after its users asked for it
// (rkt-notes §4.3; rkt issues 481, 573, 776):
//
//   1. pull policy: a stored download of this URL that is still fresh is used as it is; one with
//      an ETag/Last-Modified is revalidated (304: nothing downloaded) under `update`;
//   2. signature first: the `.asc` is downloaded and its signer checked against the keystore
//      BEFORE the image is requested, so an untrusted signer stops the fetch with the fingerprint
//      and the `tspod trust` command, and no image byte is transferred. For a plain URL the name is
//      unknown until the manifest is read: the signer must then be trusted for some name (a prefix
//      or root) now, and for the manifest's name once it is known;
//   3. the body is downloaded into the store's tmp area under the store's shared lock (`image gc`
//      takes it exclusively before emptying cas/tmp), resumably (src/http/download.ts), and every
//      byte is handed, as it arrives, to the signature check (verifyDetached) and to the ACI
//      import (readAci: decompress, sha512, validate), so nothing is read twice;
//   4. the manifest's name and labels must equal those discovered (spec/discovery.md
//      "Validation"), the signature must verify, and only then is the image committed, with its
//      source, signer and cache validators in the catalog.
import fs from 'node:fs';

import type * as openpgp from 'openpgp';

import { labelsMatch } from '../appc/labels.js';
import type { Label } from '../appc/types.js';
import { parseImageManifest } from '../appc/validate.js';
import type { AciEndpoint } from '../discovery/template.js';
import { ImageFormatError, NotFoundError, TrustError, TspodError } from '../errors.js';
import { decideCache, recordOfDownload, revalidate, type CacheRecord } from '../http/cache.js';
import { getBytes, HttpError } from '../http/client.js';
import { download, type DownloadOptions, type DownloadResult } from '../http/download.js';
import { DEFAULT_RETRY_POLICY } from '../http/retry.js';
import { readAci, type AciReadResult } from '../image/aci-reader.js';
import type { ImageRecord, ImageSource, ImageSourceKind } from '../store/catalog.js';
import type { Keystore, TrustedKey } from '../trust/keystore.js';
import type { VerifiedSignature } from '../trust/verify.js';
import type { FetchContext, FetchNetwork, ImageFetch, PullPolicy } from './context.js';
import { cacheRecordOf, sourceCacheFields, storedFromLocation, updateSource } from './source-record.js';
import { StreamConsumer } from './stream-consumer.js';

/** Detached signatures are a few hundred bytes; anything near this is not one. */
const MAX_SIGNATURE_BYTES = 1024 * 1024;

export interface EndpointRequest {
  endpoint: AciEndpoint;
  /** Names the image in messages: the reference as the user gave it. */
  what: string;
  /** Names the download in progress output (default `what`): a URL's file name is what fits a bar. */
  label?: string;
  /** The name the manifest must carry; absent for a plain URL (then read from the manifest). */
  expectedName?: string;
  /** Labels the manifest must carry with the same values. */
  labels: Label[];
  kind: Extract<ImageSourceKind, 'https' | 'http' | 'discovery'>;
  /** The discovery reference, recorded in the catalog. */
  discovery?: string;
  /** `--signature FILE` for a URL: read the signature there instead of from `<url>.asc`. */
  signaturePath?: string;
  /** ac-discovery-pubkeys found with the endpoint: `tspod trust --prefix NAME` can fetch them. */
  publicKeys?: string[];
}

export interface EndpointPolicy {
  pullPolicy: PullPolicy;
  noStore: boolean;
}

/** The endpoint has no signature (404/410 for the .asc): another endpoint may have one. */
export class MissingSignatureError extends TrustError {
  constructor(
    readonly url: string,
    readonly reason: string,
    what: string,
  ) {
    super(`fetch ${what}: no signature at ${url} (${reason})`, {
      suggestions: [`sign the image: gpg --armor --detach-sign IMAGE.aci, and publish IMAGE.aci.asc next to it`, `or skip the check: tspod fetch --insecure-options=image ${what}`],
    });
  }
}

/**
 * The `tried URL: cause` line of a failure that another endpoint might not have (an HTTP failure,
 * a missing signature); undefined for failures that end the fetch (untrusted signer, bad image).
 */
export function endpointFailureStep(err: unknown): string | undefined {
  if (err instanceof MissingSignatureError) return `tried ${err.url}: no signature (${err.reason})`;
  if (err instanceof HttpError) {
    const m = /^\S+ \S+(?: \(redirected to (\S+)\))?: (.*)$/s.exec(err.message);
    const cause = m ? (m[1] ? `redirected to ${m[1]}: ${m[2]}` : m[2]!) : err.message;
    return `tried ${err.url}: ${err.status !== undefined && !cause.includes(String(err.status)) ? `${err.status} ` : ''}${cause}`;
  }
  return undefined;
}

export function networkOf(ctx: FetchContext): Promise<FetchNetwork> {
  if (ctx.network === undefined) throw new TspodError('fetch: this command has no network context (a bug: Context.fetchContext provides one)');
  return ctx.network();
}

function formatLabels(labels: readonly Label[]): string {
  return labels.length === 0 ? '(none)' : labels.map((l) => `${l.name}=${l.value}`).join(',');
}

/** Fetches the image of one endpoint under the pull policy; see the module comment. */
export async function fetchEndpoint(ctx: FetchContext, request: EndpointRequest, policy: EndpointPolicy): Promise<ImageFetch> {
  const { store } = ctx;
  let cached: { record: ImageRecord; cache: CacheRecord } | undefined;
  if (!policy.noStore) {
    const stored = storedFromLocation(store, request.endpoint.aci);
    const decision = decideCache(stored === undefined ? undefined : cacheRecordOf(stored), policy.pullPolicy, Date.now());
    if (decision.action === 'fresh' && stored !== undefined) {
      return { record: stored, stored: false, signer: stored.source.signer, outcome: 'in-store' };
    }
    if (decision.action === 'missing') {
      throw new NotFoundError(`image ${request.what}: not in the store, and --pull-policy=never does not fetch`, {
        suggestions: [`tspod fetch ${request.what}`],
      });
    }
    if (decision.action === 'revalidate' && stored !== undefined) cached = { record: stored, cache: cacheRecordOf(stored) };
  }
  const net = await networkOf(ctx);
  let check: SignatureCheck | undefined;
  if (ctx.insecure.image) ctx.onWarning(`image ${request.what}: signature not checked (--insecure-options=image)`);
  else check = await checkSignatureFirst(ctx, net, request);
  return downloadAndImport(ctx, net, request, check, cached);
}

interface SignatureCheck {
  verify: typeof import('../trust/verify.js');
  signature: openpgp.Signature;
  /** The real keystore, for the manifest's name. */
  keystore: Keystore;
  /** The keystore and name the streaming verification uses: every trusted key for a plain URL. */
  streamKeystore: Keystore;
  streamName: string;
}

async function readSignatureBytes(net: FetchNetwork, request: EndpointRequest): Promise<{ bytes: Uint8Array; where: string }> {
  if (request.signaturePath !== undefined) {
    if (!fs.existsSync(request.signaturePath)) throw new TrustError(`fetch ${request.what}: no signature at ${request.signaturePath}`);
    return { bytes: fs.readFileSync(request.signaturePath), where: request.signaturePath };
  }
  const url = request.endpoint.asc;
  try {
    const { bytes } = await getBytes(url, { ...net.http, maxBytes: MAX_SIGNATURE_BYTES, retry: DEFAULT_RETRY_POLICY });
    return { bytes, where: url };
  } catch (err) {
    // A missing .asc is the publisher's omission, not a network failure: say so.
    if (err instanceof HttpError && (err.status === 404 || err.status === 410)) {
      throw new MissingSignatureError(url, `${err.status} ${err.status === 404 ? 'Not Found' : 'Gone'}`, request.what);
    }
    throw err;
  }
}

/** The fingerprint (or key id) a signature names as its issuer, for messages. */
function issuerOf(signature: openpgp.Signature): string {
  for (const packet of signaturePackets(signature)) {
    if (packet.issuerFingerprint && packet.issuerFingerprint.length > 0) return Buffer.from(packet.issuerFingerprint).toString('hex');
    return `key id ${packet.issuerKeyID.toHex()}`;
  }
  return 'an unknown key';
}

function signaturePackets(signature: openpgp.Signature): openpgp.SignaturePacket[] {
  return [...signature.packets].filter((p): p is openpgp.SignaturePacket => 'issuerKeyID' in p);
}

/**
 * Every key trusted for some image name (root keys and every prefix's keys), as a keystore whose
 * `keysForName` returns them all: what a plain URL's signer must be among before the image name
 * is known.
 */
async function keystoreForAnyName(keystore: Keystore): Promise<{ keystore: Keystore; keys: TrustedKey[] }> {
  // Root keys come with any name; `root` is a valid name that stands for "no particular prefix".
  const names = [...new Set((await keystore.list()).map((k) => k.prefix ?? 'root'))];
  const lists = await Promise.all(names.map((n) => keystore.keysForName(n).catch(() => [] as TrustedKey[])));
  const seen = new Set<string>();
  const keys = lists.flat().filter((k) => (seen.has(k.fingerprint) ? false : (seen.add(k.fingerprint), true)));
  const any = Object.create(keystore) as Keystore;
  any.keysForName = async () => keys;
  return { keystore: any, keys };
}

async function checkSignatureFirst(ctx: FetchContext, net: FetchNetwork, request: EndpointRequest): Promise<SignatureCheck> {
  const verify = await import('../trust/verify.js');
  const { bytes, where } = await readSignatureBytes(net, request);
  const signature = await verify.readSignature(bytes, `signature ${where}`);
  const keystore = await ctx.keystore();
  if (request.expectedName !== undefined) {
    try {
      await verify.checkSigner({ signature, name: request.expectedName, keystore });
    } catch (err) {
      throw refusedBeforeDownload(err, request);
    }
    return { verify, signature, keystore, streamKeystore: keystore, streamName: request.expectedName };
  }
  const any = await keystoreForAnyName(keystore);
  const known = signaturePackets(signature).some((p) => any.keys.some((k) => k.key.getKeys(p.issuerKeyID).length > 0));
  if (!known) {
    throw new TrustError(
      `fetch ${request.what}: signed by untrusted key ${issuerOf(signature)}, which no prefix or root key matches; the image was not downloaded`,
      { suggestions: ['tspod trust --prefix PREFIX-OF-THE-IMAGE-NAME <key file or URL>   (e.g. the domain in the image name)', `or fetch by name: tspod fetch NAME`] },
    );
  }
  try {
    // Key validity (expiry, revocation) now, whatever the name turns out to be.
    await verify.checkSigner({ signature, name: request.what, keystore: any.keystore });
  } catch (err) {
    throw refusedBeforeDownload(err, request);
  }
  return { verify, signature, keystore, streamKeystore: any.keystore, streamName: request.expectedName ?? request.what };
}

function refusedBeforeDownload(err: unknown, request: EndpointRequest): unknown {
  if (!(err instanceof TrustError)) return err;
  const suggestions = [...err.suggestions];
  if (request.expectedName !== undefined && (request.publicKeys?.length ?? 0) > 0) {
    // spec/discovery.md: the same page lists ac-discovery-pubkeys; `tspod trust` reviews them.
    suggestions.unshift(`tspod trust --prefix ${request.expectedName}   (reviews the keys at ${request.publicKeys!.join(', ')})`);
  }
  return new TrustError(`fetch ${request.what}: ${err.message}; the image was not downloaded`, { cause: err, suggestions });
}

interface Readers {
  aci: StreamConsumer<AciReadResult>;
  signature: StreamConsumer<VerifiedSignature> | undefined;
}

async function downloadAndImport(
  ctx: FetchContext,
  net: FetchNetwork,
  request: EndpointRequest,
  check: SignatureCheck | undefined,
  cached: { record: ImageRecord; cache: CacheRecord } | undefined,
): Promise<ImageFetch> {
  const { store } = ctx;
  const aciUrl = request.endpoint.aci;
  const startReaders = (): Readers => ({
    aci: new StreamConsumer((input) =>
      readAci(input, {
        tmpDir: store.layout.tmp,
        validateManifest: (bytes) => parseImageManifest(bytes, `image manifest in ${aciUrl}`),
        what: aciUrl,
      }),
    ),
    // The signature covers the file as transferred (compressed), per spec/aci.md.
    signature:
      check === undefined
        ? undefined
        : new StreamConsumer((data) => check.verify.verifyDetached({ signature: check.signature, data, name: check.streamName, keystore: check.streamKeystore })),
  });
  let readers: Readers | undefined;
  const abandon = async (): Promise<void> => {
    const current = readers;
    readers = undefined;
    await Promise.all([current?.aci.abandon(), current?.signature?.abandon()]);
  };
  let task: ReturnType<NonNullable<FetchContext['progress']>['task']> | undefined;
  const options: DownloadOptions = {
    ...net.http,
    tmpDir: store.layout.tmp,
    sys: store.sys,
    // The image id is the sha512 of the tar readAci unpacks; a hash of the compressed bytes is not needed.
    hashBody: false,
    onData: async (chunk) => {
      readers ??= startReaders();
      await Promise.all([readers.aci.write(chunk), readers.signature?.write(chunk)]);
    },
    // The bytes so far are void (the file changed on the server): both readers start again.
    onRestart: abandon,
    onProgress: (event) => {
      task ??= ctx.progress?.task(request.label ?? request.what);
      task?.update(event);
    },
  };

  // `image gc` empties cas/tmp under the exclusive store lock: hold it shared until the commit.
  const held = await store.lockStore('shared');
  let read: AciReadResult | undefined;
  try {
    let downloaded: DownloadResult;
    let cache: CacheRecord;
    try {
      if (cached !== undefined) {
        const answer = await revalidate(cached.cache, options);
        if (answer.outcome === 'unchanged') {
          await abandon();
          const record = await updateSource(store, cached.record.id, { ...cached.record.source, ...sourceCacheFields(answer.record) });
          return { record: record ?? cached.record, stored: false, signer: cached.record.source.signer, outcome: 'not-modified' };
        }
        downloaded = answer.download;
        cache = answer.record;
      } else {
        downloaded = await download(aciUrl, options);
        cache = recordOfDownload(aciUrl, downloaded, Date.now());
      }
    } catch (err) {
      await abandon();
      task?.fail(err instanceof Error ? err.message : String(err));
      throw err;
    } finally {
      ctx.progress?.finish();
    }
    // The store keeps the uncompressed tar readAci wrote; the downloaded file has served.
    fs.rmSync(downloaded.path, { force: true });
    readers ??= startReaders(); // an empty body never called onData
    const [aci, signature] = await Promise.allSettled([readers.aci.end(), readers.signature?.end()]);
    if (aci.status === 'fulfilled') read = aci.value;
    if (aci.status === 'rejected') throw aci.reason;
    if (signature.status === 'rejected') throw signature.reason;
    const verified = signature.value;

    const { manifest } = read!;
    const where = `fetch ${request.what}`;
    if (request.expectedName !== undefined && manifest.name !== request.expectedName) {
      throw new ImageFormatError(`${where}: the image at ${aciUrl} is named ${manifest.name}, not ${request.expectedName}; refused`, {
        suggestions: [`the publisher's discovery templates point at another image; tell the maintainers of ${request.expectedName}`],
      });
    }
    if (!labelsMatch(request.labels, manifest.labels ?? [])) {
      const missing = request.labels.filter((l) => !labelsMatch([l], manifest.labels ?? []));
      throw new ImageFormatError(
        `${where}: the image at ${aciUrl} (${manifest.name}) does not carry the labels ${formatLabels(missing)}; it has ${formatLabels(manifest.labels ?? [])}; refused`,
      );
    }
    let signer: string | null = null;
    if (check !== undefined && verified !== undefined) {
      signer = verified.signerFingerprint;
      if (request.expectedName === undefined) {
        // The name is known only now: the signer must be trusted for it, not just for some name.
        let trusted: TrustedKey;
        try {
          trusted = await check.verify.checkSigner({ signature: check.signature, name: manifest.name, keystore: check.keystore });
        } catch (err) {
          throw err instanceof TrustError ? new TrustError(`${where}: ${err.message}`, { cause: err, suggestions: err.suggestions }) : err;
        }
        if (trusted.fingerprint !== signer) {
          throw new TrustError(`${where}: the signature that verified is by key ${signer}, which is not trusted for ${manifest.name}`, {
            suggestions: [`tspod trust --prefix ${manifest.name} <key file or URL>`],
          });
        }
      }
    }
    const source: ImageSource = {
      kind: request.kind,
      location: aciUrl,
      signer,
      ...(request.discovery === undefined ? {} : { discovery: request.discovery }),
      ...sourceCacheFields(cache),
    };
    const committed = await store.commitImage({
      id: read!.id,
      tmpTarPath: read!.tmpTarPath,
      size: read!.size,
      manifest,
      manifestBytes: read!.manifestBytes,
      source,
    });
    // An image the store had already (from a file, another URL): its record now says where it
    // was last fetched from, with the validators `--pull-policy=update` asks with.
    const record = committed.stored ? committed.record : ((await updateSource(store, committed.record.id, source)) ?? committed.record);
    return { record, stored: committed.stored, signer, outcome: 'fetched' };
  } finally {
    if (read !== undefined) fs.rmSync(read.tmpTarPath, { force: true });
    held.release();
  }
}
