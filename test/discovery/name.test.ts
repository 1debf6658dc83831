// The app to discover: reference + --label flags + defaults (version latest, host os/arch).
import { describe, expect, it } from 'vitest';

import { appcArch } from '../../src/appc/labels.js';
import { formatDiscoveryApp, parseDiscoveryApp, requiredManifestLabels, templateVariables } from '../../src/discovery/name.js';
import { ValidationError } from '../../src/errors.js';

function failure(fn: () => unknown): ValidationError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ValidationError);
    return err as ValidationError;
  }
  throw new Error('expected a ValidationError');
}

describe('parseDiscoveryApp', () => {
  it('takes the version from "name:version" and fills os/arch from the host in appc spelling', () => {
    const app = parseDiscoveryApp('example.com/app:1.0');
    expect(app).toEqual({
      name: 'example.com/app',
      labels: [
        { name: 'version', value: '1.0' },
        { name: 'os', value: 'linux' },
        { name: 'arch', value: appcArch() },
      ],
      defaulted: ['os', 'arch'],
    });
    expect(['amd64', 'aarch64', 'i386', 'armv7l', 'armv6l', 'ppc64le', 'ppc64', 's390x']).toContain(app.labels[2]!.value);
  });

  it('uses version "latest" when none is given, for the URL only', () => {
    const app = parseDiscoveryApp('example.com/app', { os: 'linux', arch: 'aarch64' });
    expect(templateVariables(app)).toEqual(
      new Map([
        ['name', 'example.com/app'],
        ['version', 'latest'],
        ['os', 'linux'],
        ['arch', 'aarch64'],
      ]),
    );
    // spec/discovery.md: latest is not required in the manifest; os/arch are.
    expect(requiredManifestLabels(app)).toEqual([
      { name: 'os', value: 'linux' },
      { name: 'arch', value: 'aarch64' },
    ]);
  });

  it('adds --label flags, inline labels and flags agreeing, and keeps user labels over defaults', () => {
    const app = parseDiscoveryApp('example.com/app:2,channel=beta', { labels: ['arch=armv7l', 'channel=beta', 'variant=slim'], os: 'linux', arch: 'amd64' });
    expect(app.labels).toEqual([
      { name: 'version', value: '2' },
      { name: 'channel', value: 'beta' },
      { name: 'arch', value: 'armv7l' },
      { name: 'variant', value: 'slim' },
      { name: 'os', value: 'linux' },
    ]);
    expect(app.defaulted).toEqual(['os']);
    expect(requiredManifestLabels(app)).toHaveLength(5);
    expect(formatDiscoveryApp(app)).toBe('example.com/app:2,channel=beta,arch=armv7l,variant=slim,os=linux');
  });

  it('refuses a label given inline and as a flag with different values', () => {
    const err = failure(() => parseDiscoveryApp('example.com/app:1.0', { labels: ['version=2.0'] }));
    expect(err.message).toBe('invalid image reference "example.com/app:1.0": /: label "version" is "1.0" in the reference but "2.0" in --label');
  });

  it('refuses an arch appc does not know and suggests its appc spelling (arm64 -> aarch64)', () => {
    const err = failure(() => parseDiscoveryApp('example.com/app', { labels: ['arch=arm64'], os: 'linux' }));
    expect(err.message).toContain('/labels/arch: arch "arm64" is not valid for os "linux"');
    expect(err.suggestions).toEqual(['appc spells it aarch64: --label arch=aarch64']);
  });

  it('refuses a malformed reference or label flag', () => {
    expect(failure(() => parseDiscoveryApp('Example.com/App')).message).toContain('must be an ac identifier');
    expect(failure(() => parseDiscoveryApp('example.com/app', { labels: ['noequals'] })).message).toContain('name=value');
  });
});
