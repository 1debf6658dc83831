// The one rule for what an image reference names (src/fetch/reference.ts), shared by fetch, run
// and prepare: the spelling decides, never whether a file of that name happens to exist.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { classifyImageRef, isImageFileRef } from '../../src/fetch/reference.js';

describe('classifyImageRef', () => {
  it.each([
    ['./app.aci', { kind: 'file', path: './app.aci' }],
    ['../images/app', { kind: 'file', path: '../images/app' }],
    ['/srv/images/app', { kind: 'file', path: '/srv/images/app' }],
    ['app.aci', { kind: 'file', path: 'app.aci' }],
    ['images/app.aci', { kind: 'file', path: 'images/app.aci' }],
    ['file:///srv/my%20images/app.aci', { kind: 'file', path: '/srv/my images/app.aci' }],
    ['https://example.com/app.aci', { kind: 'url', url: 'https://example.com/app.aci', scheme: 'https' }],
    ['HTTP://example.com/app.aci', { kind: 'url', url: 'HTTP://example.com/app.aci', scheme: 'http' }],
    ['docker://busybox', { kind: 'oci', scheme: 'docker', ref: 'docker://busybox' }],
    ['oci:./layout:latest', { kind: 'oci', scheme: 'oci', ref: 'oci:./layout:latest' }],
    ['oci-archive:./img.tar', { kind: 'oci', scheme: 'oci-archive', ref: 'oci-archive:./img.tar' }],
    ['docker-archive:./img.tar', { kind: 'oci', scheme: 'docker-archive', ref: 'docker-archive:./img.tar' }],
    ['ftp://example.com/app.aci', { kind: 'unsupported', scheme: 'ftp' }],
    ['sha512-0123abcd', { kind: 'id', id: 'sha512-0123abcd' }],
    ['example.com/app', { kind: 'name', name: 'example.com/app' }],
    ['example.com/app:1.0', { kind: 'name', name: 'example.com/app:1.0' }],
    ['example.com/app:1.0,os=linux,arch=amd64', { kind: 'name', name: 'example.com/app:1.0,os=linux,arch=amd64' }],
    ['app', { kind: 'name', name: 'app' }],
  ])('%s', (ref, expected) => {
    expect(classifyImageRef(ref)).toEqual(expected);
  });
});

describe('a bare word that exists as a file in the working directory', () => {
  let dir: string;
  let cwd: string;
  beforeAll(() => {
    cwd = process.cwd();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tspod-ref-'));
    fs.mkdirSync(path.join(dir, 'example.com'));
    fs.writeFileSync(path.join(dir, 'example.com', 'app'), 'not an image');
    fs.writeFileSync(path.join(dir, 'app'), 'not an image');
    process.chdir(dir);
  });
  afterAll(() => {
    process.chdir(cwd);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('is still a name (write ./app for the file); run, prepare and fetch agree', () => {
    for (const ref of ['app', 'example.com/app']) {
      expect(fs.existsSync(ref)).toBe(true);
      expect(classifyImageRef(ref).kind).toBe('name');
      expect(isImageFileRef(ref)).toBe(false);
    }
    expect(isImageFileRef('./app')).toBe(true);
    expect(isImageFileRef('./example.com/app')).toBe(true);
  });
});
