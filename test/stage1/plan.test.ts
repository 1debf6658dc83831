import { describe, expect, it } from 'vitest';

import type { ImageManifest, PodManifest } from '../../src/appc/types.js';
import type { RunOptions } from '../../stage1/contract.js';
import { CLONE_NEWIPC, CLONE_NEWNET, CLONE_NEWNS, CLONE_NEWPID, CLONE_NEWUTS, MS_BIND, MS_RDONLY, MS_REC, MS_REMOUNT } from '../../src/sys/types.js';
import {
  cpuSharesToWeight,
  planPod,
  resolvConf,
  type PlanInput,
  type PodPlan,
} from '../../stage1/plan.js';
import { runFilter } from '../../stage1/seccomp.js';
import { resolveInRootfs } from '../../stage1/rootfs-paths.js';
import { fakeRootfs, type FakeEntry } from './fake-rootfs.js';

const UUID = '6f0b3b8e-2c4a-4f51-9a43-3f6e2b0d9c11';
const POD = '/var/lib/tspod/pods/run/6f0b3b8e-2c4a-4f51-9a43-3f6e2b0d9c11';
const EXE = { file: '', mode: 0o755 };

function tree(prefix: string, extra: Record<string, FakeEntry> = {}): Record<string, FakeEntry> {
  const t: Record<string, FakeEntry> = {
    '/usr/bin/sh': EXE,
    '/usr/sbin/nginx': EXE,
    '/bin': { symlink: 'usr/bin' },
    '/etc/passwd': 'root:x:0:0:root:/root:/bin/sh\nnginx:x:101:101::/var/lib/nginx:/bin/false\n',
    '/etc/group': 'root:x:0:\nnginx:x:101:\nwww:x:33:nginx\n',
    '/var/lib/nginx': { dir: true },
    '/var/run': { symlink: '/run' },
    '/run': { dir: true },
    ...extra,
  };
  return Object.fromEntries(Object.entries(t).map(([p, e]) => [`${prefix}${p}`, e]));
}

function image(name: string, app: ImageManifest['app']): ImageManifest {
  return { acKind: 'ImageManifest', acVersion: '0.8.11', name, ...(app === undefined ? {} : { app }) };
}

const baseRun: RunOptions = { interfaceVersion: 1, net: { kind: 'none' }, interactive: false, mdsRegister: false, stopTimeoutMs: 10_000, debug: false };

function input(over: { manifest?: Partial<PodManifest>; run?: Partial<RunOptions>; images?: Record<string, ImageManifest>; files?: Record<string, FakeEntry> } = {}): PlanInput {
  const manifest: PodManifest = {
    acKind: 'PodManifest',
    acVersion: '0.8.11',
    apps: [
      { name: 'web', image: { id: 'sha512-aaa' }, mounts: [{ volume: 'scratch', path: '/scratch' }] },
      { name: 'tool', image: { id: 'sha512-bbb' }, readOnlyRootFS: true, mounts: [{ volume: 'scratch', path: '/scratch' }, { volume: 'data', path: '/data' }] },
    ],
    volumes: [
      { name: 'scratch', kind: 'empty', mode: '0750', uid: 101, gid: 33 },
      { name: 'data', kind: 'host', source: '/srv/data', readOnly: true },
    ],
    ...over.manifest,
  };
  const images = over.images ?? {
    web: image('example.com/web', {
      exec: ['nginx', '-g', 'daemon off;'],
      user: 'nginx',
      group: 'nginx',
      workingDirectory: '/var/lib/nginx',
      environment: [
        { name: 'FROM_IMAGE', value: 'image' },
        { name: 'LAYER', value: 'image' },
      ],
      isolators: [
        { name: 'resource/memory', value: { limit: '128Mi' } },
        { name: 'resource/cpu', value: { limit: '500m' } },
        { name: 'os/linux/cpu-shares', value: 1024 },
      ],
    }),
    tool: image('example.com/tool', { exec: ['/bin/sh', '-c', 'true'], user: '0', group: '0' }),
  };
  return {
    uuid: UUID,
    podDir: POD,
    manifest,
    apps: {
      web: { imageManifest: images.web ?? image('x', undefined), treeRootfs: '/trees/web/rootfs' },
      tool: { imageManifest: images.tool ?? image('y', undefined), treeRootfs: '/trees/tool/rootfs' },
    },
    runOptions: { ...baseRun, ...over.run },
    view: fakeRootfs({ ...tree('/trees/web/rootfs'), ...tree('/trees/tool/rootfs'), '/srv/data/sub': { dir: true }, ...over.files }),
  };
}

const appOf = (plan: PodPlan, name: string) => {
  const a = plan.apps.find((x) => x.name === name);
  if (a === undefined) throw new Error(`no app ${name}`);
  return a;
};

describe('planPod: a 2-app pod with an empty and a host volume', () => {
  const plan = planPod(input());

  it('is plain JSON data', () => {
    expect(JSON.parse(JSON.stringify(plan))).toEqual(plan);
  });

  it('creates the empty volume under <podDir>/volumes with its mode, uid and gid, once', () => {
    expect(plan.emptyVolumes).toEqual([{ name: 'scratch', path: `${POD}/volumes/scratch`, mode: 0o750, uid: 101, gid: 33 }]);
  });

  it('mounts each rootfs with overlayfs over the rendered tree, upper and work dirs in the pod dir', () => {
    const rootfs = plan.mounts.filter((m) => m.kind === 'rootfs');
    expect(rootfs.map((m) => m.target)).toEqual([`${POD}/root/web`, `${POD}/root/tool`]);
    expect(rootfs[0]).toMatchObject({
      fstype: 'overlay',
      data: `lowerdir=/trees/web/rootfs,upperdir=${POD}/overlay/web/upper,workdir=${POD}/overlay/web/work`,
      copyFallback: { from: '/trees/web/rootfs', to: `${POD}/rootfs-copy/web` },
    });
  });

  it('makes / private, then the pod root, then each app\'s mounts in order', () => {
    expect(plan.mounts.slice(0, 2).map((m) => [m.kind, m.flagNames])).toEqual([
      ['propagation', ['MS_REC', 'MS_PRIVATE']],
      ['pod-root', ['MS_NOSUID', 'MS_NODEV']],
    ]);
    const kinds = plan.mounts.filter((m) => m.app === 'tool').map((m) => m.kind);
    const firstOf = (k: string) => kinds.indexOf(k as never);
    expect(firstOf('rootfs')).toBe(0);
    expect(firstOf('proc')).toBeLessThan(firstOf('protect-readonly'));
    expect(firstOf('dev')).toBeLessThan(firstOf('devpts'));
    expect(kinds[kinds.length - 1]).toBe('readonly-rootfs');
  });

  it('mounts /sys read-only, /dev as tmpfs with the standard nodes, pts, shm, mqueue and console', () => {
    const web = plan.mounts.filter((m) => m.app === 'web');
    expect(web.find((m) => m.kind === 'sysfs')?.flags ?? 0).toSatisfy((f: number) => (f & MS_RDONLY) !== 0);
    const dev = web.find((m) => m.kind === 'dev');
    expect(dev?.data).toBe('mode=755,size=65536k');
    expect(dev?.mknod?.map((d) => [d.path.slice(`${POD}/root/web`.length), d.major, d.minor])).toEqual([
      ['/dev/null', 1, 3],
      ['/dev/zero', 1, 5],
      ['/dev/full', 1, 7],
      ['/dev/random', 1, 8],
      ['/dev/urandom', 1, 9],
      ['/dev/tty', 5, 0],
    ]);
    expect(dev?.symlinks).toContainEqual({ path: `${POD}/root/web/dev/ptmx`, target: 'pts/ptmx' });
    expect(web.find((m) => m.kind === 'devpts')?.data).toContain('newinstance,ptmxmode=0666');
    expect(web.find((m) => m.kind === 'shm')?.fstype).toBe('tmpfs');
    expect(web.find((m) => m.kind === 'mqueue')?.fstype).toBe('mqueue');
    expect(web.find((m) => m.kind === 'console')).toMatchObject({ source: '/dev/null', createTarget: 'file' });
    expect(web.filter((m) => m.kind === 'protect-mask-file').map((m) => m.target)).toContain(`${POD}/root/web/proc/kcore`);
  });

  it('binds the empty volume into both apps and the host volume read-only (bind, then remount)', () => {
    const vols = plan.mounts.filter((m) => m.kind === 'volume' || m.kind === 'volume-readonly');
    expect(vols.map((m) => [m.app, m.kind, m.source, m.target])).toEqual([
      ['web', 'volume', `${POD}/volumes/scratch`, `${POD}/root/web/scratch`],
      ['tool', 'volume', '/srv/data', `${POD}/root/tool/data`],
      ['tool', 'volume-readonly', null, `${POD}/root/tool/data`],
      ['tool', 'volume', `${POD}/volumes/scratch`, `${POD}/root/tool/scratch`],
    ]);
    expect(vols[1]?.flags).toBe(MS_BIND | MS_REC);
    expect(vols[2]?.flags).toBe(MS_BIND | MS_REMOUNT | MS_RDONLY);
  });

  it('remounts a readOnlyRootFS app\'s root read-only after its volumes', () => {
    const last = plan.mounts.filter((m) => m.app === 'tool').at(-1);
    expect(last).toMatchObject({ kind: 'readonly-rootfs', target: `${POD}/root/tool`, flags: MS_BIND | MS_REMOUNT | MS_RDONLY });
    expect(appOf(plan, 'tool').readOnlyRootFS).toBe(true);
    expect(plan.mounts.some((m) => m.app === 'web' && m.kind === 'readonly-rootfs')).toBe(false);
  });

  it('resolves users, exec on PATH and cwd per app', () => {
    const web = appOf(plan, 'web');
    expect(web).toMatchObject({ uid: 101, gid: 101, supplementaryGids: [33], cwd: '/var/lib/nginx' });
    expect(web.exec).toEqual({ path: '/usr/sbin/nginx', argv: ['nginx', '-g', 'daemon off;'] });
    const tool = appOf(plan, 'tool');
    expect(tool).toMatchObject({ uid: 0, gid: 0, cwd: '/', exec: { path: '/bin/sh', argv: ['/bin/sh', '-c', 'true'] } });
  });

  it('gives a non-root app no effective capabilities, no_new_privs and the default seccomp filter', () => {
    const web = appOf(plan, 'web');
    expect(web.capabilities).toMatchObject({ mode: 'default', effective: '0x0', permitted: '0x0' });
    expect(web.capabilities.boundingNames).toHaveLength(14);
    expect(web.noNewPrivileges).toBe(true);
    expect(web.seccomp).toMatchObject({ source: 'default', mode: 'retain', errno: 'EPERM' });
    const prog = Buffer.from(web.seccomp?.programBase64 ?? '', 'base64');
    expect(runFilter(prog, { nr: 165 /* mount */, arch: 0xc000003e }).action).toBe('errno');
    const tool = appOf(plan, 'tool');
    expect(tool.capabilities.effective).toBe(tool.capabilities.bounding);
    expect(tool.noNewPrivileges).toBe(false);
  });

  it('turns resource isolators into cgroup v1 and v2 values', () => {
    const cg = appOf(plan, 'web').cgroup;
    expect(cg.path).toBe(`tspod/pod-${UUID}/app-web`);
    expect(cg.v1).toEqual({
      memory: { 'memory.limit_in_bytes': String(128 * 1024 * 1024) },
      cpu: { 'cpu.cfs_period_us': '100000', 'cpu.cfs_quota_us': '50000', 'cpu.shares': '1024' },
    });
    expect(cg.v2).toEqual({ 'memory.max': String(128 * 1024 * 1024), 'cpu.max': '50000 100000', 'cpu.weight': '39' });
    expect(appOf(plan, 'tool').cgroup.v2).toEqual({});
    expect(plan.cgroup.v2Controllers).toEqual(['cpu', 'memory', 'pids']);
    expect(plan.isolators).toContainEqual({ scope: 'app', app: 'web', name: 'resource/memory', status: 'enforced' });
  });

  it('writes /etc/hosts with the default hostname into images that lack one', () => {
    expect(plan.hostname).toBe('tspod-6f0b3b8e');
    const files = plan.mounts.find((m) => m.kind === 'rootfs' && m.app === 'web')?.files ?? [];
    expect(files.map((f) => f.path)).toEqual([`${POD}/root/web/etc/hosts`]);
    expect(files[0]?.content).toContain('127.0.0.1\tlocalhost localhost.localdomain tspod-6f0b3b8e');
    expect(plan.resolvConf).toBeUndefined();
  });
});

describe('planPod: namespaces', () => {
  it('--net=none adds CLONE_NEWNET to NS, UTS, IPC and PID', () => {
    const plan = planPod(input());
    expect(plan.namespaces.flags).toBe(CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWPID | CLONE_NEWNET);
    expect(plan.namespaces.names).toContain('CLONE_NEWNET');
    expect(plan.net.newNamespace).toBe(true);
  });

  it('--net=host shares the host network namespace', () => {
    const plan = planPod(input({ run: { net: { kind: 'host' } } }));
    expect(plan.namespaces.flags & CLONE_NEWNET).toBe(0);
    expect(plan.namespaces.names).toEqual(['CLONE_NEWNS', 'CLONE_NEWUTS', 'CLONE_NEWIPC', 'CLONE_NEWPID']);
  });

  it('--net=default gets its own namespace and, without --dns, the host name servers that are not on its loopback', () => {
    const i = input({ run: { net: { kind: 'default' } } });
    i.host = { ...i.host, resolvConf: 'search example.com\nnameserver 127.0.0.53\nnameserver 10.0.0.53\n' };
    const plan = planPod(i);
    expect(plan.namespaces.flags & CLONE_NEWNET).toBe(CLONE_NEWNET);
    expect(plan.warnings.join('\n')).not.toMatch(/not implemented/);
    expect(plan.resolvConf).toMatch(/^search example\.com$/m);
    expect(plan.resolvConf).toMatch(/^nameserver 10\.0\.0\.53$/m);
    expect(plan.resolvConf).not.toMatch(/127\.0\.0\.53/);
  });
});

describe('planPod: environment', () => {
  it('applies defaults < --inherit-env < the pod app environment (replacing the image app), then AC_APP_NAME and container', () => {
    const i = input({
      run: {
        inheritedEnv: { LAYER: 'inherited', ONLY_INHERITED: '1', PATH: '/host/bin:/usr/sbin', AC_APP_NAME: 'spoof' },
        mdsRegister: true,
      },
    });
    i.metadataUrl = 'http://10.0.0.1:18112/abc/';
    const podApp = i.manifest.apps[0];
    if (podApp === undefined) throw new Error('no app');
    podApp.app = { ...(i.apps.web?.imageManifest.app ?? { user: '0', group: '0' }), environment: [{ name: 'LAYER', value: 'pod' }] };
    const env = appOf(planPod(i), 'web').env;
    // The pod's app replaced the image's: the image's FROM_IMAGE variable is gone.
    expect(env.FROM_IMAGE).toBeUndefined();
    expect(env).toMatchObject({
      LAYER: 'pod',
      ONLY_INHERITED: '1',
      PATH: '/host/bin:/usr/sbin',
      AC_APP_NAME: 'web',
      AC_METADATA_URL: 'http://10.0.0.1:18112/abc',
      container: 'tspod',
      HOME: '/var/lib/nginx',
      USER: 'nginx',
    });
  });

  it('defaults PATH to the appc value and HOME to /root for root', () => {
    const env = appOf(planPod(input()), 'tool').env;
    expect(env.PATH).toBe('/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin');
    expect(env).toMatchObject({ HOME: '/root', USER: 'root', SHELL: '/bin/sh', AC_APP_NAME: 'tool' });
    expect(env.AC_METADATA_URL).toBeUndefined();
  });
});

describe('planPod: errors', () => {
  it('fails when the working directory is missing in the image (ENOENT)', () => {
    const i = input();
    const web = i.apps.web?.imageManifest.app;
    if (web !== undefined) web.workingDirectory = '/nope';
    expect(() => planPod(i)).toThrow('app web: working directory /nope does not exist in the image');
  });

  it('accepts a working directory inside a host volume when the volume has it', () => {
    const i = input();
    const tool = i.apps.tool?.imageManifest.app;
    if (tool !== undefined) tool.workingDirectory = '/data/sub';
    expect(appOf(planPod(i), 'tool').cwd).toBe('/data/sub');
  });

  it('fails on overlapping mount targets', () => {
    const i = input();
    i.manifest.apps[1]?.mounts?.push({ volume: 'scratch', path: '/data/inner' });
    expect(() => planPod(i)).toThrow(/app tool: mount targets overlap: \/data \(volume data\) and \/data\/inner \(volume scratch\)/);
    const j = input();
    j.manifest.apps[0]?.mounts?.push({ volume: 'data', path: '/scratch/' });
    expect(() => planPod(j)).toThrow(/mount targets overlap/);
  });

  it('fails when a host volume source is missing or goes through a symlink', () => {
    expect(() => planPod(input({ manifest: { volumes: [{ name: 'scratch', kind: 'empty' }, { name: 'data', kind: 'host', source: '/srv/missing' }] } }))).toThrow(
      /host volume source \/srv\/missing does not exist/,
    );
    expect(() =>
      planPod(input({ files: { '/link': { symlink: '/srv' } }, manifest: { volumes: [{ name: 'scratch', kind: 'empty' }, { name: 'data', kind: 'host', source: '/link/data' }] } })),
    ).toThrow(/symbolic link \/link/);
  });

  it('fails when exec is not on PATH in the image', () => {
    const i = input();
    const web = i.apps.web?.imageManifest.app;
    if (web !== undefined) web.exec = ['httpd'];
    expect(() => planPod(i)).toThrow(/app web: executable "httpd" not found on PATH/);
  });

  it('fails on an unknown app isolator and ignores block-bandwidth with a warning', () => {
    const i = input();
    const web = i.apps.web?.imageManifest.app;
    web?.isolators?.push({ name: 'resource/block-bandwidth', value: { default: true, limit: '1M' } });
    const plan = planPod(i);
    expect(plan.warnings.join('\n')).toMatch(/resource\/block-bandwidth.*ignored/);
    expect(plan.isolators).toContainEqual({ scope: 'app', app: 'web', name: 'resource/block-bandwidth', status: 'ignored' });
    web?.isolators?.push({ name: 'os/linux/frobnicate', value: true });
    expect(() => planPod(i)).toThrow(/app web: unknown isolator "os\/linux\/frobnicate"/);
  });

  it('ignores selinux-context when SELinux is off, and refuses apparmor-profile', () => {
    const i = input();
    i.apps.web?.imageManifest.app?.isolators?.push({ name: 'os/linux/selinux-context', value: { user: 'u', role: 'r', type: 't', level: 's0' } });
    expect(planPod(i).warnings.join('\n')).toMatch(/selinux-context.*ignored/);
    i.apps.web?.imageManifest.app?.isolators?.push({ name: 'os/linux/apparmor-profile', value: { profile: 'x' } });
    expect(() => planPod(i)).toThrow(/apparmor-profile/);
  });

  it('fails on an unknown capability or syscall in an app isolator', () => {
    const i = input();
    (i.apps.tool?.imageManifest.app ?? { isolators: [] }).isolators = [{ name: 'os/linux/capabilities-retain-set', value: { set: ['CAP_NOPE'] } }];
    expect(() => planPod(i)).toThrow(/app tool.*CAP_NOPE/);
    const j = input();
    (j.apps.tool?.imageManifest.app ?? { isolators: [] }).isolators = [{ name: 'os/linux/seccomp-retain-set', value: { set: ['read', 'nosuchcall'] } }];
    expect(() => planPod(j)).toThrow(/app tool.*nosuchcall/);
  });
});

describe('planPod: details', () => {
  it('applies pod-level resource isolators to the pod cgroup and allowed sysctls', () => {
    const plan = planPod(
      input({
        manifest: {
          isolators: [
            { name: 'resource/memory', value: { limit: '1Gi' } },
            { name: 'os/unix/sysctl', value: { 'net.ipv4.ip_forward': '1' } },
          ],
        },
      }),
    );
    expect(plan.cgroup.v1.memory).toEqual({ 'memory.limit_in_bytes': String(2 ** 30) });
    expect(plan.cgroup.path).toBe(`tspod/pod-${UUID}`);
    expect(plan.cgroup.v2Controllers).toEqual(expect.arrayContaining(['memory', 'pids']));
    expect(plan.sysctls).toEqual([{ key: 'net.ipv4.ip_forward', path: '/proc/sys/net/ipv4/ip_forward', value: '1' }]);
    expect(() => planPod(input({ run: { net: { kind: 'host' } }, manifest: { isolators: [{ name: 'os/unix/sysctl', value: { 'net.ipv4.ip_forward': '1' } }] } }))).toThrow(
      /sysctl key net.ipv4.ip_forward is not allowed/,
    );
  });

  it('puts the pod and its apps below a delegated cgroup (cgroup v2 under Delegate=yes), else under tspod/', () => {
    const plan = planPod({ ...input(), host: { delegatedCgroup: '/system.slice/web.service/' } });
    expect(plan.cgroup.delegated).toBe('system.slice/web.service');
    expect(plan.cgroup.path).toBe(`system.slice/web.service/pod-${UUID}`);
    expect(plan.apps.map((a) => a.cgroup.path)).toEqual(plan.apps.map((a) => `system.slice/web.service/pod-${UUID}/app-${a.name}`));
    const plain = planPod(input());
    expect(plain.cgroup.delegated).toBeUndefined();
    expect(plain.apps[0]?.cgroup.path).toBe(`tspod/pod-${UUID}/app-${plain.apps[0]?.name}`);
  });

  it('converts cpu shares to weight as systemd does', () => {
    expect([2, 1024, 262144].map(cpuSharesToWeight)).toEqual([1, 39, 10000]);
  });

  it('writes resolv.conf from --dns, copies the host\'s for --dns=host, keeps the image\'s otherwise', () => {
    const w: string[] = [];
    expect(resolvConf({ servers: ['1.1.1.1', '2606:4700::1111'], search: ['example.com'], options: ['ndots:2'] }, undefined, w)).toBe(
      '# generated by tspod\nsearch example.com\nnameserver 1.1.1.1\nnameserver 2606:4700::1111\noptions ndots:2\n',
    );
    expect(resolvConf({ servers: ['host'], search: [], options: [] }, 'nameserver 9.9.9.9\n', w)).toBe('nameserver 9.9.9.9\n');
    expect(resolvConf({ servers: ['none'], search: [], options: [] }, undefined, w)).toBeUndefined();
    expect(() => resolvConf({ servers: ['not-an-ip'], search: [], options: [] }, undefined, w)).toThrow(/not an IP address/);
    const plan = planPod(input({ run: { dns: { servers: ['8.8.8.8'], search: [], options: [] }, hostname: 'box.local' } }));
    expect(plan.hostname).toBe('box.local');
    expect(plan.mounts.find((m) => m.kind === 'rootfs')?.files?.map((f) => f.path)).toEqual([`${POD}/root/web/etc/hosts`, `${POD}/root/web/etc/resolv.conf`]);
  });

  it('does not touch an image\'s own /etc/hosts', () => {
    const plan = planPod(input({ files: { '/trees/web/rootfs/etc/hosts': '127.0.0.1 localhost\n' } }));
    expect(plan.mounts.find((m) => m.kind === 'rootfs' && m.app === 'web')?.files).toEqual([]);
  });

  it('mounts a volume whose target is under an image symlink inside the rootfs', () => {
    const i = input();
    i.manifest.apps[0]?.mounts?.push({ volume: 'data', path: '/var/run/data' });
    const plan = planPod(i);
    expect(plan.mounts.filter((m) => m.app === 'web' && m.kind === 'volume').map((m) => m.target)).toContain(`${POD}/root/web/run/data`);
  });

  it('gives an image mount point without a volume an implicit empty volume, with a warning', () => {
    const i = input();
    const web = i.apps.web?.imageManifest.app;
    if (web !== undefined) web.mountPoints = [{ name: 'cache', path: '/cache' }];
    const plan = planPod(i);
    expect(plan.emptyVolumes.map((v) => v.name)).toContain('web-cache');
    expect(plan.warnings.join('\n')).toMatch(/mount point cache \(\/cache\) has no volume/);
  });

  it('bind-mounts a copy when overlayfs is not supported', () => {
    const i = input();
    i.host = { overlaySupported: false };
    const m = planPod(i).mounts.find((x) => x.kind === 'rootfs');
    expect(m).toMatchObject({ source: `${POD}/rootfs-copy/web`, fstype: null, flags: MS_BIND | MS_REC });
  });

  it('marks the console for the terminal with --interactive and refuses it for two apps', () => {
    expect(() => planPod(input({ run: { interactive: true } }))).toThrow(/--interactive needs exactly one app/);
    const i = input({ run: { interactive: true } });
    i.manifest.apps = i.manifest.apps.slice(1);
    expect(planPod(i).mounts.find((m) => m.kind === 'console')).toMatchObject({ sourceIsTerminal: true, target: `${POD}/root/tool/dev/console` });
  });
});

describe('resolveInRootfs', () => {
  const view = fakeRootfs({ '/r/usr/bin/sh': EXE, '/r/bin': { symlink: '/usr/bin' }, '/r/up': { symlink: '../../../etc' }, '/r/loop': { symlink: 'loop' } });

  it('keeps absolute and .. links inside the root', () => {
    expect(resolveInRootfs(view, '/r', '/bin/sh')).toMatchObject({ path: '/usr/bin/sh', info: { kind: 'file' } });
    expect(resolveInRootfs(view, '/r', '/up/passwd')).toMatchObject({ path: '/etc/passwd', info: undefined });
  });

  it('stops a symlink loop with ELOOP', () => {
    expect(() => resolveInRootfs(view, '/r', '/loop/x')).toThrow(/ELOOP/);
  });
});
