// --os/--arch/--variant: parsing into a wanted platform, arm variant preferences in an index,
// the appc labels they stand for (fetch of appc names and ACIs), the run/prepare grammar taking
// them, and the check that refuses an image for another architecture before a pod is made.
import { describe, expect, it } from 'vitest';

import { UsageError } from '../../src/errors.js';
import { withPlatform } from '../../src/fetch/platform-request.js';
import type { Descriptor } from '../../src/oci/media-types.js';
import { checkRunsHere, defaultPlatform, labelsFitPlatform, ociArchitecture, platformFromFlags, platformLabels, platformMismatch, runnableArches, selectPlatform } from '../../src/oci/platform.js';
import { parseRunArgs } from '../../src/pod/run-args.js';

const m = (architecture: string, variant?: string): Descriptor => ({
  mediaType: 'application/vnd.oci.image.manifest.v1+json',
  digest: `sha256:${`${architecture}${variant ?? ''}`.replace(/[^a-f0-9]/g, '0').padEnd(64, '0')}`,
  size: 1,
  platform: { os: 'linux', architecture, ...(variant ? { variant } : {}) },
});

describe('platformFromFlags', () => {
  it('is undefined without flags (this machine is used)', () => {
    expect(platformFromFlags({})).toBeUndefined();
  });
  it('defaults os to linux and arch to this machine; arm gets v7, arm64 any variant', () => {
    expect(platformFromFlags({ arch: 'arm64' })).toEqual({ os: 'linux', architecture: 'arm64' });
    expect(platformFromFlags({ arch: 'arm' })).toEqual({ os: 'linux', architecture: 'arm', variant: 'v7' });
    expect(platformFromFlags({ arch: 'arm', variant: 'v6' })).toEqual({ os: 'linux', architecture: 'arm', variant: 'v6' });
    expect(platformFromFlags({ os: 'linux' })).toEqual(defaultPlatform());
    expect(platformFromFlags({ variant: 'v8' })).toEqual({ ...defaultPlatform(), variant: 'v8' });
  });
  it('takes the appc and uname spellings', () => {
    expect(platformFromFlags({ arch: 'aarch64' })).toEqual({ os: 'linux', architecture: 'arm64' });
    expect(platformFromFlags({ arch: 'x86_64' })).toEqual({ os: 'linux', architecture: 'amd64' });
    expect(platformFromFlags({ arch: 'armv6l' })).toEqual({ os: 'linux', architecture: 'arm', variant: 'v6' });
    expect(platformFromFlags({ arch: 'i386' })).toEqual({ os: 'linux', architecture: '386' });
  });
  it('refuses malformed values and an alias contradicting --variant', () => {
    expect(() => platformFromFlags({ arch: 'ARM64' })).toThrow(UsageError);
    expect(() => platformFromFlags({ os: 'linux/amd64' })).toThrow(/--os "linux\/amd64": not a platform word/);
    expect(() => platformFromFlags({ arch: 'armv7l', variant: 'v6' })).toThrow(/--arch armv7l is arm\/v7, but --variant is v6/);
  });
});

describe('selectPlatform with variants', () => {
  it('prefers the exact arm variant, falls back to an older one, never to a newer one', () => {
    const index = [m('arm', 'v6'), m('arm', 'v7'), m('amd64')];
    expect(selectPlatform(index, { os: 'linux', architecture: 'arm', variant: 'v7' })).toBe(index[1]);
    expect(selectPlatform([index[0]!], { os: 'linux', architecture: 'arm', variant: 'v7' })).toBe(index[0]);
    expect(() => selectPlatform([index[1]!], { os: 'linux', architecture: 'arm', variant: 'v6' })).toThrow(/available: linux\/arm\/v7/);
  });
  it('takes arm without a variant as v7 and arm64 without one as v8', () => {
    expect(selectPlatform([m('arm')], { os: 'linux', architecture: 'arm', variant: 'v7' }).platform?.architecture).toBe('arm');
    expect(() => selectPlatform([m('arm64')], { os: 'linux', architecture: 'arm64', variant: 'v9' })).toThrow(/no manifest/);
  });
});

describe('platform labels', () => {
  it('are the appc spellings of the platform', () => {
    expect(platformLabels({ os: 'linux', architecture: 'arm64' })).toEqual([
      { name: 'os', value: 'linux' },
      { name: 'arch', value: 'aarch64' },
    ]);
    expect(platformLabels({ os: 'linux', architecture: 'arm', variant: 'v6' })[1]!.value).toBe('armv6l');
    expect(() => platformLabels({ os: 'linux', architecture: 'riscv64' })).toThrow(/appc images have no arch label/);
  });
  it('tell whether a stored image fits the platform', () => {
    const labels = [
      { name: 'os', value: 'linux' },
      { name: 'arch', value: 'aarch64' },
    ];
    expect(labelsFitPlatform(labels, { os: 'linux', architecture: 'arm64' })).toBe(true);
    expect(labelsFitPlatform(labels, { os: 'linux', architecture: 'amd64' })).toBe(false);
    expect(labelsFitPlatform([], { os: 'linux', architecture: 'amd64' })).toBe(true);
  });
});

describe('withPlatform', () => {
  const arm64 = { os: 'linux', architecture: 'arm64' };
  it('gives OCI references the platform and no labels', () => {
    expect(withPlatform('docker://r/x:1', { pullPolicy: 'new' }, arm64)).toEqual({ pullPolicy: 'new', platform: arm64 });
  });
  it('makes --arch the same as --label arch=... for appc names, files and URLs', () => {
    const labels = [
      { name: 'os', value: 'linux' },
      { name: 'arch', value: 'aarch64' },
    ];
    expect(withPlatform('example.com/app:1.0', {}, arm64).labels).toEqual(labels);
    expect(withPlatform('./app.aci', {}, arm64).labels).toEqual(labels);
    expect(withPlatform('https://example.com/app.aci', { labels: [{ name: 'arch', value: 'aarch64' }] }, arm64).labels).toEqual([labels[1], labels[0]]);
  });
  it('refuses --arch and --label arch that disagree; leaves ids and no flags alone', () => {
    expect(() => withPlatform('example.com/app', { labels: [{ name: 'arch', value: 'amd64' }] }, arm64)).toThrow(/--arch means arch=aarch64, but --label gives arch=amd64/);
    expect(withPlatform(`sha512-${'0'.repeat(32)}`, {}, arm64)).toEqual({});
    expect(withPlatform('example.com/app', { pullPolicy: 'new' }, undefined)).toEqual({ pullPolicy: 'new' });
  });
});

describe('run/prepare take --os, --arch and --variant', () => {
  it('as pod flags, anywhere, parsed once', () => {
    expect(parseRunArgs(['--arch', 'arm64', 'a.aci']).pod.platform).toEqual({ os: 'linux', architecture: 'arm64' });
    expect(parseRunArgs(['a.aci', '--arch=arm', '--variant=v6', '--os', 'linux']).pod.platform).toEqual({ os: 'linux', architecture: 'arm', variant: 'v6' });
    expect(parseRunArgs(['a.aci']).pod.platform).toBeUndefined();
    expect(() => parseRunArgs(['--arch', 'arm64', '--arch', 'amd64', 'a.aci'])).toThrow(/--arch given twice/);
    expect(() => parseRunArgs(['--arch', 'Bad!', 'a.aci'])).toThrow(UsageError);
  });
});

describe('checkRunsHere', () => {
  const host = { os: 'linux', arch: 'amd64' };
  const labels = (arch: string) => [
    { name: 'os', value: 'linux' },
    { name: 'arch', value: arch },
  ];
  it('lets this machine run its own arch, what it also runs, and images without labels', () => {
    expect(() => checkRunsHere('a', labels('amd64'), host)).not.toThrow();
    expect(() => checkRunsHere('a', labels('i386'), host)).not.toThrow();
    expect(() => checkRunsHere('a', [], host)).not.toThrow();
    expect(runnableArches('aarch64')).toEqual(['aarch64', 'armv7l', 'armv6l']);
  });
  it('refuses a foreign arch or os, naming both platforms', () => {
    expect(() => checkRunsHere('docker://r/x:1', labels('aarch64'), host)).toThrow(
      'run image docker://r/x:1: it is built for linux/aarch64, and this machine runs linux/amd64, i386',
    );
    expect(() => checkRunsHere('a', [{ name: 'os', value: 'freebsd' }], host)).toThrow(/built for freebsd\/any arch/);
    expect(() => checkRunsHere('a', labels('armv7l'), { os: 'linux', arch: 'armv6l' })).toThrow(UsageError);
  });
  it('defaults to this machine', () => {
    expect(() => checkRunsHere('a', labels(ociArchitecture() === 'amd64' ? 'amd64' : 'aarch64'))).not.toThrow();
  });
});

describe('platformMismatch', () => {
  it('says when a single-manifest image is not for the wanted platform', () => {
    expect(platformMismatch({ os: 'linux', architecture: 'arm64' }, { os: 'linux', architecture: 'arm64' })).toBeUndefined();
    expect(platformMismatch({ os: 'linux', architecture: 'arm', variant: 'v6' }, { os: 'linux', architecture: 'arm', variant: 'v7' })).toBeUndefined();
    expect(platformMismatch({ os: 'linux', architecture: 'amd64' }, { os: 'linux', architecture: 'arm64' })).toBe(
      'the image is for linux/amd64, not linux/arm64 (the reference names one image, not an index)',
    );
    expect(platformMismatch({ os: 'linux', architecture: 'arm', variant: 'v7' }, { os: 'linux', architecture: 'arm', variant: 'v6' })).toMatch(/linux\/arm\/v7, not linux\/arm\/v6/);
  });
});
