// The real exec step: `node dist/stage1/exec-app-main.js STEP.json` chroots into a busybox rootfs,
// changes credentials, capabilities, no_new_privs and seccomp, and execs a shell that reports
// what it got from /proc. Needs root (chroot, setresuid, capset, mount of /proc for the report)
// and busybox-static's /bin/busybox.
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { APPC_DEFAULT_CAPABILITY_MASK, capabilitySetsToJson, type CapabilitySets } from '../../stage1/capabilities.js';
import { EXIT_BAD_STEP, EXIT_EXEC, type ExecStep } from '../../stage1/exec-app.js';
import { buildSeccompFilter, seccompForApp } from '../../stage1/seccomp.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const MAIN = path.join(ROOT, 'dist', 'stage1', 'exec-app-main.js');
const BUSYBOX = '/bin/busybox';
const canRun = process.geteuid?.() === 0 && fs.existsSync(BUSYBOX) && process.arch === 'x64';
const APPLETS = ['sh', 'cat', 'id', 'grep', 'env', 'pwd', 'mkdir', 'ls', 'true', 'sort', 'test'];

const CAP_NET_BIND_SERVICE = 10;
const CAP_CHOWN = 0;

let base: string;
let rootfs: string;
let hostOnly: string;
let procMounted = false;

function sets(partial: Partial<CapabilitySets>): CapabilitySets {
  return { bounding: 0n, effective: 0n, permitted: 0n, inheritable: 0n, ambient: 0n, ...partial };
}

function hex16(mask: bigint): string {
  return mask.toString(16).padStart(16, '0');
}

/** A shell script printing `key=value` lines about the app process itself ($$ is the exec'd sh). */
function reportScript(): string {
  return [
    'echo "uid=$(id -u) gid=$(id -g) groups=$(id -G)"',
    'echo "cwd=$(pwd)"',
    'echo "FOO=$FOO"',
    "grep -E '^(Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs|Seccomp):' /proc/$$/status | sed 's/:[[:space:]]*/=/'",
    `if test -e ${hostOnly}; then echo host=visible; else echo host=hidden; fi`,
    'mkdir /tmp/made 2>&1 && echo mkdir=ok',
    'ls / | sort | tr "\\n" " "; echo',
  ].join('\n');
}

function parseReport(stdout: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of stdout.split('\n')) {
    const i = line.indexOf('=');
    if (i > 0) out[line.slice(0, i)] = line.slice(i + 1).trim();
  }
  return out;
}

function writeStep(name: string, step: ExecStep | Record<string, unknown>): string {
  const file = path.join(base, `${name}.json`);
  fs.writeFileSync(file, JSON.stringify(step));
  return file;
}

function runStep(file: string): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [MAIN, file], { encoding: 'utf8', timeout: 30_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function baseStep(over: Partial<ExecStep>): ExecStep {
  return {
    rootfs,
    cwd: '/work',
    uid: 0,
    gid: 0,
    supplementaryGids: [],
    capabilities: capabilitySetsToJson(sets({})),
    noNewPrivileges: false,
    exec: ['sh', '-c', reportScript()],
    env: { PATH: '/bin', FOO: 'bar baz' },
    ...over,
  };
}

beforeAll(() => {
  if (!canRun) return;
  if (!fs.existsSync(MAIN)) throw new Error(`${MAIN} is missing: the vitest global setup compiles stage1/ to dist/ (or run: npx tsc -p tsconfig.json)`);
  base = fs.mkdtempSync(path.join(os.tmpdir(), 'tspod-exec-app-'));
  rootfs = path.join(base, 'rootfs');
  for (const dir of ['bin', 'proc', 'tmp', 'work']) fs.mkdirSync(path.join(rootfs, dir), { recursive: true });
  fs.chmodSync(path.join(rootfs, 'tmp'), 0o1777);
  fs.copyFileSync(BUSYBOX, path.join(rootfs, 'bin', 'busybox'));
  fs.chmodSync(path.join(rootfs, 'bin', 'busybox'), 0o755);
  for (const applet of [...APPLETS, 'sed', 'tr', 'rmdir']) fs.symlinkSync('busybox', path.join(rootfs, 'bin', applet));
  hostOnly = path.join(base, 'host-only-file');
  fs.writeFileSync(hostOnly, 'outside the rootfs');
  // The app reads its own /proc/<pid>/status: give the rootfs a procfs (the pod's mount plan does this in real pods).
  execFileSync('mount', ['-t', 'proc', 'proc', path.join(rootfs, 'proc')]);
  procMounted = true;
});

afterAll(() => {
  if (!canRun || base === undefined) return;
  if (procMounted) execFileSync('umount', [path.join(rootfs, 'proc')]);
  fs.rmSync(base, { recursive: true, force: true });
});

describe('exec-app-main.js (real kernel)', () => {
  it.skipIf(!canRun)('root app with the appc default set and rkt default whitelist (needs root, busybox-static, x86_64)', () => {
    const caps = sets({ bounding: APPC_DEFAULT_CAPABILITY_MASK, effective: APPC_DEFAULT_CAPABILITY_MASK, permitted: APPC_DEFAULT_CAPABILITY_MASK });
    const filter = seccompForApp([], 'test').filter;
    const step = baseStep({ capabilities: capabilitySetsToJson(caps), seccompProgramBase64: filter?.program.toString('base64'), supplementaryGids: [0, 10] });
    const r = runStep(writeStep('root-default', step));
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const report = parseReport(r.stdout);
    expect(report).toMatchObject({
      uid: '0 gid=0 groups=0 10',
      cwd: '/work',
      FOO: 'bar baz',
      CapBnd: hex16(APPC_DEFAULT_CAPABILITY_MASK),
      CapEff: hex16(APPC_DEFAULT_CAPABILITY_MASK),
      CapPrm: hex16(APPC_DEFAULT_CAPABILITY_MASK),
      CapInh: hex16(0n),
      CapAmb: hex16(0n),
      NoNewPrivs: '0',
      Seccomp: '2',
      host: 'hidden',
      mkdir: 'ok',
    });
    expect(r.stdout).toContain('bin proc tmp work');
    fs.rmdirSync(path.join(rootfs, 'tmp', 'made'));
  });

  it.skipIf(!canRun)('non-root app: groups, ambient CAP_NET_BIND_SERVICE, no_new_privs, remove-set mkdir with EACCES (needs root)', () => {
    const bind = 1n << BigInt(CAP_NET_BIND_SERVICE);
    const caps = sets({ bounding: bind | (1n << BigInt(CAP_CHOWN)), effective: bind, permitted: bind, inheritable: bind, ambient: bind });
    const filter = buildSeccompFilter({ mode: 'remove', syscalls: ['mkdir', 'mkdirat'], errno: 'EACCES', arch: 'x86_64' });
    const step = baseStep({
      uid: 1000,
      gid: 1000,
      supplementaryGids: [27, 1000],
      capabilities: capabilitySetsToJson(caps),
      noNewPrivileges: true,
      seccompProgramBase64: filter.program.toString('base64'),
      cwd: '/tmp',
    });
    const r = runStep(writeStep('non-root', step));
    expect(r.status).toBe(0);
    const report = parseReport(r.stdout);
    expect(report).toMatchObject({
      uid: '1000 gid=1000 groups=1000 27',
      cwd: '/tmp',
      CapBnd: hex16(caps.bounding),
      CapEff: hex16(bind),
      CapPrm: hex16(bind),
      CapInh: hex16(bind),
      CapAmb: hex16(bind),
      NoNewPrivs: '1',
      Seccomp: '2',
      host: 'hidden',
    });
    expect(report.mkdir).toBeUndefined();
    expect(r.stdout).toMatch(/mkdir: can't create directory '\/tmp\/made': Permission denied/);
  });

  it.skipIf(!canRun)('non-root app with only a bounding set ends with no capabilities and no filter (needs root)', () => {
    const step = baseStep({ uid: 65534, gid: 65534, capabilities: capabilitySetsToJson(sets({ bounding: APPC_DEFAULT_CAPABILITY_MASK })) });
    const r = runStep(writeStep('nobody', step));
    expect(r.status).toBe(0);
    expect(parseReport(r.stdout)).toMatchObject({
      uid: '65534 gid=65534 groups=65534',
      CapBnd: hex16(APPC_DEFAULT_CAPABILITY_MASK),
      CapEff: hex16(0n),
      CapPrm: hex16(0n),
      CapAmb: hex16(0n),
      NoNewPrivs: '0',
      Seccomp: '0',
    });
  });

  it.skipIf(!canRun)(`a missing exec path exits ${EXIT_EXEC} with "tspod exec: execve ...: ENOENT" (needs root)`, () => {
    const r = runStep(writeStep('missing', baseStep({ exec: ['/bin/no-such-app'] })));
    expect(r.status).toBe(EXIT_EXEC);
    expect(r.stderr).toBe('tspod exec: execve /bin/no-such-app: ENOENT (no such file or directory)\n');
    expect(r.stdout).toBe('');
  });

  it.skipIf(!canRun)(`a missing rootfs exits ${EXIT_EXEC} naming chroot and the path (needs root)`, () => {
    const r = runStep(writeStep('no-rootfs', baseStep({ rootfs: path.join(base, 'absent') })));
    expect(r.status).toBe(EXIT_EXEC);
    expect(r.stderr).toMatch(/^tspod exec: chroot .*absent: ENOENT/);
  });

  it.skipIf(!canRun)(`a malformed step exits ${EXIT_BAD_STEP} naming the bad fields (needs root for the build dir)`, () => {
    const r = runStep(writeStep('bad', { ...baseStep({}), uid: 'root', exec: [] }));
    expect(r.status).toBe(EXIT_BAD_STEP);
    expect(r.stderr).toMatch(/^tspod exec: exec step .*bad\.json: invalid: \/uid: must be an integer id; \/exec: must be a non-empty array of strings\n$/);
  });

  it.skipIf(!canRun)('reads the step from fd 3 when no path is given, and the app does not inherit fd 3 (needs root)', () => {
    const file = writeStep('fd3', baseStep({ exec: ['sh', '-c', 'if test -L /proc/$$/fd/3; then echo fd3=open; else echo fd3=closed; fi'] }));
    const fd = fs.openSync(file, 'r');
    try {
      const r = spawnSync(process.execPath, [MAIN], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe', fd] });
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
      expect(r.stdout).toBe('fd3=closed\n');
    } finally {
      fs.closeSync(fd);
    }
  });
});
