// The CLI validates with the standalone validators generated at build time
// (scripts/compile-schemas.mjs); the tests of src/ use the validators compiled at run time.
// Both must give the same verdict and the same problems for every fixture.
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

import type { ValidateFunction } from 'ajv/dist/2020.js';
import { describe, expect, it } from 'vitest';

import { createAjv, schemaUri, STANDALONE_VALIDATORS, VALIDATED_SCHEMAS } from '../../src/appc/validate.js';
import { ROOT } from '../support/cli.js';

const generated = path.join(ROOT, 'dist', 'src', 'appc', STANDALONE_VALIDATORS);

describe('standalone schema validators', () => {
  it('exist after the build, one per validated schema', () => {
    const mod = createRequire(import.meta.url)(generated) as Record<string, ValidateFunction>;
    for (const name of VALIDATED_SCHEMAS) expect(typeof mod[name], name).toBe('function');
  });

  it('agree with the run-time compiled validators on every manifest fixture', () => {
    const standalone = createRequire(import.meta.url)(generated) as Record<string, ValidateFunction>;
    const ajv = createAjv();
    const dirs = ['valid', 'invalid'].map((d) => path.join(ROOT, 'fixtures', 'manifests', d));
    let compared = 0;
    for (const dir of dirs) {
      for (const file of fs.readdirSync(dir)) {
        const doc = JSON.parse(fs.readFileSync(path.join(dir, file), 'utf8')) as { acKind?: string };
        const name = doc.acKind === 'PodManifest' ? 'pod-manifest' : 'image-manifest';
        const compiled = ajv.getSchema(schemaUri(name))!;
        const ok = compiled(doc);
        expect(standalone[name]!(doc), file).toBe(ok);
        const strip = (errors: ValidateFunction['errors']) => (errors ?? []).map((e) => `${e.instancePath} ${e.keyword} ${e.message}`);
        expect(strip(standalone[name]!.errors), file).toEqual(strip(compiled.errors));
        compared += 1;
      }
    }
    expect(compared).toBeGreaterThan(100);
  });
});
