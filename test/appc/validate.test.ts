import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import {
  packageRoot,
  parseImageManifest,
  parsePodManifest,
  schemaCompileCount,
  schemasDir,
  validateImageManifest,
  validatePodManifest,
} from '../../src/appc/index.js';
import { ValidationError } from '../../src/errors.js';

const ID = `sha512-${createHash('sha512').update('x').digest('hex')}`;
const minimal = { acKind: 'ImageManifest', acVersion: '0.8.11', name: 'example.com/app' };

function caught(f: () => unknown): ValidationError {
  try {
    f();
  } catch (err) {
    if (err instanceof ValidationError) return err;
    throw err;
  }
  throw new Error('expected a ValidationError');
}

describe('schema location', () => {
  it('finds the package root by walking up to package.json, and schemas/ beside it', () => {
    expect(existsSync(join(packageRoot(), 'package.json'))).toBe(true);
    expect(existsSync(join(schemasDir(), 'image-manifest.json'))).toBe(true);
  });
});

describe('error format', () => {
  it('reports "<what>: <pointer>: <rule>" with the caller-chosen subject (exec ["bin/app"])', () => {
    const err = caught(() => validateImageManifest({ ...minimal, app: { user: '0', group: '0', exec: ['bin/app'] } }, 'manifest of ./x.aci'));
    expect(err.message).toMatch(/^manifest of \.\/x\.aci: \/app\/exec\/0: must be an absolute path/);
    expect(err.problems).toHaveLength(1);
  });
  it('reports every schema problem at once (bad name and bad acVersion)', () => {
    const err = caught(() => validateImageManifest({ ...minimal, name: 'Bad', acVersion: 'one' }));
    expect(err.problems.map((p) => p.split(':')[0])).toEqual(['/acVersion', '/name']);
  });
  it('uses "/" as the pointer of the document itself (a JSON array)', () => {
    expect(caught(() => validateImageManifest([])).problems).toEqual(['/: must be object']);
  });
  it('escapes "/" and "~" in pointers of map keys (userAnnotations "a/b~c": 1)', () => {
    const err = caught(() => validateImageManifest({ ...minimal, app: { user: '0', group: '0', userAnnotations: { 'a/b~c': 1 } } }));
    expect(err.problems).toEqual(['/app/userAnnotations/a~1b~0c: must be string']);
  });
});

describe('parseImageManifest', () => {
  it('parses bytes', () => {
    expect(parseImageManifest(new TextEncoder().encode(JSON.stringify(minimal)))).toEqual(minimal);
  });
  it('rejects truncated JSON ("{\\"acKind\\":") with a clear problem', () => {
    const err = caught(() => parseImageManifest('{"acKind":'));
    expect(err.message).toMatch(/^image manifest: \/: is not valid json \(/);
  });
  it('rejects bytes that are not utf-8 (0xff)', () => {
    expect(caught(() => parseImageManifest(new Uint8Array([0xff, 0x7b]))).problems).toEqual(['/: is not valid utf-8']);
  });
  it('parsePodManifest rejects an image manifest (acKind "ImageManifest")', () => {
    expect(caught(() => parsePodManifest(JSON.stringify(minimal))).problems).toContain('/acKind: must be "PodManifest"');
  });
});

describe('interop normalisation (Go encoding/json semantics)', () => {
  it('matches known keys case-insensitively and returns canonical spellings (ACKIND, App.Exec)', () => {
    const m = validateImageManifest({ ACKIND: 'ImageManifest', ACVersion: '0.8.11', Name: 'example.com/app', App: { Exec: ['/bin/sh'], USER: '0', group: '0' } });
    expect(m).toEqual({ ...minimal, app: { exec: ['/bin/sh'], user: '0', group: '0' } });
  });
  it('accepts supplementaryGids as supplementaryGIDs', () => {
    const m = validateImageManifest({ ...minimal, app: { user: '0', group: '0', supplementaryGids: [4, 5] } });
    expect(m.app?.supplementaryGIDs).toEqual([4, 5]);
    expect(m.app).not.toHaveProperty('supplementaryGids');
  });
  it('normalises keys inside known isolator values ({"Set": [...]}) but not map keys (userLabels, sysctl)', () => {
    const m = validateImageManifest({
      ...minimal,
      app: {
        user: '0',
        group: '0',
        userLabels: { Tier: 'web' },
        isolators: [
          { name: 'os/linux/capabilities-retain-set', Value: { SET: ['CAP_KILL'] } },
          { name: 'os/unix/sysctl', value: { 'Net.Core.X': '1' } },
        ],
      },
    });
    expect(m.app?.isolators).toEqual([
      { name: 'os/linux/capabilities-retain-set', value: { set: ['CAP_KILL'] } },
      { name: 'os/unix/sysctl', value: { 'Net.Core.X': '1' } },
    ]);
    expect(m.app?.userLabels).toEqual({ Tier: 'web' });
  });
  it('lets the later of two spellings win, as Go does ("name" then "NAME")', () => {
    expect(validateImageManifest({ ...minimal, NAME: 'example.com/other' }).name).toBe('example.com/other');
  });
  it('treats a null known field as absent ("volumes": null, as rkt writes)', () => {
    const m = validatePodManifest({ acKind: 'PodManifest', acVersion: '0.8.11', apps: [{ name: 'a', image: { id: ID } }], volumes: null });
    expect(m).not.toHaveProperty('volumes');
  });
  it('keeps unknown keys and does not modify its input', () => {
    const input = { ...minimal, Labels: [{ name: 'os', value: 'linux' }], 'x-vendor': { a: 1 } };
    const copy = structuredClone(input);
    const m = validateImageManifest(input);
    expect(input).toEqual(copy);
    expect(m).toEqual({ ...minimal, labels: [{ name: 'os', value: 'linux' }], 'x-vendor': { a: 1 } });
  });
  it('keeps a "__proto__" key as data, never as a prototype', () => {
    const m = validateImageManifest(JSON.parse('{"acKind":"ImageManifest","acVersion":"0.8.11","name":"a","__proto__":{"polluted":true}}')) as unknown as Record<string, unknown>;
    expect(Object.getPrototypeOf(m)).toBe(Object.prototype);
    expect(m['polluted']).toBeUndefined();
  });
});

describe('rules beyond the schema', () => {
  it('rejects acVersion 0.0.0 ("semver cannot be zero") but accepts 0.0.0-alpha', () => {
    expect(() => validateImageManifest({ ...minimal, acVersion: '0.0.0-alpha' })).not.toThrow();
    expect(caught(() => validateImageManifest({ ...minimal, acVersion: '0.0.0' })).problems).toEqual(['/acVersion: must not be 0.0.0']);
  });
  it('accepts unknown isolators at pod level but not inside a pod app', () => {
    const app = { name: 'a', image: { id: ID } };
    const iso = { name: 'vendor.com/thing', value: {} };
    expect(() => validatePodManifest({ acKind: 'PodManifest', acVersion: '0.8.11', apps: [app], isolators: [iso] })).not.toThrow();
    const err = caught(() =>
      validatePodManifest({ acKind: 'PodManifest', acVersion: '0.8.11', apps: [{ ...app, app: { user: '0', group: '0', isolators: [iso] } }] }),
    );
    expect(err.problems[0]).toMatch(/^\/apps\/0\/app\/isolators\/0\/name: unknown isolator "vendor.com\/thing"/);
  });
  it('accepts port 65535 with count 1 and rejects count 2 (range past 65535)', () => {
    const withPort = (count: number) => ({ ...minimal, app: { user: '0', group: '0', ports: [{ name: 'p', protocol: 'tcp', port: 65535, count }] } });
    expect(() => validateImageManifest(withPort(1))).not.toThrow();
    expect(caught(() => validateImageManifest(withPort(2))).problems).toEqual(['/app/ports/0/count: port range 65535+2 ends past 65535']);
  });
});

describe('validators compile once', () => {
  it('compiles each schema once however many manifests it validates (10,000 image manifests)', () => {
    validateImageManifest(minimal);
    validatePodManifest({ acKind: 'PodManifest', acVersion: '0.8.11', apps: [] });
    const before = schemaCompileCount();
    expect(before).toBeGreaterThanOrEqual(2);
    const doc = {
      ...minimal,
      labels: [{ name: 'os', value: 'linux' }, { name: 'arch', value: 'amd64' }],
      app: { exec: ['/bin/app'], user: '0', group: '0', isolators: [{ name: 'resource/memory', value: { limit: '1Gi' } }] },
    };
    const start = performance.now();
    for (let i = 0; i < 10_000; i++) validateImageManifest(doc);
    const elapsed = performance.now() - start;
    expect(schemaCompileCount()).toBe(before);
    // Generous bound: compiling per call would take minutes; validating takes ~100 ms here.
    expect(elapsed).toBeLessThan(5_000);
  });
});
