// The whole tree typechecks under the project's strict settings: sources, tests and fixtures
// (tsconfig.json compiles only src/ and stage1/, so without this the tests would never be checked).
import { spawnSync } from 'node:child_process';
import path from 'node:path';

import { describe, expect, it } from 'vitest';

import { ROOT } from '../support/cli.js';

describe('typescript', () => {
  it('typechecks src, stage1, test and fixtures with tsc --strict (tsconfig.test.json)', () => {
    const tsc = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
    const result = spawnSync(process.execPath, [tsc, '-p', path.join(ROOT, 'tsconfig.test.json')], { encoding: 'utf8', timeout: 300_000 });
    expect(result.stdout + result.stderr).toBe('');
    expect(result.status).toBe(0);
  }, 300_000);
});
