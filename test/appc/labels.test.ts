import { describe, expect, it } from 'vitest';

import {
  VALID_OS_ARCH,
  appcArch,
  checkOsArch,
  defaultLabels,
  labelValue,
  labelsMatch,
  parseImageReference,
  parseLabelFlag,
} from '../../src/appc/index.js';
import { ValidationError } from '../../src/errors.js';

describe('appcArch', () => {
  it.each([
    ['x64', 'amd64'],
    ['ia32', 'i386'],
    ['arm64', 'aarch64'],
    ['s390x', 's390x'],
  ])('maps node arch %s to appc arch %s', (node, appc) => expect(appcArch(node)).toBe(appc));
  it('maps arm to an armv6l/armv7l label and ppc64 by byte order', () => {
    expect(['armv6l', 'armv7l']).toContain(appcArch('arm'));
    expect(['ppc64', 'ppc64le']).toContain(appcArch('ppc64'));
  });
  it('throws for an arch appc has no label for (riscv64)', () => expect(() => appcArch('riscv64')).toThrow(ValidationError));
  it('defaultLabels are linux and a whitelisted arch of this machine', () => {
    const labels = defaultLabels();
    expect(labelValue(labels, 'os')).toBe('linux');
    expect(VALID_OS_ARCH['linux']).toContain(labelValue(labels, 'arch'));
  });
});

describe('checkOsArch', () => {
  it('accepts linux/amd64, freebsd/arm, and an arch without os', () => {
    expect(checkOsArch([{ name: 'os', value: 'linux' }, { name: 'arch', value: 'amd64' }])).toBeUndefined();
    expect(checkOsArch([{ name: 'os', value: 'freebsd' }, { name: 'arch', value: 'arm' }])).toBeUndefined();
    expect(checkOsArch([{ name: 'arch', value: 'anything' }])).toBeUndefined();
  });
  it('rejects os=windows', () => expect(checkOsArch([{ name: 'os', value: 'windows' }])?.label).toBe('os'));
  it('rejects darwin with arch=amd64 (darwin says x86_64)', () => {
    expect(checkOsArch([{ name: 'os', value: 'darwin' }, { name: 'arch', value: 'amd64' }])?.message).toMatch(/not valid for os "darwin"/);
  });
  it('rejects os=constructor (not an inherited object key)', () => {
    expect(checkOsArch([{ name: 'os', value: 'constructor' }])?.label).toBe('os');
  });
});

describe('labelsMatch', () => {
  const actual = [
    { name: 'version', value: '1.0.0' },
    { name: 'os', value: 'linux' },
    { name: 'arch', value: 'amd64' },
  ];
  it('matches when every requested label is present with the same value', () => {
    expect(labelsMatch([{ name: 'os', value: 'linux' }], actual)).toBe(true);
    expect(labelsMatch([], actual)).toBe(true);
  });
  it('does not match a different value (version=2.0.0)', () => {
    expect(labelsMatch([{ name: 'version', value: '2.0.0' }], actual)).toBe(false);
  });
  it('does not match a label the image lacks (channel=stable)', () => {
    expect(labelsMatch([{ name: 'channel', value: 'stable' }], actual)).toBe(false);
  });
});

describe('parseLabelFlag', () => {
  it('parses os=linux', () => expect(parseLabelFlag('os=linux')).toEqual({ name: 'os', value: 'linux' }));
  it('keeps "=" inside the value (note=a=b)', () => expect(parseLabelFlag('note=a=b')).toEqual({ name: 'note', value: 'a=b' }));
  it('accepts an empty value (channel=)', () => expect(parseLabelFlag('channel=')).toEqual({ name: 'channel', value: '' }));
  it.each(['linux', '=linux', 'OS=linux', 'name=x'])('rejects "%s"', (s) => expect(() => parseLabelFlag(s)).toThrow(ValidationError));
});

describe('labelValue', () => {
  it('returns the value or undefined', () => {
    expect(labelValue([{ name: 'os', value: 'linux' }], 'os')).toBe('linux');
    expect(labelValue([{ name: 'os', value: 'linux' }], 'arch')).toBeUndefined();
    expect(labelValue(undefined, 'os')).toBeUndefined();
  });
});

describe('parseImageReference', () => {
  it('parses name:version,os=linux,arch=amd64', () => {
    expect(parseImageReference('example.com/app:1.0,os=linux,arch=amd64')).toEqual({
      name: 'example.com/app',
      labels: [
        { name: 'version', value: '1.0' },
        { name: 'os', value: 'linux' },
        { name: 'arch', value: 'amd64' },
      ],
    });
  });
  it('parses a bare name without labels', () => expect(parseImageReference('coreos.com/etcd')).toEqual({ name: 'coreos.com/etcd', labels: [] }));
  it('parses labels without a version (example.com/app,channel=alpha)', () => {
    expect(parseImageReference('example.com/app,channel=alpha').labels).toEqual([{ name: 'channel', value: 'alpha' }]);
  });
  it.each([
    ['example.com/app:1.0:2.0', /at most once/],
    ['example.com/app,os=linux:1.0', /right after the image name/],
    ['Example.com/App', /must be an ac identifier/],
    [':1.0', /image name is empty/],
    ['example.com/app:', /version after ":" is empty/],
    ['example.com/app,,os=linux', /empty label/],
    ['example.com/app,os', /name=value/],
    ['example.com/app,os=linux,os=freebsd', /given more than once/],
    ['example.com/app:1.0,version=2.0', /given more than once/],
    ['example.com/app,name=other', /reserved/],
  ])('rejects "%s"', (text, message) => {
    expect(() => parseImageReference(text)).toThrow(ValidationError);
    expect(() => parseImageReference(text)).toThrow(message);
  });
});
