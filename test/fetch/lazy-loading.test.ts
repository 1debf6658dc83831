// `tspod run` of an image already in the store must not pay for remote fetching: resolving a
// stored image through the fetch module loads neither undici, nor htmlparser2, nor openpgp (alone
// ~80 ms of start-up: src/fetch/context.ts), nor tar-stream (only files and downloads are read as
// archives). Checked on the built code (dist/) in
// a child process whose module loads a resolve hook records; a reference that needs the network
// is the control that the hook sees them when they are loaded. CommonJS loads are read from the
// module cache at the end, since module hooks do not see `createRequire` (src/http/undici.ts).
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { ROOT } from '../support/cli.js';
import { makeAciTar, manifestFor } from '../support/aci.js';

const HEAVY = /\/node_modules\/(openpgp|undici|htmlparser2|tar-stream)\//;

describe('lazy loading of the remote fetch path', () => {
  let dir: string;

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tspod-lazy-'));
    fs.writeFileSync(
      path.join(dir, 'hooks.mjs'),
      `import fs from 'node:fs';\nexport async function resolve(specifier, context, next) {\n  const result = await next(specifier, context);\n  fs.appendFileSync(process.env.LOAD_LOG, result.url + '\\n');\n  return result;\n}\n`,
    );
    fs.writeFileSync(
      path.join(dir, 'resolve.mjs'),
      [
        `import fs from 'node:fs';`,
        `import { register } from 'node:module';`,
        `import { pathToFileURL } from 'node:url';`,
        `register(pathToFileURL(${JSON.stringify(path.join(dir, 'hooks.mjs'))}));`,
        `const { Context } = await import(${JSON.stringify(path.join(ROOT, 'dist/src/cli/context.js'))});`,
        `const { resolveImageRef } = await import(${JSON.stringify(path.join(ROOT, 'dist/src/fetch/resolve.js'))});`,
        `const [dir, ref] = process.argv.slice(2);`,
        `const context = new Context({ dir, localConfig: dir + '/etc', systemConfig: dir + '/usr-lib', insecureOptions: 'image', warn: () => {} });`,
        `try { console.log((await resolveImageRef(ref, context.fetchContext(), 'new')).id); } catch (err) { console.log('error: ' + err.message); }`,
        // CommonJS modules loaded through createRequire (src/http/undici.ts) pass no ESM hook: the module cache lists them.
        `const { createRequire } = await import('node:module');`,
        `fs.appendFileSync(process.env.LOAD_LOG, Object.keys(createRequire(import.meta.url).cache).join('\\n') + '\\n');`,
      ].join('\n'),
    );
    const aci = path.join(dir, 'lazy.aci');
    fs.writeFileSync(aci, await makeAciTar(manifestFor('example.com/lazy', { labels: [{ name: 'version', value: '1.0' }] })));
    execFileSync(process.execPath, [path.join(ROOT, 'bin/run.js'), '--dir', path.join(dir, 'data'), 'fetch', '--insecure-options=image', aci], { stdio: 'ignore' });
  });

  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  function loadedFor(ref: string): { stdout: string; heavy: string[] } {
    const log = path.join(dir, `loads-${Math.random().toString(16).slice(2)}.txt`);
    const result = spawnSync(process.execPath, [path.join(dir, 'resolve.mjs'), path.join(dir, 'data'), ref], {
      encoding: 'utf8',
      env: { ...process.env, LOAD_LOG: log, TSPOD_NAMESERVER: '127.0.0.1:9' },
      timeout: 60_000,
    });
    const loads = fs.readFileSync(log, 'utf8').split('\n');
    return { stdout: result.stdout, heavy: [...new Set(loads.filter((u) => HEAVY.test(u)).map((u) => HEAVY.exec(u)![1]!))] };
  }

  it('resolving a stored image by name loads none of undici, htmlparser2, openpgp and tar-stream', () => {
    const { stdout, heavy } = loadedFor('example.com/lazy:1.0');
    expect(stdout).toMatch(/^sha512-[0-9a-f]{128}\n$/);
    expect(heavy).toEqual([]);
  });

  it('fetching from an OCI image layout (oci:DIR) loads no undici: the http modules are for registries', () => {
    const { stdout, heavy } = loadedFor(`oci:${path.join(dir, 'no-such-layout')}:1`);
    expect(stdout).toMatch(/^error: .*no such directory/);
    expect(heavy).not.toContain('undici');
  });

  it('a reference that needs the network does load them (the hook sees the loads)', () => {
    const { stdout, heavy } = loadedFor('https://127.0.0.1:9/app.aci');
    expect(stdout).toMatch(/^error: /);
    expect(heavy).toContain('undici');
  });
});
