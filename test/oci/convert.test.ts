// OCI config -> appc image manifest conversion, as data: every result must pass the project's
// image manifest validation.
import { describe, expect, it } from 'vitest';

import { validateImageManifest } from '../../src/appc/validate.js';
import { ImageFormatError } from '../../src/errors.js';
import { ANNOTATIONS, appcArch, convertConfig, parseExposedPort, parseUser, sanitizeACIdentifier, volumeName, type ConvertInput } from '../../src/oci/convert.js';

const DIGEST = `sha256:${'a'.repeat(64)}`;

function convert(config: ConvertInput['config'], extra: Partial<ConvertInput> = {}) {
  const result = convertConfig({ name: 'docker.io/library/nginx', tag: '1.27', config, manifestDigest: DIGEST, ...extra });
  validateImageManifest(result.manifest);
  return result;
}

const annotation = (m: { annotations?: { name: string; value: string }[] }, name: string) => m.annotations?.find((a) => a.name === name)?.value;

describe('convertConfig', () => {
  it('maps an nginx-like config (entrypoint + cmd, env, ports, volumes, user, workdir, labels)', () => {
    const { manifest, warnings } = convert(
      {
        architecture: 'amd64',
        os: 'linux',
        created: '2024-05-01T10:00:00.123456789Z',
        author: 'Jane',
        config: {
          User: '101:101',
          Entrypoint: ['/docker-entrypoint.sh'],
          Cmd: ['nginx', '-g', 'daemon off;'],
          Env: ['PATH=/usr/local/sbin:/usr/bin', 'NGINX_VERSION=1.27.0', 'EMPTY=', 'X=a=b'],
          ExposedPorts: { '80/tcp': {}, '53/udp': {}, '8000-8002/tcp': {} },
          Volumes: { '/var/cache/nginx': {}, '/data': {} },
          WorkingDir: '/srv',
          Labels: { maintainer: 'NGINX <docker@nginx.com>', 'com.Example.Key': 'v' },
          StopSignal: 'SIGQUIT',
        },
      },
      { configDigest: `sha256:${'b'.repeat(64)}`, manifestAnnotations: { 'org.opencontainers.image.ref.name': '1.27' } },
    );
    expect(warnings).toEqual([]);
    expect(manifest.name).toBe('docker.io/library/nginx');
    expect(manifest.labels).toEqual([
      { name: 'version', value: '1.27' },
      { name: 'os', value: 'linux' },
      { name: 'arch', value: 'amd64' },
    ]);
    expect(manifest.app).toEqual({
      user: '101',
      group: '101',
      exec: ['/docker-entrypoint.sh', 'nginx', '-g', 'daemon off;'],
      workingDirectory: '/srv',
      environment: [
        { name: 'PATH', value: '/usr/local/sbin:/usr/bin' },
        { name: 'NGINX_VERSION', value: '1.27.0' },
        { name: 'EMPTY', value: '' },
        { name: 'X', value: 'a=b' },
      ],
      ports: [
        { name: '53-udp', protocol: 'udp', port: 53 },
        { name: '80-tcp', protocol: 'tcp', port: 80 },
        { name: '8000-8002-tcp', protocol: 'tcp', port: 8000, count: 3 },
      ],
      mountPoints: [
        { name: 'volume-data', path: '/data' },
        { name: 'volume-var-cache-nginx', path: '/var/cache/nginx' },
      ],
    });
    expect(annotation(manifest, ANNOTATIONS.manifestDigest)).toBe(DIGEST);
    expect(annotation(manifest, ANNOTATIONS.configDigest)).toBe(`sha256:${'b'.repeat(64)}`);
    expect(annotation(manifest, ANNOTATIONS.registry)).toBe('docker.io');
    expect(annotation(manifest, ANNOTATIONS.repository)).toBe('library/nginx');
    expect(annotation(manifest, ANNOTATIONS.entrypoint)).toBe('["/docker-entrypoint.sh"]');
    expect(annotation(manifest, ANNOTATIONS.cmd)).toBe('["nginx","-g","daemon off;"]');
    expect(annotation(manifest, 'created')).toBe('2024-05-01T10:00:00.123456789Z');
    expect(annotation(manifest, 'authors')).toBe('Jane');
    expect(annotation(manifest, 'maintainer')).toBe('NGINX <docker@nginx.com>');
    expect(annotation(manifest, 'com.example.key')).toBe('v');
    expect(annotation(manifest, 'org.opencontainers.image.ref.name')).toBe('1.27');
    expect(annotation(manifest, ANNOTATIONS.stopSignal)).toBe('SIGQUIT');
  });

  it('uses Cmd alone when there is no Entrypoint', () => {
    expect(convert({ config: { Cmd: ['sh'] } }).manifest.app?.exec).toEqual(['sh']);
  });

  it('uses Entrypoint alone when there is no Cmd (null Cmd as docker writes it)', () => {
    expect(convert({ config: { Entrypoint: ['/bin/app', '--serve'], Cmd: null } }).manifest.app?.exec).toEqual(['/bin/app', '--serve']);
  });

  it('leaves exec out and warns when there is neither Entrypoint nor Cmd', () => {
    const { manifest, warnings } = convert({ config: {} });
    expect(manifest.app).toEqual({ user: '0', group: '0' });
    expect(warnings).toEqual(['image has neither Entrypoint nor Cmd; the app has no exec']);
  });

  it('converts a config without a config section (umoci new) to root with no exec', () => {
    const { manifest } = convert({ architecture: 'arm64', os: 'linux', config: null });
    expect(manifest.app).toEqual({ user: '0', group: '0' });
    expect(manifest.labels).toContainEqual({ name: 'arch', value: 'aarch64' });
  });

  it('keeps the shell form builders expand to /bin/sh -c', () => {
    expect(convert({ config: { Cmd: ['/bin/sh', '-c', 'echo $HOME && exec app'] } }).manifest.app?.exec).toEqual(['/bin/sh', '-c', 'echo $HOME && exec app']);
  });

  it('resolves a relative exec path with a slash against WorkingDir (appc refuses ./app)', () => {
    expect(convert({ config: { Cmd: ['./run.sh'], WorkingDir: '/app' } }).manifest.app?.exec).toEqual(['/app/run.sh']);
    expect(convert({ config: { Cmd: ['bin/run'] } }).manifest.app?.exec).toEqual(['/bin/run']);
  });

  it('makes a relative WorkingDir and volume path absolute', () => {
    const { manifest } = convert({ config: { WorkingDir: 'work', Volumes: { data: {} } } });
    expect(manifest.app?.workingDirectory).toBe('/work');
    expect(manifest.app?.mountPoints).toEqual([{ name: 'volume-data', path: '/data' }]);
  });

  it('takes a user by name, and by name:group', () => {
    expect(convert({ config: { User: 'nginx' } }).manifest.app).toMatchObject({ user: 'nginx', group: 'nginx' });
    expect(convert({ config: { User: 'www-data:adm' } }).manifest.app).toMatchObject({ user: 'www-data', group: 'adm' });
  });

  it('sanitises a registry with a port into an AC identifier and omits version for digest pulls', () => {
    const { manifest } = convert({ config: {} }, { name: '127.0.0.1:5000/Team/App', tag: undefined });
    expect(manifest.name).toBe('127.0.0.1-5000/team/app');
    expect(manifest.labels?.find((l) => l.name === 'version')).toBeUndefined();
  });

  it('drops env entries without "=" and bad port keys with warnings', () => {
    const { manifest, warnings } = convert({ config: { Env: ['JUSTNAME', 'A=1'], ExposedPorts: { 'http/tcp': {}, '70000/tcp': {} } } });
    expect(manifest.app?.environment).toEqual([{ name: 'A', value: '1' }]);
    expect(manifest.app?.ports).toBeUndefined();
    // three dropped entries, plus the missing exec
    expect(warnings).toHaveLength(4);
  });

  it('lets a later duplicate env entry win, as docker does', () => {
    expect(convert({ config: { Env: ['A=1', 'A=2'] } }).manifest.app?.environment).toEqual([{ name: 'A', value: '2' }]);
  });

  it('gives colliding volume names a suffix', () => {
    const { manifest } = convert({ config: { Volumes: { '/a/b': {}, '/a-b': {} } } });
    expect(manifest.app?.mountPoints?.map((m) => m.name)).toEqual(['volume-a-b', 'volume-a-b-2']);
  });

  it('leaves an unknown architecture label out with a warning (riscv64)', () => {
    const { manifest, warnings } = convert({ architecture: 'riscv64', os: 'linux', config: {} });
    expect(manifest.labels?.map((l) => l.name)).toEqual(['version', 'os']);
    expect(warnings[0]).toMatch(/riscv64/);
  });

  it('refuses a windows image', () => {
    expect(() => convertConfig({ name: 'x/y', config: { os: 'windows' }, manifestDigest: DIGEST })).toThrow(ImageFormatError);
  });

  it('drops a created time that is not RFC 3339', () => {
    expect(annotation(convert({ created: 'yesterday', config: {} }).manifest, 'created')).toBeUndefined();
  });
});

describe('conversion helpers', () => {
  it.each([
    ['', { user: '0', group: '0' }],
    ['1000', { user: '1000', group: '1000' }],
    ['1000:50', { user: '1000', group: '50' }],
    [':50', { user: '0', group: '50' }],
    ['app', { user: 'app', group: 'app' }],
  ])('parseUser(%j)', (input, expected) => expect(parseUser(input)).toEqual(expected));

  it.each([
    ['80', { name: '80-tcp', protocol: 'tcp', port: 80 }],
    ['53/UDP', { name: '53-udp', protocol: 'udp', port: 53 }],
    ['0/tcp', undefined],
    ['10-5/tcp', undefined],
  ])('parseExposedPort(%j)', (input, expected) => expect(parseExposedPort(input)).toEqual(expected));

  it.each([
    ['amd64', undefined, 'amd64'],
    ['386', undefined, 'i386'],
    ['arm', 'v6', 'armv6l'],
    ['arm', 'v7', 'armv7l'],
    ['arm64', 'v8', 'aarch64'],
    ['mips64le', undefined, undefined],
  ])('appcArch(%s, %s) = %s', (arch, variant, expected) => expect(appcArch(arch, variant)).toBe(expected));

  it('names volumes after their path', () => {
    expect(volumeName('/')).toBe('volume-root');
    expect(volumeName('/var/lib/My_Data')).toBe('volume-var-lib-my-data');
  });

  it('sanitises identifiers', () => {
    expect(sanitizeACIdentifier('Docker.IO//library/Nginx')).toBe('docker.io/library/nginx');
  });
});
