// The fast path of bin/run.js for the commands whose start-up time users feel on every pod:
// `tspod run`, `tspod run-prepared UUID` and `tspod enter`, and the plain `tspod fetch [--quiet]
// IMAGE` (part of every timed pull). Loading oclif alone costs about 95 ms of Node start-up
// (stage1/README.md, "Process model"), so these are dispatched here without it: they parse their
// own grammars anyway (src/pod/run-args.ts, src/pod/enter.ts; fetch's plain form has one word and
// one switch) with the global flags from one table (src/cli/global-flags.ts), and errors are
// reported by the same function the oclif commands use. `--help`, and any form these parsers leave
// to oclif (fetch with any other flag), go through oclif.
import { Context } from './context.js';
import { globalFlagArity, takeGlobalFlags, type GlobalFlagValues } from './global-flags.js';
import { reportError } from './report-error.js';

/** argv split at the command word: the global flags before it, the command, the words after it. */
export function splitCommand(argv: readonly string[]): { leading: string[]; command: string | undefined; rest: string[] } {
  const arity: Record<string, 'switch' | 'value'> = globalFlagArity();
  let i = 0;
  while (i < argv.length) {
    const arg = argv[i]!;
    const name = arg.startsWith('--') ? arg.slice(2).split('=')[0]! : undefined;
    if (name === undefined || !Object.hasOwn(arity, name)) break;
    i += arity[name] === 'value' && !arg.includes('=') ? 2 : 1;
  }
  return { leading: argv.slice(0, i), command: argv[i], rest: argv.slice(i + 1) };
}

const isHelp = (arg: string) => arg === '--help' || arg === '-h';

interface FastCommand {
  /** Whether these words after the command are for the fast path (else oclif parses them). */
  accepts(rest: readonly string[]): boolean;
  run(leading: readonly string[], rest: readonly string[]): Promise<number>;
}

function contextOf(flags: GlobalFlagValues): Context {
  return new Context({
    dir: flags.dir,
    localConfig: flags['local-config'],
    systemConfig: flags['system-config'],
    insecureOptions: flags['insecure-options'],
    warn: (message) => process.stderr.write(`tspod: warning: ${message}\n`),
  });
}

/** The config layers whose `net.d` define pod networks (src/net/config.ts). */
function networkConfigOf(flags: GlobalFlagValues): { localConfig: string; systemConfig: string } {
  return { localConfig: flags['local-config'], systemConfig: flags['system-config'] };
}

/** fetch's plain form: the words after `fetch` without global flags are IMAGE and at most one --quiet/-q. */
function plainFetch(rest: readonly string[]): { image: string; quiet: boolean } | undefined {
  let words: string[];
  try {
    words = takeGlobalFlags(rest).rest;
  } catch {
    return undefined; // a global value flag without its value: oclif reports it
  }
  const isQuiet = (w: string): boolean => w === '--quiet' || w === '-q';
  const quiet = words.filter(isQuiet);
  const images = words.filter((w) => !isQuiet(w));
  if (quiet.length > 1 || images.length !== 1 || images[0]!.startsWith('-')) return undefined;
  return { image: images[0]!, quiet: quiet.length === 1 };
}

const FAST_COMMANDS: Record<string, FastCommand> = {
  fetch: {
    accepts: (rest) => plainFetch(rest) !== undefined,
    async run(leading, rest) {
      const { flags } = takeGlobalFlags([...leading, ...rest]);
      const { image, quiet } = plainFetch(rest)!;
      const { runFetchCommand } = await import('./fetch-command.js');
      const input = { image, quiet, json: false, pullPolicy: 'update' as const, noStore: false, labels: [] };
      await runFetchCommand(input, contextOf(flags), (line) => process.stdout.write(`${line}\n`));
      return 0;
    },
  },
  run: {
    // The words after an app's `--` are the app's, `--help` among them.
    accepts: (rest) => !rest.slice(0, rest.includes('--') ? rest.indexOf('--') : undefined).some(isHelp),
    async run(leading, rest) {
      const { flags, rest: argv } = takeGlobalFlags([...leading, ...rest]);
      const { runPod } = await import('../pod/run.js');
      const context = contextOf(flags);
      return runPod(argv, { fetch: context.fetchContext(), warn: context.warn, networkConfig: networkConfigOf(flags) });
    },
  },
  'run-prepared': {
    // Only the plain form `run-prepared UUID`.
    accepts: (rest) => rest.length === 1 && !rest[0]!.startsWith('-'),
    async run(leading, [uuid]) {
      const { flags } = takeGlobalFlags(leading);
      const { runPreparedPod } = await import('../pod/run.js');
      return runPreparedPod(uuid!, { dir: flags.dir, sys: contextOf(flags).sys, networkConfig: networkConfigOf(flags) });
    },
  },
  enter: {
    // Flags come before the pod uuid; everything after it is the command's (src/pod/enter.ts).
    accepts: (rest) => {
      const valueFlags = new Set(['app', 'uuid-file', ...Object.entries(globalFlagArity()).filter(([, a]) => a === 'value').map(([n]) => n)]);
      for (let i = 0; i < rest.length; i++) {
        const arg = rest[i]!;
        if (isHelp(arg)) return false;
        if (!arg.startsWith('-') || arg === '--') return true;
        if (valueFlags.has(arg.slice(2)) && !arg.includes('=')) i++;
      }
      return true;
    },
    async run(leading, rest) {
      const { enterPod, parseEnterArgs } = await import('../pod/enter.js');
      const { readUuidFile, resolvePodUuid } = await import('../pod/uuid.js');
      const args = parseEnterArgs(rest, globalFlagArity());
      const { flags } = takeGlobalFlags([...leading, ...args.otherFlags]);
      const uuid = args.uuidFile !== undefined ? readUuidFile(args.uuidFile) : resolvePodUuid(flags.dir, args.uuid!);
      return enterPod(flags.dir, { uuid, app: args.app, command: args.command }, { sys: contextOf(flags).sys });
    },
  },
};

/** Whether `argv` (without node and the script) is for the fast path. */
export function isFastPath(argv: readonly string[]): boolean {
  const { command, rest } = splitCommand(argv);
  if (command === undefined || !Object.hasOwn(FAST_COMMANDS, command)) return false;
  return FAST_COMMANDS[command]!.accepts(rest);
}

/** Runs a fast-path command; resolves to its exit status. */
export async function runFastPath(argv: readonly string[]): Promise<number> {
  const { leading, command, rest } = splitCommand(argv);
  try {
    return await FAST_COMMANDS[command!]!.run(leading, rest);
  } catch (err) {
    const debug = [...leading, ...rest].includes('--debug');
    return reportError(err instanceof Error ? err : new Error(String(err)), { debug });
  }
}
