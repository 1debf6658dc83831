// The base of every tspod command: the global flags (--dir, --local-config, --system-config,
// --debug, --insecure-options), the Context built from them, and one error path: a TspodError
// prints `tspod: <message>` with its suggestions (and the cause chain under --debug) and exits
// with its code, 254 for tspod's own failures.
import { Command, Flags, type Interfaces } from '@oclif/core';

import { describeCauseChain, EXIT_TSPOD_FAILURE, TspodError, UsageError } from '../errors.js';
import { INSECURE_OPTIONS } from '../fetch/insecure-options.js';
import { Context } from './context.js';

export type TspodFlags<T extends typeof Command> = Interfaces.InferredFlags<(typeof TspodCommand)['baseFlags'] & T['flags']>;
export type TspodArgs<T extends typeof Command> = Interfaces.InferredArgs<T['args']>;

export abstract class TspodCommand<T extends typeof Command> extends Command {
  static override baseFlags = {
    dir: Flags.string({
      description: 'tspod data directory (images, pods, locks)',
      env: 'TSPOD_DIR',
      default: '/var/lib/tspod',
      helpGroup: 'GLOBAL',
    }),
    'local-config': Flags.string({
      description: 'local configuration directory (trusted keys, auth, networks)',
      env: 'TSPOD_LOCAL_CONFIG',
      default: '/etc/tspod',
      helpGroup: 'GLOBAL',
    }),
    'system-config': Flags.string({
      description: 'system configuration directory (vendor defaults, overridden by local)',
      env: 'TSPOD_SYSTEM_CONFIG',
      default: '/usr/lib/tspod',
      helpGroup: 'GLOBAL',
    }),
    debug: Flags.boolean({ description: 'print the cause chain of errors', default: false, helpGroup: 'GLOBAL' }),
    'insecure-options': Flags.string({
      description: `checks to skip, comma-separated: ${INSECURE_OPTIONS.join(', ')}`,
      default: 'none',
      helpGroup: 'GLOBAL',
    }),
  };

  protected flags!: TspodFlags<T>;
  protected args!: TspodArgs<T>;
  /** Every positional argument, for commands that take a list (`static strict = false`). */
  protected positionals: string[] = [];
  private contextInstance: Context | undefined;

  /**
   * Commands with their own argument grammar (`run`, `prepare`: rkt's positional per-app flags)
   * set this: only the global flags are taken out of argv (anywhere but inside an app's
   * `-- ... ---` arguments), and the rest is left in `positionals` for the command to parse.
   */
  static rawArgv = false;

  public override async init(): Promise<void> {
    await super.init();
    if ((this.ctor as typeof TspodCommand).rawArgv) {
      const { flags, rest } = takeGlobalFlags(this.argv);
      this.flags = flags as TspodFlags<T>;
      this.args = {} as TspodArgs<T>;
      this.positionals = rest;
      return;
    }
    const { args, argv, flags } = await this.parse({
      flags: this.ctor.flags,
      baseFlags: (super.ctor as typeof TspodCommand).baseFlags,
      enableJsonFlag: this.ctor.enableJsonFlag,
      args: this.ctor.args,
      strict: this.ctor.strict,
    });
    this.flags = flags as TspodFlags<T>;
    this.args = args as TspodArgs<T>;
    this.positionals = argv.map(String);
  }

  /** Collaborators built from the global flags, on first use. */
  protected get context(): Context {
    this.contextInstance ??= new Context({
      dir: this.flags.dir,
      localConfig: this.flags['local-config'],
      systemConfig: this.flags['system-config'],
      insecureOptions: this.flags['insecure-options'],
      warn: (message) => this.warn(message),
    });
    return this.contextInstance;
  }

  /** Warnings go to stderr as `tspod: warning: ...` and are kept out of --json output. */
  public override warn(input: string | Error): string | Error {
    if (!this.jsonEnabled()) process.stderr.write(`tspod: warning: ${typeof input === 'string' ? input : input.message}\n`);
    return input;
  }

  protected override async catch(err: Error & { exitCode?: number; oclif?: { exit?: number } }): Promise<unknown> {
    // oclif's own errors (flag parsing, exit requests) keep oclif's handling.
    if (!(err instanceof TspodError) && err.oclif !== undefined) throw err;
    const exitCode = err instanceof TspodError ? err.exitCode : EXIT_TSPOD_FAILURE;
    const suggestions = err instanceof TspodError ? err.suggestions : [];
    const message = err instanceof TspodError ? err.message : `internal error: ${err.message}`;
    if (this.jsonEnabled()) {
      this.logJson({ error: { name: err.name, message, suggestions, exitCode } });
    } else {
      process.stderr.write(`tspod: ${message}\n`);
      for (const suggestion of suggestions) process.stderr.write(`  try: ${suggestion}\n`);
      if (this.flags?.debug === true) {
        for (const line of describeCauseChain(err).slice(1)) process.stderr.write(`  caused by: ${line}\n`);
        if (!(err instanceof TspodError) && err.stack !== undefined) process.stderr.write(`${err.stack}\n`);
      } else if (!(err instanceof TspodError)) {
        process.stderr.write('  (run with --debug for details)\n');
      }
    }
    process.exitCode = exitCode;
    return undefined;
  }
}

type GlobalFlagName = keyof (typeof TspodCommand)['baseFlags'];

/** Splits argv into the global flags (with their env and default values) and everything else. */
export function takeGlobalFlags(argv: readonly string[]): { flags: Record<GlobalFlagName, string | boolean>; rest: string[] } {
  const definitions = TspodCommand.baseFlags as Record<GlobalFlagName, { type: string; env?: string; default?: unknown }>;
  const flags = {} as Record<GlobalFlagName, string | boolean>;
  for (const [name, def] of Object.entries(definitions) as [GlobalFlagName, (typeof definitions)[GlobalFlagName]][]) {
    const fromEnv = def.env === undefined ? undefined : process.env[def.env];
    flags[name] = fromEnv ?? (def.default as string | boolean);
  }
  const rest: string[] = [];
  let inAppArgs = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') inAppArgs = true;
    else if (arg === '---') inAppArgs = false;
    const [name, inline] = arg.startsWith('--') ? [arg.slice(2).split('=')[0]!, arg.includes('=') ? arg.slice(arg.indexOf('=') + 1) : undefined] : ['', undefined];
    const def = inAppArgs ? undefined : definitions[name as GlobalFlagName];
    if (def === undefined) {
      rest.push(arg);
    } else if (def.type === 'boolean') {
      flags[name as GlobalFlagName] = inline === undefined ? true : inline !== 'false';
    } else {
      const value = inline ?? argv[++i];
      if (value === undefined) throw new UsageError(`--${name}: needs a value`);
      flags[name as GlobalFlagName] = value;
    }
  }
  return { flags, rest };
}
