// The fast path of bin/run.js for `tspod run` and `tspod run-prepared UUID`, the commands whose
// start-up time is the pod's start-up time. Loading oclif alone costs about 95 ms of Node start-up (stage1/README.md,
// "Process model"), so `run` is dispatched here without it: `run` parses its own grammar
// (src/pod/run-args.ts) and the global flags (src/cli/global-flags.ts) anyway, and errors are
// reported by the same function as the oclif commands use. `--help` and everything else go
// through oclif.
import { Context } from './context.js';
import { takeGlobalFlags } from './global-flags.js';
import { reportError } from './report-error.js';

/** The commands the fast path runs: first word of argv -> handler returning the exit status. */
const FAST_COMMANDS: Record<string, (argv: readonly string[], context: Context) => Promise<number>> = {
  run: async (argv, context) => {
    const { runPod } = await import('../pod/run.js');
    return runPod(argv, { fetch: context.fetchContext(), warn: context.warn });
  },
  // Only its plain form `run-prepared UUID` (isFastPath); anything else gets oclif's parsing.
  'run-prepared': async ([uuid], context) => {
    const { runPreparedPod } = await import('../pod/run.js');
    return runPreparedPod(context.options.dir, context.sys, uuid!);
  },
};

/** Whether `argv` (without node and the script) is for the fast path: a fast command, no help asked. */
export function isFastPath(argv: readonly string[]): boolean {
  const { rest } = safeTakeGlobalFlags(argv);
  const command = rest[0];
  if (command === undefined || !Object.hasOwn(FAST_COMMANDS, command)) return false;
  // Help is oclif's, and so are the words after an app's `--` (which takeGlobalFlags keeps).
  const own = rest.slice(1, rest.includes('--') ? rest.indexOf('--') : undefined);
  if (command === 'run-prepared') return own.length === 1 && !own[0]!.startsWith('-');
  return !own.some((arg) => arg === '--help' || arg === '-h');
}

function safeTakeGlobalFlags(argv: readonly string[]): { rest: string[] } {
  try {
    return takeGlobalFlags(argv);
  } catch {
    return { rest: [] };
  }
}

/** Runs a fast-path command; resolves to its exit status. */
export async function runFastPath(argv: readonly string[]): Promise<number> {
  let debug = argv.includes('--debug');
  try {
    const { flags, rest } = takeGlobalFlags(argv);
    debug = flags.debug;
    const context = new Context({
      dir: flags.dir,
      localConfig: flags['local-config'],
      systemConfig: flags['system-config'],
      insecureOptions: flags['insecure-options'],
      warn: (message) => process.stderr.write(`tspod: warning: ${message}\n`),
    });
    const [command, ...commandArgv] = rest;
    return await FAST_COMMANDS[command!]!(commandArgv, context);
  } catch (err) {
    return reportError(err instanceof Error ? err : new Error(String(err)), { debug });
  }
}
