// Compiles src/ to dist/ (and generates the standalone schema validators) before the suite when
// any source or schema is newer than the last build, so the CLI tests run the code under test.
// It does not regenerate oclif.manifest.json: a stale manifest is what
// test/cli/manifest.test.ts is there to catch (`npm run build` renews it).
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '../..');
const stamp = path.join(root, 'dist', '.build-stamp');

function newestMtime(dir: string): number {
  let newest = 0;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile() || !/\.(ts|json)$/.test(entry.name)) continue;
    newest = Math.max(newest, fs.statSync(path.join(entry.parentPath, entry.name)).mtimeMs);
  }
  return newest;
}

export default function setup(): void {
  const sources = ['src', 'stage1', 'schemas'].map((d) => path.join(root, d)).filter((d) => fs.existsSync(d));
  const built = fs.existsSync(stamp) ? fs.statSync(stamp).mtimeMs : 0;
  if (Math.max(...sources.map(newestMtime)) <= built) return;
  try {
    execFileSync(process.execPath, [path.join(root, 'node_modules/typescript/bin/tsc'), '-p', path.join(root, 'tsconfig.json')], { stdio: 'inherit' });
  } catch {
    // tsc still emits JavaScript when a file has type errors; test/cli/typecheck.test.ts is the
    // test that fails for them, so one bad file does not stop every other test from running.
    process.stderr.write('global-setup: tsc reported type errors (see test/cli/typecheck.test.ts)\n');
  }
  execFileSync(process.execPath, [path.join(root, 'scripts/compile-schemas.mjs')], { stdio: 'inherit' });
  fs.writeFileSync(stamp, '');
}
