// ac-discovery meta tags read from real-world-shaped pages (fixtures/discovery/*.html).
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { describe, expect, it } from 'vitest';

import { matchingTags, parseDiscoveryMeta } from '../../src/discovery/meta.js';

const fixtures = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../fixtures/discovery');
const page = (name: string): Uint8Array => fs.readFileSync(path.join(fixtures, name));

const DL = 'https://dl.example.test';

describe('parseDiscoveryMeta on real-world pages', () => {
  it('reads one ac-discovery and one ac-discovery-pubkeys tag from <head>', () => {
    expect(parseDiscoveryMeta(page('meta-in-head.html'))).toEqual({
      tags: [
        { kind: 'ac-discovery', prefix: 'example.test', url: `${DL}/{os}/{arch}/{name}-{version}.{ext}` },
        { kind: 'ac-discovery-pubkeys', prefix: 'example.test', url: 'https://example.test/pubkeys.gpg' },
      ],
      ignored: [],
    });
  });

  it('accepts upper-case tags, attribute names and name values in any attribute order', () => {
    expect(parseDiscoveryMeta(page('meta-uppercase-and-attribute-order.html')).tags).toEqual([
      { kind: 'ac-discovery', prefix: 'example.test', url: `${DL}/{name}-{version}.{ext}` },
      { kind: 'ac-discovery-pubkeys', prefix: 'example.test', url: 'https://example.test/keys.asc' },
    ]);
  });

  it('accepts unquoted and single-quoted attributes and self-closing tags', () => {
    expect(parseDiscoveryMeta(page('meta-unquoted-and-single-quoted.html')).tags).toEqual([
      { kind: 'ac-discovery', prefix: 'example.test', url: `${DL}/{name}/{version}/{os}/{arch}.{ext}` },
      { kind: 'ac-discovery-pubkeys', prefix: 'example.test', url: 'https://example.test/pubkeys.gpg' },
    ]);
  });

  it('finds tags in <body> and after </html>, not only in <head>', () => {
    expect(parseDiscoveryMeta(page('meta-outside-head.html')).tags.map((t) => t.url)).toEqual([
      `${DL}/body/{name}-{version}.{ext}`,
      'https://example.test/after-html.gpg',
    ]);
  });

  it('ignores tags inside comments, <script>, <style> and <textarea>', () => {
    expect(parseDiscoveryMeta(page('meta-in-comment-and-script.html')).tags).toEqual([
      { kind: 'ac-discovery', prefix: 'example.test', url: `${DL}/{name}-{version}.{ext}` },
    ]);
  });

  it('survives broken markup and drops a tag cut off at the end of the file, as browsers do', () => {
    expect(parseDiscoveryMeta(page('meta-broken-markup.html')).tags).toEqual([
      { kind: 'ac-discovery', prefix: 'example.test', url: `${DL}/{name}-{version}.{ext}` },
    ]);
  });

  it('keeps several tags in document order and leaves other meta tags alone', () => {
    const meta = parseDiscoveryMeta(page('meta-several-tags.html'));
    expect(meta.tags.map((t) => `${t.kind} ${t.prefix}`)).toEqual([
      'ac-discovery other.test',
      'ac-discovery example.test/app',
      'ac-discovery example.test',
      'ac-discovery example.test/app',
      'ac-discovery-pubkeys example.test/app',
      'ac-discovery-pubkeys example.test',
    ]);
  });

  it('decodes entities and splits a content wrapped over lines at any whitespace', () => {
    expect(parseDiscoveryMeta(page('meta-entities-and-wrapped-content.html')).tags.map((t) => t.url)).toEqual([
      `${DL}/get?name={name}&v={version}&ext={ext}`,
      `${DL}/wrapped/{name}.{ext}`,
    ]);
  });

  it('ignores malformed tags with the reason and keeps the good one', () => {
    const meta = parseDiscoveryMeta(page('meta-malformed-content.html'));
    expect(meta.tags).toEqual([{ kind: 'ac-discovery', prefix: 'example.test', url: `${DL}/{name}-{version}.{ext}` }]);
    expect(meta.ignored).toEqual([
      'ac-discovery tag without a content attribute',
      'ac-discovery tag "example.test": needs "PREFIX URL"',
      `ac-discovery tag "example.test https://a.example.test/{name}.{ext} https://b.example.test/{name}.{ext}": more than one URL after the prefix`,
    ]);
  });

  it('reads a registry landing page full of scripts, styles and SVG (quay.io tag shapes)', () => {
    expect(parseDiscoveryMeta(page('quay-like-page.html')).tags).toEqual([
      { kind: 'ac-discovery', prefix: 'registry.test', url: 'https://registry.test/c1/aci/{name}/{version}/{ext}/{os}/{arch}/' },
      { kind: 'ac-discovery-pubkeys', prefix: 'registry.test', url: 'https://registry.test/aci-signing-key' },
    ]);
  });

  it('finds nothing on a page without discovery tags', () => {
    expect(parseDiscoveryMeta(page('no-meta-tags.html'))).toEqual({ tags: [], ignored: [] });
  });
});

describe('matchingTags', () => {
  const meta = parseDiscoveryMeta(page('meta-several-tags.html'));

  it('keeps the tags whose prefix is a string prefix of the name, in document order', () => {
    expect(matchingTags(meta, 'ac-discovery', 'example.test/app').map((t) => t.url)).toEqual([
      'https://mirror1.example.test/{name}-{version}-{os}-{arch}.{ext}',
      'https://mirror2.example.test/{os}/{arch}/{name}/{version}.{ext}',
      'https://mirror3.example.test/{name}/{channel}.{ext}',
    ]);
    expect(matchingTags(meta, 'ac-discovery', 'example.test/other').map((t) => t.url)).toEqual([
      'https://mirror2.example.test/{os}/{arch}/{name}/{version}.{ext}',
    ]);
    // A string prefix, as in the reference code: example.test/app also covers example.test/application.
    expect(matchingTags(meta, 'ac-discovery-pubkeys', 'example.test/application').map((t) => t.url)).toEqual([
      'https://example.test/app-keys.gpg',
      'https://example.test/keys.gpg',
    ]);
    expect(matchingTags(meta, 'ac-discovery', 'unrelated.test/app')).toEqual([]);
  });
});
