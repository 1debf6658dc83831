// The fast path of bin/run.js (`tspod run`, plain `tspod fetch` without oclif): which argv take it, that global flags
// parse the same anywhere, and that its errors read exactly like the oclif commands' errors.
import { afterAll, describe, expect, it } from 'vitest';

import { isFastPath } from '../../src/cli/fast-path.js';
import { GLOBAL_FLAGS, takeGlobalFlags } from '../../src/cli/global-flags.js';
import { TspodEnv } from '../support/cli.js';

describe('isFastPath', () => {
  it.each([
    [['run', 'a.aci'], true],
    [['--dir', '/tmp/x', 'run', 'a.aci'], true],
    [['--debug', 'run', 'a.aci', '--exec', '/bin/sh', '--', '-c', 'echo --help'], true],
    [['run', '--help'], false],
    [['run', 'a.aci', '-h'], false],
    [['prepare', 'a.aci'], false],
    [['run-prepared', '5f3a2b1c'], true],
    [['run-prepared', '--help'], false],
    [['run-prepared', '5f3a2b1c', '--uuid-file', 'x'], false],
    [['run-prepared'], false],
    [['enter', '5f3a2b1c', 'ls', '--help'], true],
    [['enter', '--app', 'web', '5f3a2b1c'], true],
    [['enter', '--help'], false],
    [['enter', '--app', 'web', '-h', '5f3a2b1c'], false],
    [['fetch', 'docker://example.com/app:1'], true],
    [['fetch', '--quiet', 'a.aci'], true],
    [['fetch', 'a.aci', '-q', '--insecure-options=image'], true],
    [['--dir', '/d', 'fetch', '--insecure-options', 'image', 'a.aci'], true],
    [['fetch', '--help'], false],
    [['fetch', 'a.aci', '-h'], false],
    [['fetch', '--pull-policy=new', 'a.aci'], false],
    [['fetch', '--json', 'a.aci'], false],
    [['fetch', '--signature', 's.asc', 'a.aci'], false],
    [['fetch', 'a.aci', 'b.aci'], false],
    [['fetch', '-q', '-q', 'a.aci'], false],
    [['fetch', 'a.aci', '--insecure-options'], false],
    [['fetch'], false],
    [['image', 'list'], false],
    [[], false],
    [['--dir'], false],
  ])('%j -> %s', (argv, expected) => {
    expect(isFastPath(argv)).toBe(expected);
  });
});

describe('takeGlobalFlags', () => {
  it('takes global flags anywhere but inside an app\'s -- ... --- arguments', () => {
    const { flags, rest } = takeGlobalFlags(['--dir=/d', 'a.aci', '--debug', '--', '--dir', 'x', '---', '--insecure-options', 'image', 'b.aci']);
    expect(flags.dir).toBe('/d');
    expect(flags.debug).toBe(true);
    expect(flags['insecure-options']).toBe('image');
    expect(rest).toEqual(['a.aci', '--', '--dir', 'x', '---', 'b.aci']);
  });

  it('fills defaults and environment values from the one table', () => {
    const saved = process.env.TSPOD_DIR;
    process.env.TSPOD_DIR = '/from/env';
    try {
      const { flags } = takeGlobalFlags([]);
      expect(flags.dir).toBe('/from/env');
      expect(flags['local-config']).toBe(GLOBAL_FLAGS['local-config'].default);
      expect(flags.debug).toBe(false);
    } finally {
      if (saved === undefined) delete process.env.TSPOD_DIR;
      else process.env.TSPOD_DIR = saved;
    }
  });

  it('refuses a value flag with no value (--dir at the end)', () => {
    expect(() => takeGlobalFlags(['run', '--dir'])).toThrow(/--dir: needs a value/);
  });
});

describe('tspod run through the fast path', () => {
  const env = new TspodEnv();
  afterAll(() => env.cleanup());

  it('reports a bad app flag exactly as `tspod prepare` (oclif) does, exit 254', () => {
    const fast = env.run(['run', 'a.aci', '--no-such-flag']);
    const oclif = env.run(['prepare', 'a.aci', '--no-such-flag']);
    expect(fast.status).toBe(254);
    expect(oclif.status).toBe(254);
    expect(fast.stderr).toMatch(/^tspod: .*no-such-flag/);
    expect(fast.stderr).toBe(oclif.stderr);
  });

  it('reports an image that is not in the store with its suggestions, exit 254', () => {
    const result = env.run(['run', 'example.com/missing:1.0', '--pull-policy=never']);
    expect(result.status).toBe(254);
    expect(result.stderr).toMatch(/^tspod: .*example\.com\/missing/);
  });

  it('leaves --help to oclif', () => {
    const result = env.run(['run', '--help']);
    expect(result.status).toBe(0);
    expect(result.stdout).toMatch(/USAGE/);
  });
});

describe('tspod fetch through the fast path', () => {
  const env = new TspodEnv();
  afterAll(() => env.cleanup());

  it('prints and exits exactly as the oclif command (taken with a default flag spelled out)', () => {
    const ref = 'oci:/nonexistent/tspod-fast-path-layout:1';
    const fast = env.run(['fetch', '--quiet', ref]);
    const oclif = env.run(['fetch', '--quiet', '--pull-policy=update', ref]);
    expect(fast.status).toBe(254);
    expect(oclif.status).toBe(254);
    expect(fast.stderr).toMatch(/^tspod: fetch oci:.*no such directory/);
    expect(fast.stderr).toBe(oclif.stderr);
    expect(fast.stdout).toBe(oclif.stdout);
  });
});
