// The per-pod metadata service over a real HTTP server on 127.0.0.1 (real requests with
// node:http, raw headers compared exactly), plus the pure router for the cases HTTP clients
// cannot easily send. Endpoints and content types: appc spec/ace.md; extras: rkt's MDS.
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { ImageManifest, PodManifest } from '../../src/appc/types.js';
import { STAGE1_FILES } from '../../stage1/contract.js';
import {
  CONTENT_TYPE_JSON,
  CONTENT_TYPE_TEXT,
  handleMetadataRequest,
  MDS_HMAC_KEY_BYTES,
  MetadataServiceError,
  metadataState,
  parseForm,
  readHmacKeyFile,
  signContent,
  startMetadataService,
  startPodMetadataService,
  type MetadataService,
} from '../../stage1/mds.js';
import { scratchDirs } from '../support/scratch.js';

const UUID = '6d3f2c4a-1b2e-4c5d-8e9f-0a1b2c3d4e5f';
const WEB_ID = `sha512-${'a'.repeat(128)}`;
const SIDE_ID = `sha512-${'b'.repeat(128)}`;

const webImage: ImageManifest = {
  acKind: 'ImageManifest',
  acVersion: '0.8.11',
  name: 'example.com/web',
  labels: [{ name: 'version', value: '1.0.0' }],
  app: { exec: ['/bin/web'], user: '0', group: '0' },
  annotations: [
    { name: 'authors', value: 'image authors' },
    { name: 'example.com/tier', value: 'image-tier' },
    { name: 'homepage', value: 'https://example.com' },
  ],
};
const sideImage: ImageManifest = { acKind: 'ImageManifest', acVersion: '0.8.11', name: 'example.com/side' };

const podManifest: PodManifest = {
  acKind: 'PodManifest',
  acVersion: '0.8.11',
  apps: [
    {
      name: 'web',
      image: { id: WEB_ID, name: 'example.com/web' },
      annotations: [
        { name: 'example.com/tier', value: 'pod-tier' },
        { name: 'pod-only', value: 'from the pod' },
      ],
    },
    { name: 'side', image: { id: SIDE_ID, name: 'example.com/side' } },
  ],
  annotations: [
    { name: 'created-by', value: 'tspod tests' },
    { name: 'example.com/owner', value: 'team-a' },
  ],
};
const imageManifests = { web: webImage, side: sideImage };

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** One real HTTP request; the body of a POST is sent as given (a form unless `contentType` says otherwise). */
function request(url: string, method: string, body?: string, contentType = 'application/x-www-form-urlencoded'): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers: body === undefined ? {} : { 'Content-Type': contentType, 'Content-Length': Buffer.byteLength(body) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

const form = (fields: Record<string, string>) => new URLSearchParams(fields).toString();

describe('the metadata service over HTTP on 127.0.0.1', () => {
  const key = crypto.randomBytes(MDS_HMAC_KEY_BYTES);
  const otherUuid = crypto.randomUUID();
  const otherKey = crypto.randomBytes(MDS_HMAC_KEY_BYTES);
  let mds: MetadataService;
  const get = (p: string) => request(`${mds.url}/acMetadata/v1${p}`, 'GET');
  const post = (p: string, body: string, contentType?: string) => request(`${mds.url}/acMetadata/v1${p}`, 'POST', body, contentType);

  beforeAll(async () => {
    mds = await startMetadataService({
      uuid: UUID,
      podManifest,
      imageManifests,
      hmacKey: key,
      lookupKey: (u) => (u === otherUuid ? otherKey : undefined),
    });
  });
  afterAll(() => mds?.close());

  it('listens on 127.0.0.1 with an ephemeral port; the URL ends with a 128-bit hex token', () => {
    expect(mds.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/[0-9a-f]{32}$/);
    expect(mds.url.endsWith(`/${mds.token}`)).toBe(true);
  });

  it.each([
    ['/pod/annotations', CONTENT_TYPE_JSON, podManifest.annotations],
    ['/pod/manifest', CONTENT_TYPE_JSON, podManifest],
    ['/apps/web/image/manifest', CONTENT_TYPE_JSON, webImage],
    ['/apps/side/image/manifest', CONTENT_TYPE_JSON, sideImage],
    ['/apps/side/annotations', CONTENT_TYPE_JSON, []],
  ])('GET %s answers 200, Content-Type exactly %s, the document', async (p, contentType, expected) => {
    const reply = await get(p);
    expect(reply.status).toBe(200);
    expect(reply.headers['content-type']).toBe(contentType);
    expect(JSON.parse(reply.body)).toEqual(expected);
  });

  it('GET /apps/web/annotations: image annotations with the pod app annotations merged over them, the pod winning', async () => {
    const reply = await get('/apps/web/annotations');
    expect(reply.status).toBe(200);
    expect(reply.headers['content-type']).toBe('application/json');
    expect(JSON.parse(reply.body)).toEqual([
      { name: 'authors', value: 'image authors' },
      { name: 'example.com/tier', value: 'pod-tier' },
      { name: 'homepage', value: 'https://example.com' },
      { name: 'pod-only', value: 'from the pod' },
    ]);
  });

  it.each([
    ['/pod/uuid', UUID],
    ['/apps/web/image/id', WEB_ID],
    ['/apps/side/image/id', SIDE_ID],
    ['/pod/annotations/created-by', 'tspod tests'],
    ['/pod/annotations/example.com/owner', 'team-a'],
    ['/apps/web/annotations/example.com/tier', 'pod-tier'],
    ['/apps/web/annotations/authors', 'image authors'],
    ['/apps/web/annotations/pod-only', 'from the pod'],
  ])('GET %s answers 200, Content-Type exactly text/plain; charset=us-ascii, %s', async (p, expected) => {
    const reply = await get(p);
    expect(reply.status).toBe(200);
    expect(reply.headers['content-type']).toBe('text/plain; charset=us-ascii');
    expect(reply.body).toBe(expected);
  });

  it.each([
    ['a wrong token of the same length', (url: string) => url.replace(/[0-9a-f]{32}$/, '0'.repeat(32))],
    ['a shorter token', (url: string) => url.replace(/[0-9a-f]{32}$/, 'abc')],
    ['an empty token', (url: string) => url.replace(/[0-9a-f]{32}$/, '')],
  ])('401 for %s, on every endpoint', async (_what, spoil) => {
    for (const p of ['/pod/uuid', '/pod/manifest', '/apps/web/image/id', '/no/such/endpoint']) {
      const reply = await request(`${spoil(mds.url)}/acMetadata/v1${p}`, 'GET');
      expect(reply.status, p).toBe(401);
      expect(reply.headers['content-type']).toBe(CONTENT_TYPE_TEXT);
      expect(reply.body).not.toContain(UUID);
    }
    const signed = await request(`${spoil(mds.url)}/acMetadata/v1/pod/hmac/sign`, 'POST', form({ content: 'x' }));
    expect(signed.status).toBe(401);
  });

  it.each([
    ['an unknown app', '/apps/nope/image/id'],
    ['an unknown app (annotations)', '/apps/nope/annotations'],
    ['an unknown pod annotation', '/pod/annotations/missing'],
    ['an unknown app annotation', '/apps/web/annotations/missing'],
    ['an unknown endpoint', '/pod/nothing'],
    ['a path outside /acMetadata/v1', '/../v2/pod/uuid'],
  ])('404 for %s', async (_what, p) => {
    const reply = await get(p);
    expect(reply.status).toBe(404);
    expect(reply.headers['content-type']).toBe(CONTENT_TYPE_TEXT);
  });

  it('400 for an annotation name that is not an AC identifier', async () => {
    const reply = await get('/pod/annotations/Not_An_Identifier');
    expect(reply.status).toBe(400);
    expect(reply.body).toMatch(/not an ac identifier/i);
  });

  it.each([
    ['GET', '/pod/hmac/sign', 'POST'],
    ['GET', '/pod/hmac/verify', 'POST'],
    ['POST', '/pod/manifest', 'GET'],
    ['PUT', '/pod/uuid', 'GET'],
    ['DELETE', '/apps/web/image/id', 'GET'],
  ])('405 for %s %s, with Allow: %s', async (method, p, allow) => {
    const reply = await request(`${mds.url}/acMetadata/v1${p}`, method, method === 'GET' ? undefined : form({ content: 'x' }));
    expect(reply.status).toBe(405);
    expect(reply.headers.allow).toBe(allow);
    expect(reply.headers['content-type']).toBe(CONTENT_TYPE_TEXT);
  });

  it('sign answers padded standard base64 of HMAC-SHA512(key, uuid bytes + content); verify accepts it (200)', async () => {
    const content = 'Old MacDonald Had A Farm';
    const signed = await post('/pod/hmac/sign', form({ content }));
    expect(signed.status).toBe(200);
    expect(signed.headers['content-type']).toBe('text/plain; charset=us-ascii');
    // 64 bytes -> 88 characters with "==" padding.
    expect(signed.body).toMatch(/^[A-Za-z0-9+/]{86}==$/);
    const expected = crypto.createHmac('sha512', key).update(Buffer.from(UUID.replace(/-/g, ''), 'hex')).update(content).digest('base64');
    expect(signed.body).toBe(expected);
    const verified = await post('/pod/hmac/verify', form({ content, uuid: UUID, signature: signed.body }));
    expect(verified.status).toBe(200);
    expect(verified.headers['content-type']).toBe(CONTENT_TYPE_TEXT);
  });

  it('a forged signature (one byte changed) is refused with 403; so is the right signature for other content', async () => {
    const content = 'identity document';
    const signature = (await post('/pod/hmac/sign', form({ content }))).body;
    const bytes = Buffer.from(signature, 'base64');
    bytes[10] = bytes[10]! ^ 0x01;
    const forged = await post('/pod/hmac/verify', form({ content, uuid: UUID, signature: bytes.toString('base64') }));
    expect(forged.status).toBe(403);
    expect(forged.headers['content-type']).toBe(CONTENT_TYPE_TEXT);
    const truncated = await post('/pod/hmac/verify', form({ content, uuid: UUID, signature: bytes.subarray(0, 32).toString('base64') }));
    expect(truncated.status).toBe(403);
    const otherContent = await post('/pod/hmac/verify', form({ content: `${content}!`, uuid: UUID, signature }));
    expect(otherContent.status).toBe(403);
  });

  it('verify with the uuid of a pod that did not register is 403; with a registered pod it uses that pod key', async () => {
    const content = 'hello';
    const signature = (await post('/pod/hmac/sign', form({ content }))).body;
    const stranger = await post('/pod/hmac/verify', form({ content, uuid: crypto.randomUUID(), signature }));
    expect(stranger.status).toBe(403);
    expect(stranger.body).toMatch(/not registered/);
    // This pod's signature is not the other pod's.
    expect((await post('/pod/hmac/verify', form({ content, uuid: otherUuid, signature }))).status).toBe(403);
    const fromOther = signContent(otherKey, otherUuid, Buffer.from(content));
    expect((await post('/pod/hmac/verify', form({ content, uuid: otherUuid, signature: fromOther }))).status).toBe(200);
    // The uuid may come in upper case or without dashes (rkt: types.NewUUID).
    expect((await post('/pod/hmac/verify', form({ content, uuid: UUID.toUpperCase().replace(/-/g, ''), signature }))).status).toBe(200);
  });

  it('signs and verifies content that is not UTF-8 (percent-encoded bytes are signed as bytes)', async () => {
    const raw = 'content=%FF%00%FEbin';
    const signature = (await post('/pod/hmac/sign', raw)).body;
    expect(signature).toBe(signContent(key, UUID, Buffer.from([0xff, 0x00, 0xfe, 0x62, 0x69, 0x6e])));
    const body = `${raw}&uuid=${UUID}&signature=${encodeURIComponent(signature)}`;
    expect((await post('/pod/hmac/verify', body)).status).toBe(200);
  });

  it.each([
    ['sign without content', '/pod/hmac/sign', 'other=1'],
    ['sign with empty content', '/pod/hmac/sign', 'content='],
    ['sign with a bad percent escape', '/pod/hmac/sign', 'content=%zz'],
    ['verify with a truncated percent escape', '/pod/hmac/verify', `content=a&uuid=${UUID}&signature=%4`],
    ['verify without uuid', '/pod/hmac/verify', 'content=a&signature=AAAA'],
    ['verify with a malformed uuid', '/pod/hmac/verify', 'content=a&uuid=not-a-uuid&signature=AAAA'],
    ['verify without content', '/pod/hmac/verify', `uuid=${UUID}&signature=AAAA`],
    ['verify without signature', '/pod/hmac/verify', `content=a&uuid=${UUID}`],
    ['verify with a signature that is not base64', '/pod/hmac/verify', `content=a&uuid=${UUID}&signature=***`],
    ['verify with an unpadded signature', '/pod/hmac/verify', `content=a&uuid=${UUID}&signature=AAA`],
    // An unencoded "+" in the form is a space: not base64.
    ['verify with an unencoded + in the signature', '/pod/hmac/verify', `content=a&uuid=${UUID}&signature=AA+A`],
  ])('400 for %s', async (_what, p, body) => {
    const reply = await post(p, body);
    expect(reply.status).toBe(400);
    expect(reply.headers['content-type']).toBe(CONTENT_TYPE_TEXT);
  });

  it('400 for a POST body that is not a form (application/json)', async () => {
    const reply = await post('/pod/hmac/sign', JSON.stringify({ content: 'x' }), 'application/json');
    expect(reply.status).toBe(400);
    expect(reply.body).toMatch(/application\/x-www-form-urlencoded/);
  });

  it('close() stops listening and ends keep-alive connections', async () => {
    const other = await startMetadataService({ uuid: UUID, podManifest, imageManifests, hmacKey: key });
    const agent = new http.Agent({ keepAlive: true });
    await new Promise<void>((resolve) => http.get(`${other.url}/acMetadata/v1/pod/uuid`, { agent }, (res) => res.resume().on('end', resolve)));
    const started = Date.now();
    await other.close();
    // Not held open by the idle keep-alive connection (keepAliveTimeout is 5 s).
    expect(Date.now() - started).toBeLessThan(2_000);
    await expect(request(`${other.url}/acMetadata/v1/pod/uuid`, 'GET')).rejects.toThrow(/ECONNREFUSED/);
    agent.destroy();
  });
});

describe('pod registration: key files and verification across pods', () => {
  const scratch = scratchDirs('mds');
  afterAll(() => scratch.cleanup());

  it('each registered pod writes a 0600 32-byte key; a pod verifies a sibling pod signature, not after its key is gone', async () => {
    const runDir = scratch.freshDir();
    const [uuidA, uuidB] = [crypto.randomUUID(), crypto.randomUUID()];
    const podA = path.join(runDir, uuidA);
    const podB = path.join(runDir, uuidB);
    fs.mkdirSync(podA);
    fs.mkdirSync(podB);
    const apps = { web: { imageManifest: webImage }, side: { imageManifest: sideImage } };
    const a = await startPodMetadataService({ podDir: podA, uuid: uuidA, podManifest, apps });
    const b = await startPodMetadataService({ podDir: podB, uuid: uuidB, podManifest, apps });
    try {
      const keyFile = path.join(podA, STAGE1_FILES.mdsHmacKey);
      const stat = fs.statSync(keyFile);
      expect(stat.mode & 0o777).toBe(0o600);
      expect(stat.size).toBe(32);
      expect(fs.readdirSync(podA)).toEqual(['mds-hmac-key']);
      // Each pod has its own token and key.
      expect(a.token).not.toBe(b.token);
      expect(readHmacKeyFile(podA)).not.toEqual(readHmacKeyFile(podB));

      const content = 'pod a says hi';
      const signature = (await request(`${a.url}/acMetadata/v1/pod/hmac/sign`, 'POST', form({ content }))).body;
      const verifyAtB = () => request(`${b.url}/acMetadata/v1/pod/hmac/verify`, 'POST', form({ content, uuid: uuidA, signature }));
      expect((await verifyAtB()).status).toBe(200);
      // Pod B's token does not open pod A's service.
      expect((await request(`${a.url.replace(a.token, b.token)}/acMetadata/v1/pod/uuid`, 'GET')).status).toBe(401);
      // Once pod A has left pods/run (gc), its signatures no longer verify.
      fs.renameSync(podA, path.join(runDir, '..', `gone-${uuidA}`));
      expect((await verifyAtB()).status).toBe(403);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('a key file of the wrong size, or a symlink, is not a key', () => {
    const dir = scratch.freshDir();
    fs.writeFileSync(path.join(dir, STAGE1_FILES.mdsHmacKey), Buffer.alloc(31));
    expect(readHmacKeyFile(dir)).toBeUndefined();
    fs.writeFileSync(path.join(dir, STAGE1_FILES.mdsHmacKey), Buffer.alloc(33));
    expect(readHmacKeyFile(dir)).toBeUndefined();
    const real = path.join(dir, 'real-key');
    fs.writeFileSync(real, Buffer.alloc(32, 7));
    fs.rmSync(path.join(dir, STAGE1_FILES.mdsHmacKey));
    fs.symlinkSync(real, path.join(dir, STAGE1_FILES.mdsHmacKey));
    expect(readHmacKeyFile(dir)).toBeUndefined();
    expect(readHmacKeyFile(path.join(dir, 'missing'))).toBeUndefined();
  });
});

describe('handleMetadataRequest (pure)', () => {
  const state = metadataState({ uuid: UUID, podManifest, imageManifests, hmacKey: Buffer.alloc(32, 1), token: 't0ken' });

  it('routes on the raw target: a query string is ignored, percent-encoded names are decoded', () => {
    expect(handleMetadataRequest(state, { method: 'GET', target: '/t0ken/acMetadata/v1/pod/uuid?x=1' })).toMatchObject({ status: 200, body: UUID });
    expect(handleMetadataRequest(state, { method: 'GET', target: '/t0ken/acMetadata/v1/pod/annotations/example.com%2Fowner' })).toMatchObject({
      status: 200,
      body: 'team-a',
    });
    expect(handleMetadataRequest(state, { method: 'GET', target: '/t0ken/acMetadata/v1/pod/annotations/%E0%A4%A' }).status).toBe(400);
  });

  it('a target outside /<token>/acMetadata/v1 is 404 before the token is looked at', () => {
    expect(handleMetadataRequest(state, { method: 'GET', target: '/acMetadata/v1/pod/uuid' }).status).toBe(404);
    expect(handleMetadataRequest(state, { method: 'GET', target: '/wrong/elsewhere' }).status).toBe(404);
  });

  it('the form parser keeps the first of repeated fields and decodes + as a space', () => {
    const fields = parseForm(Buffer.from('content=a+b%2B&content=second&empty&uuid='));
    expect(fields.get('content')?.toString()).toBe('a b+');
    expect(fields.get('empty')?.length).toBe(0);
    expect(fields.get('uuid')?.length).toBe(0);
  });

  it('refuses a state without an image manifest for every app, or with a key of the wrong size', () => {
    expect(() => metadataState({ uuid: UUID, podManifest, imageManifests: { web: webImage }, hmacKey: Buffer.alloc(32) })).toThrow(MetadataServiceError);
    expect(() => metadataState({ uuid: UUID, podManifest, imageManifests: { web: webImage }, hmacKey: Buffer.alloc(32) })).toThrow(/no image manifest for app side/);
    expect(() => metadataState({ uuid: UUID, podManifest, imageManifests, hmacKey: Buffer.alloc(16) })).toThrow(/16 bytes, not 32/);
    expect(() => metadataState({ uuid: 'nope', podManifest, imageManifests, hmacKey: Buffer.alloc(32) })).toThrow(/not a uuid/i);
  });
});
