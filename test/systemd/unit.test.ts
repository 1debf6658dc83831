// The unit builder as data, and its units through `systemd-analyze verify` (Debian's systemd).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { describe, expect, it } from 'vitest';

import { DEFAULT_STOP_TIMEOUT_MS } from '../../src/pod/run-args.js';
import { execLine, quoteExecWord, renderUnit, sanitizeUnitName, timeoutStopSec, type UnitSpec } from '../../src/systemd/unit.js';
import { hasCommand } from '../support/tools.js';

const hasAnalyze = hasCommand('systemd-analyze', ['--version']);

const spec = (over: Partial<UnitSpec> = {}): UnitSpec => ({
  name: 'tspod-web',
  description: 'tspod pod web',
  execStart: ['/usr/bin/node', '/opt/tspod/bin/run.js', 'run', '--stop-timeout=10s', '/srv/web.aci'],
  stopTimeoutMs: DEFAULT_STOP_TIMEOUT_MS,
  restart: 'on-failure',
  dataDir: '/var/lib/tspod',
  mayFetch: false,
  ...over,
});

/** `systemd-analyze verify` of a unit file; its complaints, or '' when it has none. */
function verify(name: string, content: string): { status: number | null; output: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tspod-unit-'));
  try {
    const file = path.join(dir, name);
    fs.writeFileSync(file, content);
    const result = spawnSync('systemd-analyze', ['verify', '--man=no', file], { encoding: 'utf8', timeout: 60_000 });
    return { status: result.status, output: `${result.stdout}${result.stderr}`.trim() };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

describe('systemd unit of a pod', () => {
  it('is Type=notify with KillMode=mixed, NotifyAccess=main and TimeoutStopSec above the stop timeout', () => {
    const unit = renderUnit(spec());
    expect(unit).toContain('\nType=notify\nNotifyAccess=main\n');
    expect(unit).toContain('\nExecStart=/usr/bin/node /opt/tspod/bin/run.js run --stop-timeout=10s /srv/web.aci\n');
    expect(unit).toContain('\nKillMode=mixed\n');
    expect(unit).toContain('\nRestart=on-failure\n');
    expect(unit).toContain('\nRequiresMountsFor=/var/lib/tspod\n');
    expect(unit).toContain('\nSyslogIdentifier=tspod-web\n');
    expect(unit).not.toContain('TimeoutStartSec');
    const stopSec = Number(/\nTimeoutStopSec=(\d+)\n/.exec(unit)?.[1]);
    // tspod's own default stop timeout stays below the unit's: tspod kills the apps, not systemd.
    expect(stopSec * 1000).toBeGreaterThan(DEFAULT_STOP_TIMEOUT_MS);
    expect(timeoutStopSec(1500)).toBe(12);
  });

  it('leaves Restart= out for "no" and gives a fetching unit a long TimeoutStartSec', () => {
    const unit = renderUnit(spec({ restart: 'no', mayFetch: true }));
    expect(unit).not.toContain('Restart=');
    expect(unit).toContain('\nTimeoutStartSec=900\n');
  });

  it('quotes ExecStart words as systemd parses them: specifiers and variables doubled, blanks and quotes escaped', () => {
    expect(quoteExecWord('--net=none')).toBe('--net=none');
    expect(quoteExecWord('100%')).toBe('100%%');
    expect(quoteExecWord('$HOME')).toBe('$$HOME');
    expect(quoteExecWord('echo "hi there"')).toBe('"echo \\"hi there\\""');
    expect(quoteExecWord('a\\b')).toBe('"a\\\\b"');
    expect(quoteExecWord('two\nlines')).toBe('"two\\nlines"');
    expect(quoteExecWord('')).toBe('""');
    expect(quoteExecWord(';')).toBe('";"');
    expect(execLine(['/bin/x', 'a b', "it's"])).toBe('/bin/x "a b" "it\'s"');
  });

  it('makes unit names of what systemd accepts', () => {
    expect(sanitizeUnitName('web')).toBe('web');
    expect(sanitizeUnitName('example.com/web app:1')).toBe('example.com-web-app:1');
    expect(sanitizeUnitName('///')).toBe('pod');
  });

  it.skipIf(!hasAnalyze)('passes systemd-analyze verify, tricky arguments included (needs systemd-analyze, Debian systemd)', () => {
    const execStart = [process.execPath, '/bin/true', 'run', '--dir=/var/lib/tspod', '--exec', '/bin/sh', '--', '-c', 'echo "100% of $HOME"; exit 0', '---'];
    const result = verify('tspod-web.service', renderUnit(spec({ execStart, description: 'pod 100% web', restart: 'always', mayFetch: true })));
    expect(result.output).toBe('');
    expect(result.status).toBe(0);
  });

  it.skipIf(!hasAnalyze)('systemd-analyze verify does fail on a broken unit, so the check above can fail (needs systemd-analyze)', () => {
    const broken = renderUnit(spec({ execStart: ['relative/program', 'run'] }));
    const result = verify('tspod-broken.service', broken);
    expect(result.status).not.toBe(0);
    expect(result.output).toMatch(/ExecStart|absolute|relative/i);
    // Some mistakes only print a warning and exit 0: the check above compares the output with ''.
    const warned = verify('tspod-warned.service', renderUnit(spec()).replace('KillMode=mixed', 'KillMode=bogus'));
    expect(warned.output).toMatch(/kill mode/i);
  });
});
