// Pod manifest generation from `tspod run` arguments: apps, environment precedence, volumes and
// mounts, isolator flags, ports, --pod-manifest. Pure: images come from a fake resolveImage.
import { createHash } from 'node:crypto';

import { describe, expect, it } from 'vitest';

import { validatePodManifest, type App, type ImageManifest, type PodManifest } from '../../src/appc/index.js';
import { NotFoundError, UsageError, ValidationError } from '../../src/errors.js';
import { buildPodManifest, parseEnvFile, type BuildPodManifestDeps, type BuiltPod, type ResolvedImage } from '../../src/pod/manifest.js';
import { parseRunArgs } from '../../src/pod/run-args.js';
import { STAGE1_INTERFACE_VERSION } from '../../stage1/contract.js';

const idOf = (name: string): string => `sha512-${createHash('sha512').update(name).digest('hex')}`;

function image(name: string, app?: Partial<App> | null): ImageManifest {
  const m: ImageManifest = {
    acKind: 'ImageManifest',
    acVersion: '0.8.11',
    name,
    labels: [
      { name: 'os', value: 'linux' },
      { name: 'arch', value: 'amd64' },
    ],
  };
  if (app !== null) m.app = { exec: ['/bin/app'], user: '0', group: '0', ...app };
  return m;
}

/** A fake store: reference (file name, image name or id) -> image. */
function fakeStore(images: Record<string, ImageManifest>): (ref: string) => Promise<ResolvedImage> {
  return async (ref) => {
    for (const [file, manifest] of Object.entries(images)) {
      const id = idOf(manifest.name);
      if (ref === file || ref === manifest.name || ref === id) return { id, manifest };
    }
    throw new NotFoundError(`image ${ref} not found`);
  };
}

interface Run {
  built: BuiltPod;
  warnings: string[];
}

async function build(argv: string[], images: Record<string, ImageManifest>, extra: Partial<BuildPodManifestDeps> = {}): Promise<Run> {
  const warnings: string[] = [];
  const built = await buildPodManifest(parseRunArgs(argv), { resolveImage: fakeStore(images), warn: (m) => warnings.push(m), env: {}, ...extra });
  // every manifest produced must pass the validator on its own
  expect(() => validatePodManifest(JSON.parse(JSON.stringify(built.manifest)))).not.toThrow();
  return { built, warnings };
}

async function failure(argv: string[], images: Record<string, ImageManifest>, extra: Partial<BuildPodManifestDeps> = {}): Promise<Error> {
  try {
    await build(argv, images, extra);
  } catch (err) {
    if (err instanceof Error) return err;
  }
  throw new Error('expected buildPodManifest to fail');
}

const IMAGES = {
  'a.aci': image('example.com/web', { exec: ['/bin/web', '--serve'], ports: [{ name: 'http', protocol: 'tcp', port: 80 }] }),
  'b.aci': image('example.com/db', { mountPoints: [{ name: 'data', path: '/var/lib/db' }] }),
};

const appOf = (m: PodManifest, name: string): App => m.apps.find((a) => a.name === name)!.app!;

describe('buildPodManifest apps', () => {
  it('builds two apps named after their images with per-app overrides', async () => {
    const { built } = await build(
      ['a.aci', '--exec', '/bin/sh', '--user=100', '--group', '101', '--supplementary-gids=5,6', '--working-dir', '/srv', '--', '-c', 'echo hi', '---', 'b.aci'],
      IMAGES,
    );
    const { manifest } = built;
    expect(manifest.acKind).toBe('PodManifest');
    expect(manifest.apps.map((a) => a.name)).toEqual(['web', 'db']);
    expect(manifest.apps[0]!.image).toEqual({ id: idOf('example.com/web'), name: 'example.com/web', labels: IMAGES['a.aci'].labels });
    expect(appOf(manifest, 'web')).toMatchObject({
      exec: ['/bin/sh', '-c', 'echo hi'],
      user: '100',
      group: '101',
      supplementaryGIDs: [5, 6],
      workingDirectory: '/srv',
    });
    expect(appOf(manifest, 'db').exec).toEqual(['/bin/app']);
    expect(built.apps.map((a) => [a.name, a.image.id])).toEqual([
      ['web', idOf('example.com/web')],
      ['db', idOf('example.com/db')],
    ]);
  });

  it("appends -- arguments to the image's exec when --exec is not given", async () => {
    const { built } = await build(['a.aci', '--', '--port', '81'], IMAGES);
    expect(appOf(built.manifest, 'web').exec).toEqual(['/bin/web', '--serve', '--port', '81']);
  });

  it('rejects two apps with the same name and suggests --name', async () => {
    const err = await failure(['a.aci', 'a.aci'], IMAGES);
    expect(err).toBeInstanceOf(UsageError);
    expect(err.message).toBe('two apps are named "web" (images example.com/web and example.com/web)');
    expect((err as UsageError).suggestions[0]).toMatch(/--name/);
    const { built } = await build(['a.aci', 'a.aci', '--name', 'web-2'], IMAGES);
    expect(built.manifest.apps.map((a) => a.name)).toEqual(['web', 'web-2']);
  });

  it('rejects an image without an app unless --exec is given', async () => {
    const images = { 'lib.aci': image('example.com/lib', null) };
    const err = await failure(['lib.aci'], images);
    expect(err).toBeInstanceOf(UsageError);
    expect(err.message).toBe('image example.com/lib has no app; give --exec');
    const { built } = await build(['lib.aci', '--exec', '/bin/true'], images);
    expect(appOf(built.manifest, 'lib')).toEqual({ exec: ['/bin/true'], user: '0', group: '0' });
  });

  it('does not modify the image manifest it was given', async () => {
    const images = { 'a.aci': image('example.com/web', { environment: [{ name: 'A', value: '1' }] }) };
    const before = JSON.stringify(images);
    await build(['a.aci', '--environment', 'A=2', '--memory', '1G'], images);
    expect(JSON.stringify(images)).toBe(before);
  });

  it('records app annotations and user labels, merged over the image app', async () => {
    const images = { 'a.aci': image('example.com/web', { userLabels: { team: 'a', tier: 'web' } }) };
    const { built } = await build(['a.aci', '--annotation', 'example.com/role=front', '--user-label', 'tier=edge', '--user-annotation', 'note=x'], images);
    expect(built.manifest.apps[0]!.annotations).toEqual([{ name: 'example.com/role', value: 'front' }]);
    expect(appOf(built.manifest, 'web').userLabels).toEqual({ team: 'a', tier: 'edge' });
    expect(appOf(built.manifest, 'web').userAnnotations).toEqual({ note: 'x' });
  });

  it('records pod annotations, user labels and user annotations', async () => {
    const { built } = await build(['--annotation', 'example.com/owner=me', '--label', 'env=prod', '--user-annotation', 'why=test', 'a.aci'], IMAGES);
    expect(built.manifest).toMatchObject({
      annotations: [{ name: 'example.com/owner', value: 'me' }],
      userLabels: { env: 'prod' },
      userAnnotations: { why: 'test' },
    });
  });
});

describe('buildPodManifest environment', () => {
  const images = {
    'a.aci': image('example.com/web', {
      environment: [
        { name: 'IMG', value: 'image' },
        { name: 'FILE', value: 'image' },
        { name: 'SET', value: 'image' },
        { name: 'APPENV', value: 'image' },
      ],
    }),
    'b.aci': image('example.com/db'),
  };
  const envFile = '# comment\n\nFILE=file\nSET=file\r\nAPPENV=file\nONLYFILE=x=y\n';

  it('merges image < --set-env-file < --set-env < --environment', async () => {
    const { built } = await build(
      ['--set-env-file', '/env', '--set-env', 'SET=set', '--set-env=APPENV=set', 'a.aci', '--environment', 'APPENV=app', 'b.aci'],
      images,
      { readEnvFile: (p) => (p === '/env' ? envFile : '') },
    );
    expect(appOf(built.manifest, 'web').environment).toEqual([
      { name: 'IMG', value: 'image' },
      { name: 'FILE', value: 'file' },
      { name: 'SET', value: 'set' },
      { name: 'APPENV', value: 'app' },
      { name: 'ONLYFILE', value: 'x=y' },
    ]);
    // pod-wide values reach every app; --environment only its own
    expect(appOf(built.manifest, 'db').environment).toEqual([
      { name: 'FILE', value: 'file' },
      { name: 'SET', value: 'set' },
      { name: 'APPENV', value: 'set' },
      { name: 'ONLYFILE', value: 'x=y' },
    ]);
  });

  it('lets a per-app --set-env override the pod-wide one, below --environment', async () => {
    const { built } = await build(['--set-env', 'X=pod', 'b.aci', '--set-env', 'X=app', '--set-env', 'Y=app', '--environment', 'Y=env'], images);
    expect(appOf(built.manifest, 'db').environment).toEqual([
      { name: 'X', value: 'app' },
      { name: 'Y', value: 'env' },
    ]);
  });

  it('puts --inherit-env into RunOptions.inheritedEnv, not into the manifest', async () => {
    const { built } = await build(['--inherit-env', 'b.aci'], images, { env: { HOME: '/root', TERM: 'xterm', 'BAD NAME': 'x' } });
    expect(built.runOptions.inheritedEnv).toEqual({ HOME: '/root', TERM: 'xterm' });
    expect(appOf(built.manifest, 'db').environment).toBeUndefined();
    const plain = await build(['b.aci'], images, { env: { HOME: '/root' } });
    expect(plain.built.runOptions.inheritedEnv).toBeUndefined();
  });

  it('rejects a malformed --set-env-file line with its number, and an unreadable file', async () => {
    expect(() => parseEnvFile('A=1\nnot a pair\n', '/env')).toThrow('--set-env-file /env: line 2: expected NAME=VALUE, got "not a pair"');
    const err = await failure(['--set-env-file', '/missing', 'b.aci'], images, {
      readEnvFile: () => {
        throw Object.assign(new Error('no such file'), { code: 'ENOENT' });
      },
    });
    expect(err).toBeInstanceOf(NotFoundError);
    expect(err.message).toBe('--set-env-file /missing: cannot read it (ENOENT)');
  });
});

describe('buildPodManifest volumes and mounts', () => {
  it('adds an implicit empty volume for an unsatisfied mount point, with a warning', async () => {
    const { built, warnings } = await build(['b.aci'], IMAGES);
    expect(built.manifest.volumes).toEqual([{ name: 'data', kind: 'empty', mode: '0755', uid: 0, gid: 0 }]);
    expect(built.manifest.apps[0]!.mounts).toEqual([{ volume: 'data', path: '/var/lib/db' }]);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/app "db": no volume for mount point "data" \(\/var\/lib\/db\); using an implicit empty volume "data"/);
  });

  it('satisfies a mount point from the volume of its name, without a warning', async () => {
    const { built, warnings } = await build(['--volume', 'data,kind=host,source=/srv/db', 'b.aci'], IMAGES);
    expect(warnings).toEqual([]);
    expect(built.manifest.volumes).toEqual([{ name: 'data', kind: 'host', source: '/srv/db' }]);
    expect(built.manifest.apps[0]!.mounts).toEqual([{ volume: 'data', path: '/var/lib/db' }]);
  });

  it('satisfies a mount point by a --mount on its path', async () => {
    const { built, warnings } = await build(['--volume', 'store,kind=empty', 'b.aci', '--mount', 'volume=store,target=/var/lib/db'], IMAGES);
    expect(warnings).toEqual([]);
    expect(built.manifest.volumes!.map((v) => v.name)).toEqual(['store']);
    expect(built.manifest.apps[0]!.mounts).toEqual([{ volume: 'store', path: '/var/lib/db' }]);
  });

  it('applies a global --mount to every app; an app mount on the same target wins', async () => {
    const { built } = await build(
      ['--volume', 'shared,kind=empty', '--volume', 'other,kind=empty', '--mount', 'volume=shared,target=/shared', 'a.aci', '--mount', 'volume=other,target=/shared', 'b.aci', '--mount', 'volume=other,target=/var/lib/db'],
      IMAGES,
    );
    expect(built.manifest.apps[0]!.mounts).toEqual([{ volume: 'other', path: '/shared' }]);
    expect(built.manifest.apps[1]!.mounts).toEqual([
      { volume: 'other', path: '/var/lib/db' },
      { volume: 'shared', path: '/shared' },
    ]);
  });

  it('shares one implicit volume between apps with a mount point of the same name', async () => {
    const images = { 'b.aci': IMAGES['b.aci'], 'c.aci': image('example.com/backup', { mountPoints: [{ name: 'data', path: '/backup' }] }) };
    const { built, warnings } = await build(['b.aci', 'c.aci'], images);
    expect(built.manifest.volumes).toHaveLength(1);
    expect(warnings).toHaveLength(1);
    expect(built.manifest.apps[1]!.mounts).toEqual([{ volume: 'data', path: '/backup' }]);
  });

  it('rejects a --mount naming an unknown volume, per app and global', async () => {
    const perApp = await failure(['--volume', 'x,kind=empty', 'a.aci', '--mount', 'volume=nope,target=/n'], IMAGES);
    expect(perApp).toBeInstanceOf(UsageError);
    expect(perApp.message).toBe('--mount volume=nope (image a.aci): no --volume named "nope" (defined: x)');
    const global = await failure(['--mount', 'volume=nope,target=/n', 'a.aci'], IMAGES);
    expect(global.message).toBe('--mount volume=nope: no --volume named "nope" (none defined)');
  });

  it('marks the rootfs read-only with --readonly-rootfs', async () => {
    const { built } = await build(['a.aci', '--readonly-rootfs'], IMAGES);
    expect(built.manifest.apps[0]!.readOnlyRootFS).toBe(true);
  });
});

describe('buildPodManifest isolators', () => {
  it('turns the isolator flags into appc isolators', async () => {
    const { built } = await build(
      ['a.aci', '--memory=128M', '--cpu=500m', '--caps-retain=CAP_NET_BIND_SERVICE,kill', '--seccomp', 'mode=remove,errno=EPERM,reboot,@docker/default-blacklist', '--cpu-shares=512', '--oom-score-adj=-100'],
      IMAGES,
    );
    expect(appOf(built.manifest, 'web').isolators).toEqual([
      { name: 'resource/memory', value: { limit: '128M' } },
      { name: 'resource/cpu', value: { limit: '500m' } },
      { name: 'os/linux/capabilities-retain-set', value: { set: ['CAP_NET_BIND_SERVICE', 'CAP_KILL'] } },
      { name: 'os/linux/seccomp-remove-set', value: { set: ['reboot', '@docker/default-blacklist'], errno: 'EPERM' } },
      { name: 'os/linux/cpu-shares', value: 512 },
      { name: 'os/linux/oom-score-adj', value: -100 },
    ]);
  });

  it('writes a seccomp retain-set without errno when none is given, and a caps remove-set', async () => {
    const { built } = await build(['a.aci', '--seccomp=mode=retain,read,write,exit_group', '--caps-remove', 'CAP_MKNOD'], IMAGES);
    expect(appOf(built.manifest, 'web').isolators).toEqual([
      { name: 'os/linux/capabilities-remove-set', value: { set: ['CAP_MKNOD'] } },
      { name: 'os/linux/seccomp-retain-set', value: { set: ['read', 'write', 'exit_group'] } },
    ]);
  });

  it("merges flags over the image's isolators: same name replaced, caps and seccomp pairs replaced", async () => {
    const images = {
      'a.aci': image('example.com/web', {
        isolators: [
          { name: 'resource/memory', value: { limit: '1G' } },
          { name: 'resource/cpu', value: { limit: '2' } },
          { name: 'os/linux/capabilities-retain-set', value: { set: ['CAP_CHOWN'] } },
          { name: 'os/linux/seccomp-retain-set', value: { set: ['@appc.io/all'] } },
          { name: 'os/linux/no-new-privileges', value: true },
        ],
      }),
    };
    const { built } = await build(['a.aci', '--memory', '256Mi', '--caps-remove=CAP_KILL', '--seccomp', 'mode=remove,reboot'], images);
    expect(appOf(built.manifest, 'web').isolators).toEqual([
      { name: 'resource/cpu', value: { limit: '2' } },
      { name: 'os/linux/no-new-privileges', value: true },
      { name: 'resource/memory', value: { limit: '256Mi' } },
      { name: 'os/linux/capabilities-remove-set', value: { set: ['CAP_KILL'] } },
      { name: 'os/linux/seccomp-remove-set', value: { set: ['reboot'] } },
    ]);
  });

  it("keeps the image's isolators when no flag is given", async () => {
    const images = { 'a.aci': image('example.com/web', { isolators: [{ name: 'resource/memory', value: { limit: '1G' } }] }) };
    const { built } = await build(['a.aci'], images);
    expect(appOf(built.manifest, 'web').isolators).toEqual([{ name: 'resource/memory', value: { limit: '1G' } }]);
  });
});

describe('buildPodManifest ports', () => {
  it('records a --port naming an app port', async () => {
    const { built } = await build(['--port', 'http:8080:127.0.0.1', 'a.aci', 'b.aci'], IMAGES);
    expect(built.manifest.ports).toEqual([{ name: 'http', hostPort: 8080, hostIP: '127.0.0.1' }]);
  });

  it('rejects a --port naming no app port, listing the available ones', async () => {
    const err = await failure(['--port', 'https:8443', 'a.aci'], IMAGES);
    expect(err).toBeInstanceOf(UsageError);
    expect(err.message).toBe('--port https:8443: no app has a port named "https" (available: http)');
    const none = await failure(['--port', 'https:8443', 'b.aci'], IMAGES);
    expect(none.message).toMatch(/the images declare no ports/);
  });
});

describe('buildPodManifest run options', () => {
  it('fills RunOptions from the pod flags', async () => {
    const { built } = await build(
      ['--net=host', '--hostname', 'box', '--dns', '1.1.1.1', '--dns-search', 'example.com', '--dns-opt', 'ndots:1', '--dns-domain', 'example.com', '--interactive', '--mds-register', '--stop-timeout=3s', '--uuid-file-save', '/tmp/uuid', '--pull-policy=never', 'a.aci'],
      IMAGES,
    );
    expect(built.runOptions).toEqual({
      interfaceVersion: STAGE1_INTERFACE_VERSION,
      net: { kind: 'host' },
      hostname: 'box',
      dns: { servers: ['1.1.1.1'], search: ['example.com'], options: ['ndots:1'], domain: 'example.com' },
      interactive: true,
      mdsRegister: true,
      stopTimeoutMs: 3000,
      debug: false,
    });
    expect(built.uuidFileSave).toBe('/tmp/uuid');
    expect(built.pullPolicy).toBe('never');
  });

  it('defaults to the default network, a 10 s stop timeout, no dns and pull policy new', async () => {
    const { built } = await build(['a.aci'], IMAGES);
    expect(built.runOptions).toEqual({
      interfaceVersion: STAGE1_INTERFACE_VERSION,
      net: { kind: 'default' },
      interactive: false,
      mdsRegister: false,
      stopTimeoutMs: 10_000,
      debug: false,
    });
    expect(built.pullPolicy).toBe('new');
    expect(built.uuidFileSave).toBeUndefined();
  });
});

describe('buildPodManifest --pod-manifest', () => {
  const web = IMAGES['a.aci'];
  const podFile = {
    acKind: 'PodManifest',
    acVersion: '0.8.11',
    apps: [{ name: 'front', image: { id: idOf('example.com/web') }, app: { exec: ['/bin/sh'], user: '0', group: '0' } }],
  };

  it('uses a valid manifest file as it is and resolves its images by id', async () => {
    const resolved: string[] = [];
    const { built } = await build(['--pod-manifest', '/pod.json', '--net=none'], { 'a.aci': web }, {
      readFile: (p) => (p === '/pod.json' ? JSON.stringify(podFile) : ''),
      resolveImage: async (ref) => {
        resolved.push(ref);
        return fakeStore({ 'a.aci': web })(ref);
      },
    });
    expect(built.manifest).toEqual(podFile);
    expect(resolved).toEqual([idOf('example.com/web')]);
    expect(built.apps.map((a) => a.name)).toEqual(['front']);
    expect(built.runOptions.net).toEqual({ kind: 'none' });
  });

  it('rejects a manifest file that fails validation, naming the file and the problem', async () => {
    const bad = { ...podFile, apps: [{ ...podFile.apps[0], name: 'Front' }] };
    const err = await failure(['--pod-manifest', '/pod.json'], { 'a.aci': web }, { readFile: () => JSON.stringify(bad) });
    expect(err).toBeInstanceOf(ValidationError);
    expect(err.message).toMatch(/^pod manifest \/pod.json: \/apps\/0\/name/);
  });

  it('rejects a manifest whose image is not in the store', async () => {
    const err = await failure(['--pod-manifest', '/pod.json'], {}, { readFile: () => JSON.stringify(podFile) });
    expect(err).toBeInstanceOf(NotFoundError);
    expect(err.message).toMatch(/app "front": image sha512-[0-9a-f]{128} is not in the store/);
  });

  it('rejects an app without an app section whose image has none either', async () => {
    const noApp = { ...podFile, apps: [{ name: 'lib', image: { id: idOf('example.com/lib') } }] };
    const err = await failure(['--pod-manifest', '/pod.json'], { 'lib.aci': image('example.com/lib', null) }, { readFile: () => JSON.stringify(noApp) });
    expect(err).toBeInstanceOf(ValidationError);
    expect(err.message).toMatch(/app "lib" has no app section, nor has its image example.com\/lib/);
  });

  it('reports an unreadable manifest file as not found', async () => {
    const err = await failure(['--pod-manifest', '/nope.json'], {}, {
      readFile: () => {
        throw Object.assign(new Error('no such file'), { code: 'ENOENT' });
      },
    });
    expect(err).toBeInstanceOf(NotFoundError);
    expect(err.message).toBe('read pod manifest /nope.json: ENOENT');
  });
});
