import { createHash } from 'node:crypto';

import { describe, expect, it } from 'vitest';

import { validateDocument } from '../../src/appc/index.js';
import { ValidationError } from '../../src/errors.js';

const ID = `sha512-${createHash('sha512').update('img').digest('hex')}`;
const FPR = 'bff313cdaa560b16a8987b8f72abf5f6799d33bc';

const record = {
  id: ID,
  name: 'example.com/app',
  labels: [{ name: 'version', value: '1.0.0' }],
  importTime: '2024-05-01T10:00:00Z',
  lastUsed: '2024-05-02T10:00:00.5+02:00',
  size: 10240,
  source: { kind: 'https', location: 'https://example.com/app-1.0.0.aci', signer: FPR },
};

function problems(f: () => void): string[] {
  try {
    f();
  } catch (err) {
    if (err instanceof ValidationError) return err.problems;
    throw err;
  }
  return [];
}

describe('image-record schema', () => {
  it('accepts a signed https record and an unsigned file record', () => {
    expect(() => validateDocument('image-record', record, 'image record')).not.toThrow();
    const local = { ...record, source: { kind: 'file', location: '/tmp/app.aci', signer: null } };
    expect(() => validateDocument('image-record', local, 'image record')).not.toThrow();
  });
  it('rejects a short id, a negative size, an ftp source and an uppercase signer', () => {
    const bad = { ...record, id: 'sha512-abc', size: -1, source: { kind: 'ftp', location: 'x', signer: FPR.toUpperCase() } };
    const p = problems(() => validateDocument('image-record', bad, 'image record'));
    expect(p).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^\/id: must be a full image id/),
        expect.stringMatching(/^\/size: must be a non-negative integer/),
        expect.stringMatching(/^\/source\/kind: must be one of/),
        expect.stringMatching(/^\/source\/signer: must be null or a 40-digit lowercase hex/),
      ]),
    );
  });
  it('accepts an OCI source with its manifest digest, and rejects a malformed one', () => {
    const oci = { ...record, source: { kind: 'docker', location: 'docker://r/x:1', signer: null, digest: `sha256:${'b'.repeat(64)}` } };
    expect(() => validateDocument('image-record', oci, 'image record')).not.toThrow();
    expect(problems(() => validateDocument('image-record', { ...oci, source: { ...oci.source, digest: 'b'.repeat(64) } }, 'r'))).toEqual([
      '/source/digest: must be the OCI manifest digest, sha256:<64 hex> or sha512:<128 hex>',
    ]);
  });
  it('rejects a record missing lastUsed, naming the document in the message', () => {
    const { lastUsed: _drop, ...bad } = record;
    expect(() => validateDocument('image-record', bad, 'catalog record x')).toThrow(/^catalog record x: \/: missing required property "lastUsed"/);
  });
  it('rejects importTime without a time zone (2024-05-01T10:00:00)', () => {
    expect(problems(() => validateDocument('image-record', { ...record, importTime: '2024-05-01T10:00:00' }, 'r'))).toEqual([
      '/importTime: must be an rfc 3339 timestamp such as "2016-01-02T15:04:05Z"',
    ]);
  });
});

describe('image-list schema', () => {
  const entry = { id: ID, name: 'example.com/app', labels: [], importTime: record.importTime, lastUsed: record.lastUsed, size: 1, signer: null, ociDigest: null };
  it('accepts an empty list and a list of entries', () => {
    expect(() => validateDocument('image-list', [], 'image list')).not.toThrow();
    expect(() => validateDocument('image-list', [entry, { ...entry, signer: FPR }, { ...entry, ociDigest: `sha256:${'a'.repeat(64)}` }], 'image list')).not.toThrow();
  });
  it('requires ociDigest, null or a digest', () => {
    const { ociDigest: _, ...without } = entry;
    expect(problems(() => validateDocument('image-list', [without], 'image list'))).toEqual(['/0: missing required property "ociDigest"']);
    expect(problems(() => validateDocument('image-list', [{ ...entry, ociDigest: 'sha256:abc' }], 'image list'))).toEqual([
      '/0/ociDigest: must be null (an appc image) or the digest of the OCI manifest the image was converted from',
    ]);
  });
  it('rejects an object instead of an array, and an entry with a string size', () => {
    expect(problems(() => validateDocument('image-list', { images: [] }, 'image list'))).toEqual(['/: must be array']);
    expect(problems(() => validateDocument('image-list', [{ ...entry, size: '1' }], 'image list'))).toEqual(['/0/size: must be integer']);
  });
});

describe('trust-list schema', () => {
  const root = {
    fingerprint: FPR,
    scope: 'root',
    prefix: null,
    layer: 'system',
    path: '/usr/lib/tspod/trustedkeys/root.d/' + FPR,
    userIds: ['Example Signer <signer@example.com>'],
    created: '2020-01-01T00:00:00Z',
    expires: null,
  };
  const prefixed = { ...root, scope: 'prefix', prefix: 'example.com/app', layer: 'local', expires: '2030-01-01T00:00:00Z' };
  it('accepts a root key and a prefix key', () => {
    expect(() => validateDocument('trust-list', [root, prefixed], 'trust list')).not.toThrow();
  });
  it('rejects a prefix key without a prefix (prefix: null)', () => {
    expect(problems(() => validateDocument('trust-list', [{ ...prefixed, prefix: null }], 'trust list'))).toEqual(['/0/prefix: must be string']);
  });
  it('rejects a 16-digit key id as fingerprint and layer "user"', () => {
    const p = problems(() => validateDocument('trust-list', [{ ...root, fingerprint: FPR.slice(-16), layer: 'user' }], 'trust list'));
    expect(p).toEqual(['/0/fingerprint: must be a 40-digit lowercase hex openpgp fingerprint', '/0/layer: must be "system" or "local"']);
  });
});
