// Fetching an ACI from a local file: the detached signature `<file>.asc` is read and checked
// against the keystore, the archive is imported in one streaming pass (decompress, hash, validate)
// into the store's tmp area, the signature is verified for the manifest's name, and only then is
// the image committed. Nothing is listed unless everything passed.
import fs from 'node:fs';
import path from 'node:path';

import { labelsMatch } from '../appc/labels.js';
import { parseImageManifest } from '../appc/validate.js';
import { ImageFormatError, NotFoundError, TrustError } from '../errors.js';
import { readAci } from '../image/aci-reader.js';
import type { FetchContext, FetchRequest, ImageFetch } from './context.js';

// The types moved to context.ts with remote fetching; importers of this module keep working.
export type { FetchContext, FetchRequest, FetchResult } from './context.js';

export async function fetchLocalAci(file: string, ctx: FetchContext, request: FetchRequest = {}): Promise<Omit<ImageFetch, 'outcome'>> {
  const what = file;
  if (!fs.existsSync(file)) throw new NotFoundError(`fetch ${what}: no such file`);
  const signaturePath = request.signaturePath ?? `${file}.asc`;
  let signature: Awaited<ReturnType<typeof import('../trust/verify.js').readSignature>> | undefined;
  // openpgp is loaded only when a signature is to be checked.
  const verify = ctx.insecure.image ? undefined : await import('../trust/verify.js');
  if (verify !== undefined) {
    if (!fs.existsSync(signaturePath)) {
      throw new TrustError(`fetch ${what}: no signature at ${signaturePath}`, {
        suggestions: [`sign it: gpg --armor --detach-sign ${file}`, `or skip the check: tspod fetch --insecure-options=image ${file}`],
      });
    }
    signature = await verify.readSignature(fs.readFileSync(signaturePath), `signature ${signaturePath}`);
  }

  const { store } = ctx;
  const storeLock = await store.lockStore('shared');
  try {
    const read = await readAci(fs.createReadStream(file, { highWaterMark: 1 << 20 }), {
      tmpDir: store.layout.tmp,
      validateManifest: (bytes) => parseImageManifest(bytes, `image manifest in ${what}`),
      what,
    });
    try {
      const { manifest } = read;
      if (request.expectedName !== undefined && manifest.name !== request.expectedName) {
        throw new ImageFormatError(`fetch ${what}: image is named ${manifest.name}, expected ${request.expectedName}`);
      }
      if (request.labels !== undefined && !labelsMatch(request.labels, manifest.labels ?? [])) {
        const wanted = request.labels.map((l) => `${l.name}=${l.value}`).join(',');
        throw new ImageFormatError(`fetch ${what}: image ${manifest.name} does not carry the labels ${wanted}`);
      }
      let signer: string | null = null;
      if (signature !== undefined && verify !== undefined) {
        // The signature covers the file as transferred (compressed), per the appc spec.
        const verified = await verify.verifyDetached({
          signature,
          data: fs.createReadStream(file, { highWaterMark: 1 << 20 }),
          name: manifest.name,
          keystore: await ctx.keystore(),
        });
        signer = verified.signerFingerprint;
      } else {
        ctx.onWarning(`image ${manifest.name}: signature not checked (--insecure-options=image)`);
      }
      const committed = await store.commitImage({
        id: read.id,
        tmpTarPath: read.tmpTarPath,
        size: read.size,
        manifest,
        manifestBytes: read.manifestBytes,
        source: { kind: 'file', location: path.resolve(file), signer },
      });
      return { ...committed, signer };
    } finally {
      fs.rmSync(read.tmpTarPath, { force: true });
    }
  } finally {
    storeLock.release();
  }
}
