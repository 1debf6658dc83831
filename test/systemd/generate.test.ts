// `tspod generate systemd` through the CLI, its units checked with `systemd-analyze verify`.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { POD_FILES } from '../../stage1/contract.js';
import { TspodEnv, BIN } from '../support/cli.js';
import { fabricatePod } from '../support/pods.js';
import { hasCommand } from '../support/tools.js';
import { formatDuration, imageShortName, runFlagsForOptions, type GeneratedUnit } from '../../src/systemd/generate.js';

const hasAnalyze = hasCommand('systemd-analyze', ['--version']);


function verify(file: string): string {
  const result = spawnSync('systemd-analyze', ['verify', '--man=no', file], { encoding: 'utf8', timeout: 60_000 });
  return `${result.stdout}${result.stderr}`.trim();
}

describe('tspod generate systemd', () => {
  let env: TspodEnv;
  let cwd: string;
  beforeAll(() => {
    env = new TspodEnv();
    cwd = path.join(env.base, 'work');
    fs.mkdirSync(cwd, { recursive: true });
    fs.writeFileSync(path.join(cwd, 'web.aci'), '');
  });
  afterAll(() => env?.cleanup());

  const generate = (args: string[]) => spawnSync(process.execPath, env.argv(['generate', 'systemd', ...args]), { cwd, encoding: 'utf8', timeout: 60_000 });

  it('prints a unit for images: ExecStart is this node and bin/run.js with the non-default global flags, file paths made absolute', () => {
    const result = generate(['./web.aci', 'example.com/sidecar:1.0', '--json']);
    expect(result.status, result.stderr).toBe(0);
    const out = JSON.parse(result.stdout) as GeneratedUnit;
    expect(out.unit).toBe('tspod-web-sidecar.service');
    expect(out.execStart).toEqual([
      process.execPath,
      fs.realpathSync(BIN),
      `--dir=${env.dir}`,
      `--local-config=${env.localConfig}`,
      `--system-config=${env.systemConfig}`,
      'run',
      '--stop-timeout=10s',
      path.join(cwd, 'web.aci'),
      'example.com/sidecar:1.0',
    ]);
    expect(out.content).toContain('\nTimeoutStopSec=20\n');
    // An image by name may have to be fetched first.
    expect(out.content).toContain('\nTimeoutStartSec=900\n');
    expect(out.content).toContain('\nRestart=on-failure\n');
  });

  it.skipIf(!hasAnalyze)('--files writes tspod-NAME.service into --output-dir, and systemd-analyze verify accepts it (needs systemd-analyze)', () => {
    const outDir = path.join(env.base, 'units');
    const result = generate(['./web.aci', '--name', 'web', '--files', '--output-dir', outDir, '--restart=always', '--stop-timeout=30s', '--net=none']);
    expect(result.status, result.stderr).toBe(0);
    const file = path.join(outDir, 'tspod-web.service');
    expect(result.stdout.trim()).toBe(file);
    const content = fs.readFileSync(file, 'utf8');
    expect(content).toContain('run --net=none --stop-timeout=30s ');
    expect(content).toContain('\nTimeoutStopSec=40\n');
    expect(content).toContain('\nRestart=always\n');
    expect(verify(file)).toBe('');
  });

  it.skipIf(!hasAnalyze)('for a pod UUID: each start runs a new pod from a copy of its manifest, with its run options as flags (needs systemd-analyze)', () => {
    const pod = fabricatePod(env.dir, { state: 'exited', apps: [{ name: 'web' }, { name: 'db' }] });
    fs.writeFileSync(
      path.join(pod.path, POD_FILES.runOptions),
      JSON.stringify({ interfaceVersion: 1, net: { kind: 'none' }, hostname: 'h1', interactive: false, mdsRegister: true, stopTimeoutMs: 2500, debug: false }),
    );
    const outDir = path.join(env.base, 'pod-units');
    const result = generate([pod.uuid.slice(0, 8), '--files', '--output-dir', outDir, '--json']);
    expect(result.status, result.stderr).toBe(0);
    const out = JSON.parse(result.stdout) as GeneratedUnit;
    expect(out.unit).toBe('tspod-web-db.service');
    expect(out.podManifest).toBe(path.join(outDir, 'tspod-web-db.pod-manifest.json'));
    expect(fs.readFileSync(out.podManifest!, 'utf8')).toBe(fs.readFileSync(path.join(pod.path, POD_FILES.manifest), 'utf8'));
    expect(out.execStart.slice(5)).toEqual(['run', `--pod-manifest=${out.podManifest}`, '--net=none', '--hostname=h1', '--mds-register', '--stop-timeout=2500ms']);
    expect(out.stopTimeoutMs).toBe(2500);
    expect(verify(out.path!)).toBe('');
  });

  it('without --files a pod\'s unit reads the manifest from the pod directory, with a warning', () => {
    const pod = fabricatePod(env.dir, { state: 'exited', apps: [{ name: 'solo' }] });
    const result = generate([pod.uuid]);
    expect(result.status, result.stderr).toBe(0);
    expect(result.stdout).toContain(`--pod-manifest=${path.join(pod.path, POD_FILES.manifest)}`);
    expect(result.stderr).toMatch(/tspod gc removes once the pod has exited; --files keeps a copy/);
  });

  it('refuses an unsupported image scheme and a missing target (exit 254)', () => {
    const ftp = generate(['ftp://example.com/app.aci']);
    expect(ftp.status).toBe(254);
    expect(ftp.stderr).toMatch(/ftp:\/\/ images are not supported/);
    expect(generate([]).status).toBe(254);
  });
});

describe('generate systemd helpers', () => {
  it('names images shortly and spells durations for tspod run', () => {
    expect(imageShortName('/srv/images/web.aci')).toBe('web');
    expect(imageShortName('example.com/team/app:1.0,os=linux')).toBe('app');
    expect(imageShortName('https://example.com/app.aci')).toBe('app.aci');
    expect(formatDuration(10_000)).toBe('10s');
    expect(formatDuration(1500)).toBe('1500ms');
  });

  it('turns run options into tspod run flags', () => {
    expect(runFlagsForOptions({ net: { kind: 'named', names: ['a', 'b'] }, dns: { servers: ['1.1.1.1'], search: ['x'], options: ['ndots:2'], domain: 'd' }, inheritedEnv: {} }, 10_000)).toEqual([
      '--net=a,b',
      '--dns=1.1.1.1',
      '--dns-search=x',
      '--dns-opt=ndots:2',
      '--dns-domain=d',
      '--inherit-env',
      '--stop-timeout=10s',
    ]);
    expect(runFlagsForOptions({ net: { kind: 'default' } }, 1000)).toEqual(['--stop-timeout=1s']);
  });
});
