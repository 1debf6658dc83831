// The `tspod run` / `tspod prepare` argument grammar (rkt/cli_apps.go) and flag value checks.
import { describe, expect, it } from 'vitest';

import { UsageError } from '../../src/errors.js';
import { RUN_FLAGS, parseRunArgs } from '../../src/pod/run-args.js';

function usageError(argv: string[]): UsageError {
  try {
    parseRunArgs(argv);
  } catch (err) {
    if (err instanceof UsageError) return err;
    throw err;
  }
  throw new Error(`expected a UsageError for ${argv.join(' ')}`);
}

describe('parseRunArgs grammar', () => {
  it('binds per-app flags to the preceding image, for two images', () => {
    const { apps } = parseRunArgs(['a.aci', '--name', 'web', '--user=100', 'b.aci', '--name=db', '--group', '200']);
    expect(apps).toHaveLength(2);
    expect(apps[0]).toMatchObject({ image: 'a.aci', name: 'web', user: '100' });
    expect(apps[0]!.group).toBeUndefined();
    expect(apps[1]).toMatchObject({ image: 'b.aci', name: 'db', group: '200' });
    expect(apps[1]!.user).toBeUndefined();
  });

  it('takes arguments after -- up to --- for the preceding image', () => {
    const { apps } = parseRunArgs(['a.aci', '--exec', '/bin/sh', '--', '-c', 'echo hi', '--name', '---', 'b.aci', '--name', 'b']);
    expect(apps[0]).toMatchObject({ exec: '/bin/sh', args: ['-c', 'echo hi', '--name'] });
    expect(apps[0]!.name).toBeUndefined();
    expect(apps[1]).toMatchObject({ image: 'b.aci', name: 'b', args: [] });
  });

  it('takes arguments after -- to the end when no --- follows', () => {
    const { apps } = parseRunArgs(['a.aci', '--', 'b.aci', '--x']);
    expect(apps).toHaveLength(1);
    expect(apps[0]!.args).toEqual(['b.aci', '--x']);
  });

  it('applies --mount before any image to the pod and after an image to that app', () => {
    const { pod, apps } = parseRunArgs([
      '--volume', 'data,kind=empty',
      '--mount', 'volume=data,target=/data',
      'a.aci', '--mount=volume=data,target=/srv',
      'b.aci',
    ]);
    expect(pod.mounts).toEqual([{ volume: 'data', target: '/data' }]);
    expect(apps[0]!.mounts).toEqual([{ volume: 'data', target: '/srv' }]);
    expect(apps[1]!.mounts).toEqual([]);
  });

  it('treats --flag=value and --flag value alike', () => {
    const a = parseRunArgs(['--net=host', '--hostname=h', 'a.aci', '--memory=128M']);
    const b = parseRunArgs(['--net', 'host', '--hostname', 'h', 'a.aci', '--memory', '128M']);
    expect(b).toEqual(a);
    expect(a.pod.net).toEqual({ kind: 'host' });
    expect(a.apps[0]!.memory).toBe('128M');
  });

  it('takes a negative number as the value of --oom-score-adj', () => {
    expect(parseRunArgs(['a.aci', '--oom-score-adj', '-500']).apps[0]!.oomScoreAdj).toBe(-500);
  });

  it('reads boolean flags bare or with =bool, never from the next argument', () => {
    const { pod, apps } = parseRunArgs(['--inherit-env', '--mds-register=false', 'a.aci', '--readonly-rootfs', 'b.aci', '--readonly-rootfs=false']);
    expect(pod.inheritEnv).toBe(true);
    expect(pod.mdsRegister).toBe(false);
    expect(apps.map((a) => a.readOnlyRootFS)).toEqual([true, false]);
    expect(usageError(['--interactive=maybe', 'a.aci']).message).toMatch(/--interactive "maybe": must be true or false/);
  });

  it('makes --annotation, --user-label and --set-env pod-wide before the images and per app after', () => {
    const { pod, apps } = parseRunArgs([
      '--annotation', 'example.com/team=a', '--user-label', 'tier=web', '--set-env', 'A=1', '--label', 'env=prod',
      'a.aci', '--annotation=example.com/role=x', '--user-label', 'k=v', '--set-env', 'B=2',
    ]);
    expect(pod.annotations).toEqual([{ name: 'example.com/team', value: 'a' }]);
    expect(pod.userLabels).toEqual({ tier: 'web', env: 'prod' });
    expect(pod.setEnv).toEqual([{ name: 'A', value: '1' }]);
    expect(apps[0]!.annotations).toEqual([{ name: 'example.com/role', value: 'x' }]);
    expect(apps[0]!.userLabels).toEqual({ k: 'v' });
    expect(apps[0]!.setEnv).toEqual([{ name: 'B', value: '2' }]);
  });

  it('accepts pod flags after an image (they still apply to the pod)', () => {
    const { pod } = parseRunArgs(['a.aci', '--net=none', '--stop-timeout=1m30s']);
    expect(pod.net).toEqual({ kind: 'none' });
    expect(pod.stopTimeoutMs).toBe(90_000);
  });

  it('fills pod defaults: net default, pull policy new, stop timeout 10s', () => {
    const { pod } = parseRunArgs(['a.aci']);
    expect(pod).toMatchObject({ net: { kind: 'default' }, pullPolicy: 'new', stopTimeoutMs: 10_000, interactive: false, passthrough: [] });
  });

  it('passes --insecure-options through in either spelling', () => {
    expect(parseRunArgs(['--insecure-options', 'image', 'a.aci']).pod.passthrough).toEqual(['--insecure-options=image']);
    expect(parseRunArgs(['--insecure-options=image,tls', 'a.aci']).pod.passthrough).toEqual(['--insecure-options=image,tls']);
  });

  it('keeps values containing "=" and empty environment values', () => {
    const { apps } = parseRunArgs(['a.aci', '--environment', 'OPTS=a=b', '--environment=EMPTY=']);
    expect(apps[0]!.environment).toEqual([
      { name: 'OPTS', value: 'a=b' },
      { name: 'EMPTY', value: '' },
    ]);
  });
});

describe('parseRunArgs flag values', () => {
  it('parses --volume host and empty with defaults', () => {
    const { pod } = parseRunArgs([
      '--volume', 'data,kind=host,source=/srv/data,readOnly=true,recursive=false',
      '--volume=scratch,kind=empty,mode=0700,uid=10,gid=20',
      '--volume', 'tmp,kind=empty',
      'a.aci',
    ]);
    expect(pod.volumes).toEqual([
      { name: 'data', kind: 'host', source: '/srv/data', readOnly: true, recursive: false },
      { name: 'scratch', kind: 'empty', mode: '0700', uid: 10, gid: 20 },
      { name: 'tmp', kind: 'empty', mode: '0755', uid: 0, gid: 0 },
    ]);
  });

  it.each([
    ['data,kind=host', /host volume needs source/],
    ['data,kind=host,source=rel/path', /must be an absolute path/],
    ['data,kind=empty,source=/x', /takes no source/],
    ['data,kind=host,source=/x,mode=0755', /mode is only allowed for kind=empty/],
    ['data,kind=nfs', /kind must be host or empty/],
    ['Data,kind=empty', /must be an ac name/],
    ['data,kind=empty,colour=red', /unknown key "colour"/],
    ['data,kind=empty,mode=999', /must be octal/],
  ])('rejects --volume %s', (value, message) => {
    const err = usageError(['--volume', value, 'a.aci']);
    expect(err.message).toMatch(/^--volume /);
    expect(err.message).toMatch(message);
  });

  it('rejects a volume defined twice', () => {
    expect(usageError(['--volume', 'd,kind=empty', '--volume', 'd,kind=empty', 'a.aci']).message).toMatch(/--volume d: .*already defined/);
  });

  it.each([
    ['volume=data', /volume=NAME,target=/],
    ['volume=data,target=rel', /must be an absolute path/],
    ['volume=data,target=/x,extra=1', /unknown key "extra"/],
  ])('rejects --mount %s', (value, message) => {
    expect(usageError(['a.aci', '--mount', value]).message).toMatch(message);
  });

  it('parses --port NAME:HOSTPORT[:HOSTIP] and rkt\'s NAME:HOSTIP:HOSTPORT', () => {
    const { pod } = parseRunArgs(['--port', 'http:8080', '--port=https:8443:127.0.0.1', '--port', 'dns:::1:5353', 'a.aci']);
    expect(pod.ports).toEqual([
      { name: 'http', hostPort: 8080 },
      { name: 'https', hostPort: 8443, hostIP: '127.0.0.1' },
      { name: 'dns', hostPort: 5353, hostIP: '::1' },
    ]);
    expect(usageError(['--port', 'http:99999', 'a.aci']).message).toMatch(/--port "99999": must be an integer in 1..65535/);
    expect(usageError(['--port', 'http', 'a.aci']).message).toMatch(/^--port "http"/);
  });

  it('parses --net names and rejects host combined with others', () => {
    expect(parseRunArgs(['--net=a,b', 'x.aci']).pod.net).toEqual({ kind: 'named', names: ['a', 'b'] });
    expect(usageError(['--net=host,a', 'x.aci']).message).toMatch(/--net "host,a": "host" cannot be combined/);
  });

  it('collects --dns servers and rejects a non-IP', () => {
    const { pod } = parseRunArgs(['--dns', '1.1.1.1', '--dns=8.8.8.8,9.9.9.9', '--dns-search', 'a.example', '--dns-opt', 'ndots:2', '--dns-domain', 'example', 'a.aci']);
    expect(pod).toMatchObject({ dns: ['1.1.1.1', '8.8.8.8', '9.9.9.9'], dnsSearch: ['a.example'], dnsOpt: ['ndots:2'], dnsDomain: 'example' });
    expect(usageError(['--dns', 'resolver.example', 'a.aci']).message).toMatch(/--dns "resolver.example": .*not an IP/);
    expect(usageError(['--dns', 'host', '--dns', '1.1.1.1', 'a.aci']).message).toMatch(/--dns: "host" and "none" cannot be combined/);
  });

  it('normalises --caps-retain names and rejects unknown capabilities', () => {
    expect(parseRunArgs(['a.aci', '--caps-retain=net_admin,CAP_SYS_ADMIN,cap_chown']).apps[0]!.capsRetain).toEqual([
      'CAP_NET_ADMIN',
      'CAP_SYS_ADMIN',
      'CAP_CHOWN',
    ]);
    expect(usageError(['a.aci', '--caps-remove', 'CAP_FLY']).message).toMatch(/--caps-remove "CAP_FLY": "CAP_FLY" is not a Linux capability/);
    expect(usageError(['a.aci', '--caps-retain', 'CAP_KILL', '--caps-remove', 'CAP_CHOWN']).message).toMatch(/cannot both be given/);
  });

  it('parses --seccomp with mode, errno, syscalls and groups', () => {
    expect(parseRunArgs(['a.aci', '--seccomp', 'mode=remove,errno=EPERM,reboot,@docker/default-blacklist']).apps[0]!.seccomp).toEqual({
      mode: 'remove',
      errno: 'EPERM',
      set: ['reboot', '@docker/default-blacklist'],
    });
    expect(parseRunArgs(['a.aci', '--seccomp=mode=retain,@rkt/default-whitelist']).apps[0]!.seccomp).toEqual({ mode: 'retain', set: ['@rkt/default-whitelist'] });
    expect(usageError(['a.aci', '--seccomp', 'reboot']).message).toMatch(/--seccomp "reboot": needs mode=retain or mode=remove/);
    expect(usageError(['a.aci', '--seccomp', 'mode=drop,reboot']).message).toMatch(/mode must be retain or remove/);
    expect(usageError(['a.aci', '--seccomp', 'mode=remove,errno=eperm,reboot']).message).toMatch(/errno "eperm"/);
    expect(usageError(['a.aci', '--seccomp', 'mode=remove']).message).toMatch(/at least one syscall/);
  });

  it.each([
    ['--memory', '128K', /--memory "128K": .*lowercase "k"/],
    ['--memory', 'lots', /--memory "lots": must be a quantity/],
    ['--cpu', '0', /--cpu "0": must be greater than zero/],
    ['--cpu-shares', '1', /--cpu-shares "1": must be an integer in 2..262144/],
    ['--oom-score-adj', '1001', /--oom-score-adj "1001": must be an integer in -1000..1000/],
    ['--supplementary-gids', '1,x', /--supplementary-gids "x"/],
    ['--exec', 'bin/app', /--exec "bin\/app": must be an absolute path or a command name/],
    ['--working-dir', 'rel', /--working-dir "rel": must be an absolute path/],
    ['--name', 'Web_App', /--name "Web_App": must be an ac name/],
    ['--environment', '1BAD=x', /--environment "1BAD=x": "1BAD" is not a valid environment variable name/],
    ['--annotation', 'Bad Name=x', /--annotation "Bad Name=x"/],
  ])('rejects %s %s', (flag, value, message) => {
    expect(usageError(['a.aci', flag, value]).message).toMatch(message);
  });

  it('accepts k8s-style quantities and keeps their spelling', () => {
    const { apps } = parseRunArgs(['a.aci', '--memory=1Gi', '--cpu=500m', '--cpu-shares=512', '--supplementary-gids=1,2']);
    expect(apps[0]).toMatchObject({ memory: '1Gi', cpu: '500m', cpuShares: 512, supplementaryGIDs: [1, 2] });
  });

  it('rejects a bad --stop-timeout and --pull-policy naming the flag', () => {
    expect(usageError(['--stop-timeout=10', 'a.aci']).message).toMatch(/--stop-timeout: invalid duration/);
    expect(usageError(['--pull-policy=always', 'a.aci']).message).toMatch(/--pull-policy "always": must be one of never, new, update/);
  });
});

describe('parseRunArgs errors', () => {
  it('rejects an unknown flag, naming it and suggesting close ones', () => {
    const err = usageError(['a.aci', '--mem=1G']);
    expect(err.message).toBe('unknown flag --mem (after image a.aci)');
    expect(err.suggestions).toContain('--memory');
  });

  it('rejects short flags', () => {
    expect(usageError(['-i', 'a.aci']).message).toMatch(/unknown flag -i/);
  });

  it('rejects a per-app flag before any image, except --mount', () => {
    const err = usageError(['--exec', '/bin/sh', 'a.aci']);
    expect(err.message).toMatch(/^--exec must follow the image it applies to/);
    expect(() => parseRunArgs(['--volume', 'd,kind=empty', '--mount', 'volume=d,target=/d', 'a.aci'])).not.toThrow();
  });

  it('rejects a flag without its value at the end', () => {
    expect(usageError(['a.aci', '--name']).message).toMatch(/^--name needs a value/);
  });

  it('rejects --interactive with two images', () => {
    expect(usageError(['--interactive', 'a.aci', 'b.aci']).message).toMatch(/--interactive works with one image only, got 2/);
  });

  it.each(['host', 'none'])('rejects --port with --net=%s', (net) => {
    expect(usageError(['--net', net, '--port', 'http:80', 'a.aci']).message).toBe(`--port cannot be used with --net=${net}`);
  });

  it('rejects --pod-manifest together with images or manifest-changing flags', () => {
    expect(usageError(['--pod-manifest', 'pod.json', 'a.aci']).message).toMatch(/--pod-manifest cannot be combined with images \(a.aci\)/);
    expect(usageError(['--pod-manifest', 'pod.json', '--volume', 'd,kind=empty']).message).toMatch(/--pod-manifest cannot be combined with --volume/);
    expect(parseRunArgs(['--pod-manifest', 'pod.json', '--net=host']).pod.podManifest).toBe('pod.json');
  });

  it('rejects no image at all', () => {
    expect(usageError([]).message).toBe('no image given');
    expect(usageError(['--net=host']).message).toBe('no image given');
  });

  it('rejects -- before any image and a stray ---', () => {
    expect(usageError(['--', 'x']).message).toMatch(/"--" must follow an image/);
    expect(usageError(['a.aci', '---']).message).toMatch(/"---" ends the arguments/);
  });

  it('rejects a non-repeatable flag given twice for one image', () => {
    expect(usageError(['a.aci', '--user', '1', '--user', '2']).message).toBe('--user given twice for image a.aci');
    expect(() => parseRunArgs(['a.aci', '--user', '1', 'b.aci', '--user', '2'])).not.toThrow();
  });
});

describe('RUN_FLAGS', () => {
  it('lists every flag once, with a description', () => {
    const names = RUN_FLAGS.map((f) => f.name);
    expect(new Set(names).size).toBe(names.length);
    for (const f of RUN_FLAGS) expect(f.description.length).toBeGreaterThan(5);
  });

  it('has a value-taking flag accept both spellings and a boolean flag accept the bare form', () => {
    for (const f of RUN_FLAGS.filter((x) => !x.takesValue)) {
      const argv = f.scope === 'app' ? ['a.aci', `--${f.name}`] : [`--${f.name}`, 'a.aci'];
      expect(() => parseRunArgs(argv), f.name).not.toThrow();
    }
  });
});
