// The global flags every tspod command takes (--dir, --local-config, --system-config, --debug,
// --insecure-options), as plain data: the oclif base command builds its Flags from this table, and
// the fast path (src/cli/fast-path.ts), which never loads oclif, parses them with
// takeGlobalFlags. One table, so the two entries cannot disagree.
import { UsageError } from '../errors.js';
import { INSECURE_OPTIONS } from '../fetch/insecure-options.js';

export interface GlobalFlagDefinition {
  type: 'string' | 'boolean';
  description: string;
  env?: string;
  default: string | boolean;
}

export const GLOBAL_FLAGS = {
  dir: { type: 'string', description: 'tspod data directory (images, pods, locks)', env: 'TSPOD_DIR', default: '/var/lib/tspod' },
  'local-config': {
    type: 'string',
    description: 'local configuration directory (trusted keys, auth, networks)',
    env: 'TSPOD_LOCAL_CONFIG',
    default: '/etc/tspod',
  },
  'system-config': {
    type: 'string',
    description: 'system configuration directory (vendor defaults, overridden by local)',
    env: 'TSPOD_SYSTEM_CONFIG',
    default: '/usr/lib/tspod',
  },
  debug: { type: 'boolean', description: 'print the cause chain of errors', default: false },
  'insecure-options': { type: 'string', description: `checks to skip, comma-separated: ${INSECURE_OPTIONS.join(', ')}`, default: 'none' },
} as const satisfies Record<string, GlobalFlagDefinition>;

export type GlobalFlagName = keyof typeof GLOBAL_FLAGS;

export interface GlobalFlagValues {
  dir: string;
  'local-config': string;
  'system-config': string;
  debug: boolean;
  'insecure-options': string;
}

/** Each global flag and whether it takes a value, for grammars that meet them among their own. */
export function globalFlagArity(): Record<GlobalFlagName, 'switch' | 'value'> {
  const entries = Object.entries(GLOBAL_FLAGS) as [GlobalFlagName, GlobalFlagDefinition][];
  return Object.fromEntries(entries.map(([name, def]) => [name, def.type === 'boolean' ? 'switch' : 'value'])) as Record<GlobalFlagName, 'switch' | 'value'>;
}

/**
 * Splits argv into the global flags (with their env and default values) and everything else, for
 * commands with their own argument grammar (`run`, `prepare`, `enter`): global flags may appear
 * anywhere but inside an app's `-- ... ---` arguments.
 */
export function takeGlobalFlags(argv: readonly string[]): { flags: GlobalFlagValues; rest: string[] } {
  const definitions: Record<string, GlobalFlagDefinition> = GLOBAL_FLAGS;
  const flags: Record<string, string | boolean> = {};
  for (const [name, def] of Object.entries(definitions)) {
    const fromEnv = def.env === undefined ? undefined : process.env[def.env];
    flags[name] = fromEnv ?? def.default;
  }
  const rest: string[] = [];
  let inAppArgs = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') inAppArgs = true;
    else if (arg === '---') inAppArgs = false;
    const [name, inline] = arg.startsWith('--') ? [arg.slice(2).split('=')[0]!, arg.includes('=') ? arg.slice(arg.indexOf('=') + 1) : undefined] : ['', undefined];
    const def = inAppArgs || !Object.hasOwn(definitions, name) ? undefined : definitions[name];
    if (def === undefined) {
      rest.push(arg);
    } else if (def.type === 'boolean') {
      flags[name] = inline === undefined ? true : inline !== 'false';
    } else {
      const value = inline ?? argv[++i];
      if (value === undefined) throw new UsageError(`--${name}: needs a value`);
      flags[name] = value;
    }
  }
  return { flags: flags as unknown as GlobalFlagValues, rest };
}
