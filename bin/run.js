#!/usr/bin/env node
// tspod entry point: oclif with the generated manifest (no command module is loaded at start-up
// but the one that runs); `tspod run`, whose start-up is the pod's, takes a fast path that does not
// load oclif at all (src/cli/fast-path.ts). Global flags may come before the command, as with rkt
// (`tspod --dir /srv/tspod image list`); oclif wants them after the command id, so they are moved.
import { readFileSync } from 'node:fs';

import { isFastPath, runFastPath } from '../dist/src/cli/fast-path.js';

const GLOBAL_FLAGS = new Set(['--dir', '--local-config', '--system-config', '--insecure-options']);
const GLOBAL_SWITCHES = new Set(['--debug']);

function reorder(argv) {
  const globals = [];
  let i = 0;
  while (i < argv.length) {
    const arg = argv[i];
    const name = arg.split('=')[0];
    if (GLOBAL_SWITCHES.has(arg) || (GLOBAL_FLAGS.has(name) && arg.includes('='))) {
      globals.push(arg);
      i += 1;
    } else if (GLOBAL_FLAGS.has(arg) && i + 1 < argv.length) {
      globals.push(arg, argv[i + 1]);
      i += 2;
    } else break;
  }
  if (globals.length === 0) return argv;
  const rest = argv.slice(i);
  let ids;
  try {
    ids = new Set(Object.keys(JSON.parse(readFileSync(new URL('../oclif.manifest.json', import.meta.url), 'utf8')).commands));
  } catch {
    ids = new Set();
  }
  // The longest run of leading words that names a command (`image list`, `trust`).
  let words = 0;
  for (let n = 1; n <= rest.length && !rest[n - 1].startsWith('-'); n++) {
    if (ids.has(rest.slice(0, n).join(':'))) words = n;
  }
  return [...rest.slice(0, words), ...globals, ...rest.slice(words)];
}

const argv = process.argv.slice(2);
if (isFastPath(argv)) {
  process.exitCode = await runFastPath(argv);
} else {
  const { execute } = await import('@oclif/core');
  await execute({ dir: import.meta.url, args: reorder(argv) });
}
