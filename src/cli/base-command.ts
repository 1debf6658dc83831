// The base of every tspod command: the global flags (--dir, --local-config, --system-config,
// --debug, --insecure-options), the Context built from them, and one error path: a TspodError
// prints `tspod: <message>` with its suggestions (and the cause chain under --debug) and exits
// with its code, 254 for tspod's own failures.
import { Command, Flags, type Interfaces } from '@oclif/core';

import { TspodError } from '../errors.js';
import { Context } from './context.js';
import { GLOBAL_FLAGS, takeGlobalFlags, type GlobalFlagDefinition, type GlobalFlagName } from './global-flags.js';
import { reportError } from './report-error.js';

export type TspodFlags<T extends typeof Command> = Interfaces.InferredFlags<(typeof TspodCommand)['baseFlags'] & T['flags']>;
export type TspodArgs<T extends typeof Command> = Interfaces.InferredArgs<T['args']>;

export abstract class TspodCommand<T extends typeof Command> extends Command {
  static override baseFlags = {
    dir: Flags.string({ ...oclifFlag('dir'), default: GLOBAL_FLAGS.dir.default }),
    'local-config': Flags.string({ ...oclifFlag('local-config'), default: GLOBAL_FLAGS['local-config'].default }),
    'system-config': Flags.string({ ...oclifFlag('system-config'), default: GLOBAL_FLAGS['system-config'].default }),
    debug: Flags.boolean({ ...oclifFlag('debug'), default: GLOBAL_FLAGS.debug.default }),
    'insecure-options': Flags.string({ ...oclifFlag('insecure-options'), default: GLOBAL_FLAGS['insecure-options'].default }),
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
      // oclif warns (NODE_ENV=test/development) about a command that never called this.parse.
      (this as unknown as { parsed: boolean }).parsed = true;
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
    process.exitCode = reportError(err, { debug: this.flags?.debug === true, json: this.jsonEnabled() ? (value) => this.logJson(value) : undefined });
    return undefined;
  }
}

/** The oclif spelling of one global flag of GLOBAL_FLAGS. */
function oclifFlag(name: GlobalFlagName): { description: string; env?: string; helpGroup: string } {
  const def: GlobalFlagDefinition = GLOBAL_FLAGS[name];
  return { description: def.description, ...(def.env === undefined ? {} : { env: def.env }), helpGroup: 'GLOBAL' };
}
