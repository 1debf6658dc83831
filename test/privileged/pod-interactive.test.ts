// --interactive, as root with real pods: the one app reads tspod run's stdin and, on a terminal
// (a pty made by util-linux `script`), is the terminal's foreground process group with the
// terminal as /dev/console; without --interactive an app's stdin is /dev/null.
import { spawnSync } from 'node:child_process';

import { describe, expect, it } from 'vitest';

import { canRunPods, usePodSuite } from '../support/pod-env.js';
import { hasCommand } from '../support/tools.js';
const hasScript = hasCommand('script', ['--version']);

/** Single-quotes a word for sh -c. */
const quote = (word: string) => `'${word.replace(/'/g, `'\\''`)}'`;

describe.skipIf(!canRunPods)('tspod run --interactive (needs root and actool)', () => {
  const suite = usePodSuite();

  const runArgs = (args: string[]) => ['run', '--insecure-options=image', ...args];

  it('without --interactive the app reads /dev/null: input given to tspod run does not reach it', () => {
    const result = suite.env.run(runArgs([suite.demo, '--exec', '/bin/sh', '--', '-c', 'read line; echo "got:[$line]"']), { input: 'secret\n' });
    expect(result.status).toBe(0);
    expect(result.stdout).toContain('got:[]');
  });

  it('with --interactive the app reads tspod run\'s stdin (a pipe)', () => {
    const result = suite.env.run(runArgs(['--interactive', suite.demo, '--exec', '/bin/sh', '--', '-c', 'read line; echo "got:[$line]"']), { input: 'secret\n' });
    expect(result.status).toBe(0);
    expect(result.stdout).toContain('got:[secret]');
  });

  it('refuses --interactive with two images (exit 254)', () => {
    const result = suite.env.run(runArgs(['--interactive', suite.demo, suite.demo, '--name', 'b']));
    expect(result.status).toBe(254);
    expect(result.stderr).toMatch(/--interactive works with one image only/);
  });

  it.skipIf(!hasScript)('on a terminal the app is the foreground process group, /dev/console is the terminal, and its exit status is run\'s', () => {
    // /proc/self/stat fields 5 and 8: the process group and the terminal's foreground group.
    const app = 'set -- $(cat /proc/self/stat); echo "pgrp=$5 tpgid=$8"; [ -c /dev/console ] && echo console-ok; read line; echo "got:[$line]"; exit 5';
    const command = ['node', ...suite.env.argv(runArgs(['--interactive', suite.demo, '--exec', '/bin/sh', '--', '-c', app]))].map(quote).join(' ');
    const result = spawnSync('script', ['-qec', command, '/dev/null'], { input: 'typed\n', encoding: 'utf8', timeout: 60_000 });
    expect(result.stdout).toContain('console-ok');
    expect(result.stdout).toContain('got:[typed]');
    const ids = /pgrp=(\d+) tpgid=(\d+)/.exec(result.stdout);
    expect(ids).not.toBeNull();
    // A group of the pod's PID namespace (ids there are non-zero), and the foreground one.
    expect(ids![1]).not.toBe('0');
    expect(ids![1]).toBe(ids![2]);
    expect(result.status).toBe(5);
  });

  it.skipIf(!hasScript)('on a terminal without --interactive the foreground group stays tspod run\'s, outside the pod', () => {
    const app = 'set -- $(cat /proc/self/stat); echo "pgrp=$5 tpgid=$8"';
    const command = ['node', ...suite.env.argv(runArgs([suite.demo, '--exec', '/bin/sh', '--', '-c', app]))].map(quote).join(' ');
    const result = spawnSync('script', ['-qec', command, '/dev/null'], { input: '', encoding: 'utf8', timeout: 60_000 });
    const ids = /pgrp=(\d+) tpgid=(\d+)/.exec(result.stdout);
    expect(ids).not.toBeNull();
    // The foreground group is tspod run's, outside the pod's PID namespace: it reads as 0 there.
    expect(ids![2]).toBe('0');
    expect(result.status).toBe(0);
  });
});
