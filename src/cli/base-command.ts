// The base of every tspod command: the global flags (--dir, --local-config, --system-config,
// --debug, --insecure-options), the Context built from them, and one error path: a TspodError
// prints `tspod: <message>` with its suggestions (and the cause chain under --debug) and exits
// with its code, 254 for tspod's own failures.
import { Command, Flags, type Interfaces } from '@oclif/core';

import { describeCauseChain, EXIT_TSPOD_FAILURE, TspodError } from '../errors.js';
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

  public override async init(): Promise<void> {
    await super.init();
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
