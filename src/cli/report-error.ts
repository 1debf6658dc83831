// The one way a failed command is reported, shared by the oclif base command and the fast path:
// `tspod: <message>` with its `try:` suggestions on stderr (the cause chain and stack under
// --debug), or an `{error}` object under --json. Returns the exit status: the error's own, 254 for
// tspod's failures.
import { describeCauseChain, EXIT_TSPOD_FAILURE, TspodError } from '../errors.js';

export interface ReportOptions {
  debug: boolean;
  /** Print `{error: ...}` as JSON through this function instead of text on stderr. */
  json?: (value: unknown) => void;
  stderr?: (text: string) => void;
}

export function reportError(err: Error, options: ReportOptions): number {
  const stderr = options.stderr ?? ((text: string) => process.stderr.write(text));
  const exitCode = err instanceof TspodError ? err.exitCode : EXIT_TSPOD_FAILURE;
  const suggestions = err instanceof TspodError ? err.suggestions : [];
  const message = err instanceof TspodError ? err.message : `internal error: ${err.message}`;
  if (options.json !== undefined) {
    options.json({ error: { name: err.name, message, suggestions, exitCode } });
    return exitCode;
  }
  stderr(`tspod: ${message}\n`);
  for (const suggestion of suggestions) stderr(`  try: ${suggestion}\n`);
  if (options.debug) {
    for (const line of describeCauseChain(err).slice(1)) stderr(`  caused by: ${line}\n`);
    if (!(err instanceof TspodError) && err.stack !== undefined) stderr(`${err.stack}\n`);
  } else if (!(err instanceof TspodError)) {
    stderr('  (run with --debug for details)\n');
  }
  return exitCode;
}
