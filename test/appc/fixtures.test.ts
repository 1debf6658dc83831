// Every manifest fixture in fixtures/manifests/{valid,invalid}: tspod's verdict and reported
// problem for each case, and the cross-check against Debian's actool 0.8.11.

import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import { parseImageManifest, parsePodManifest, packageRoot } from '../../src/appc/index.js';
import { ValidationError } from '../../src/errors.js';

const FIXTURES = join(packageRoot(), 'fixtures', 'manifests');
const EXPECT_KEY = '//expect';

interface Fixture {
  name: string;
  file: string;
  text: string;
  kind: 'image' | 'pod';
  expect?: string;
}

function loadFixtures(dir: 'valid' | 'invalid'): Fixture[] {
  return readdirSync(join(FIXTURES, dir))
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => {
      const file = join(FIXTURES, dir, f);
      const text = readFileSync(file, 'utf8');
      const doc = JSON.parse(text) as Record<string, unknown>;
      const acKind = Object.entries(doc).find(([k]) => k.toLowerCase() === 'ackind')?.[1];
      const kind = acKind === 'PodManifest' || 'apps' in doc ? 'pod' : 'image';
      const expectation = doc[EXPECT_KEY];
      return { name: f.replace(/\.json$/, ''), file, text, kind, expect: typeof expectation === 'string' ? expectation : undefined };
    });
}

const valid = loadFixtures('valid');
const invalid = loadFixtures('invalid');

function parse(f: Fixture): unknown {
  return f.kind === 'pod' ? parsePodManifest(f.text, `${f.kind} manifest ${f.name}`) : parseImageManifest(f.text, `${f.kind} manifest ${f.name}`);
}

function problemsOf(f: Fixture): string[] {
  try {
    parse(f);
  } catch (err) {
    if (err instanceof ValidationError) return err.problems;
    throw err;
  }
  return [];
}

describe('manifest fixtures', () => {
  it('has at least 15 valid and 45 invalid cases, each invalid one naming its expected problem', () => {
    expect(valid.length).toBeGreaterThanOrEqual(15);
    expect(invalid.length).toBeGreaterThanOrEqual(45);
    expect(invalid.filter((f) => f.expect === undefined).map((f) => f.name)).toEqual([]);
  });

  it.each(valid.map((f) => [f.name, f] as const))('accepts valid/%s.json', (_name, f) => {
    expect(problemsOf(f)).toEqual([]);
  });

  it.each(invalid.map((f) => [f.name, f] as const))('rejects invalid/%s.json with the expected problem', (_name, f) => {
    const problems = problemsOf(f);
    expect(problems.length, `${f.name} was accepted`).toBeGreaterThan(0);
    expect(problems.some((p) => p.includes(f.expect ?? '\0')), `problems: ${problems.join(' | ')}`).toBe(true);
    // every problem is "<json pointer>: <lowercase rule>"
    for (const p of problems) expect(p).toMatch(/^\/[^:]*: [a-z"]/);
  });
});

// Where tspod deliberately disagrees with actool 0.8.11 (appc/spec schema/ code), and why.
// Everything not listed here must get the same verdict from both.
const ACTOOL_DIFFERENCES: Readonly<Record<string, string>> = {
  // tspod accepts, actool rejects
  'image-isolator-apparmor': 'os/linux/apparmor-profile is in spec HEAD ace.md; the 0.8.11 code does not know it',
  // tspod rejects, actool accepts
  'capabilities-retain-and-remove': 'spec/ace.md forbids combining the capability sets; the code does not check',
  'dependency-image-id-short': 'a dependency imageID must be a full sha512 id to be compared; the code accepts any non-empty hash',
  'exec-relative-path': 'a relative exec path with a slash depends on the cwd; the code checks nothing',
  'pod-app-exec-relative-path': 'same rule as exec-relative-path, inside a pod app',
  'image-id-uppercase-hex': 'reified pods need a full lowercase image id; the code accepts any non-empty hash',
  'image-id-wrong-length': 'reified pods need a full 128-hex image id; the code accepts any length',
  'pod-image-missing-id': 'spec/pods.md: image.id is required; the code accepts it missing',
  'pod-app-missing-image': 'spec/pods.md: image is required; the code accepts it missing',
  'label-missing-value': 'labels need both name and value; Go silently uses ""',
  'mount-missing-path': 'spec/pods.md: mounts[].path is required; the code never calls Mount.assertValid',
  'mount-unknown-volume': 'a mount must name a pod volume or carry appVolume; the code does not check',
  'name-consecutive-separators': 'the spec regex forbids "a//b"; the code only checks characters and edges',
  'path-whitelist-relative': 'spec/aci.md: pathWhitelist holds absolute paths; the code does not check',
  'pod-missing-acVersion': 'acVersion is required in every manifest; the pod code never checks it',
  'pod-missing-apps': 'spec/pods.md: apps is required; the code accepts it missing',
  'pod-port-duplicate-name': 'spec/pods.md: pod port names are unique; the code does not check',
  'pod-port-unknown-name': 'a pod port must name an app port or carry podPort; the code does not check',
  'pod-port-missing-host-port': 'spec/pods.md: hostPort is required; the code does not check',
  'pod-port-host-port-out-of-range': 'hostPort must be a TCP/UDP port; the code takes any uint',
  'pod-sysctl-twice': 'at most one sysctl isolator; the code checks multiplicity only for app isolators',
  'port-missing-protocol': 'spec/aci.md: port protocol is required; the code does not check',
  'supplementary-gids-negative': 'gids are unsigned; the code uses []int',
  'volume-empty-bad-mode': 'an empty volume mode must be octal; the code does not check the format',
};

const actool = spawnSync('actool', ['version'], { encoding: 'utf8' });
const haveActool = actool.error === undefined && actool.status === 0;

describe.skipIf(!haveActool)('cross-check with actool 0.8.11 (skipped: actool not installed; apt-get install appc-spec)', () => {
  const all = [...valid.map((f) => ['valid', f] as const), ...invalid.map((f) => ['invalid', f] as const)];

  it('lists only fixtures that exist as deliberate differences', () => {
    const names = new Set(all.map(([, f]) => f.name));
    expect(Object.keys(ACTOOL_DIFFERENCES).filter((n) => !names.has(n))).toEqual([]);
  });

  it.each(all.map(([dir, f]) => [`${dir}/${f.name}`, dir, f] as const))('%s: actool agrees unless a listed difference', (_label, dir, f) => {
    // --type=manifest: actool 0.8.11 picks image or pod validation from acKind (it panics on a missing acKind)
    const r = spawnSync('actool', ['validate', '--type=manifest', f.file], { encoding: 'utf8' });
    const actoolAccepts = r.status === 0;
    const tspodAccepts = dir === 'valid';
    const differs = Object.hasOwn(ACTOOL_DIFFERENCES, f.name);
    expect(actoolAccepts, `actool: ${r.stderr.trim()}`).toBe(differs ? !tspodAccepts : tspodAccepts);
  });
});
