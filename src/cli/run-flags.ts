// oclif flag declarations for `tspod run`/`prepare`, derived from the one flag table
// (src/pod/run-args.ts RUN_FLAGS). They exist for --help and the manifest: those commands parse
// argv themselves (rkt's positional grammar), see TspodCommand.rawArgv.
import { Flags } from '@oclif/core';

import { RUN_FLAGS, type RunFlagSpec } from '../pod/run-args.js';

const SCOPE_GROUP = { pod: 'POD', app: 'PER-APP (after an image)', both: 'POD OR PER-APP' } as const;

function declare(f: RunFlagSpec) {
  if (!f.takesValue) return Flags.boolean({ description: f.description, helpGroup: SCOPE_GROUP[f.scope] });
  return f.repeatable
    ? Flags.string({ description: f.description, multiple: true, helpGroup: SCOPE_GROUP[f.scope] })
    : Flags.string({ description: f.description, helpGroup: SCOPE_GROUP[f.scope] });
}

export const runFlags = Object.fromEntries((RUN_FLAGS as readonly RunFlagSpec[]).filter((f) => f.global !== true).map((f) => [f.name, declare(f)]));
