// The one error hierarchy of tspod. Every expected failure is a TspodError: a lowercase message
// naming the operation, the object and the cause, optional suggestions (commands that fix it),
// and the process exit code (254 for tspod's own failures, rkt's rule).

export const EXIT_TSPOD_FAILURE = 254;

export interface TspodErrorOptions {
  cause?: unknown;
  suggestions?: string[];
  exitCode?: number;
}

export class TspodError extends Error {
  readonly suggestions: string[];
  readonly exitCode: number;

  constructor(message: string, options: TspodErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.suggestions = options.suggestions ?? [];
    this.exitCode = options.exitCode ?? EXIT_TSPOD_FAILURE;
  }
}

/** Bad command-line input: a flag value, an argument, a reference that cannot be parsed. */
export class UsageError extends TspodError {}

/** A JSON document (manifest, config, record) that does not follow its schema. */
export class ValidationError extends TspodError {
  /** One entry per violated rule: `/app/exec/0: must be an absolute path`. */
  readonly problems: string[];
  constructor(message: string, problems: string[] = [], options: TspodErrorOptions = {}) {
    super(problems.length > 0 ? `${message}: ${problems.join('; ')}` : message, options);
    this.problems = problems;
  }
}

/** Something asked for by name, id or path that does not exist. */
export class NotFoundError extends TspodError {}

/** A reference (id prefix, name) that matches more than one object. */
export class AmbiguousError extends TspodError {}

/** A signature that is missing, malformed, made by an untrusted key, or does not verify. */
export class TrustError extends TspodError {}

/** An image archive that is malformed or hostile (bad entries, bad manifest, truncated). */
export class ImageFormatError extends TspodError {}

/** The store refused an operation to protect its consistency (image in use, lock held). */
export class StoreError extends TspodError {}

/** Formats an error and its cause chain, one line per level, for `--debug`. */
export function describeCauseChain(err: unknown): string[] {
  const lines: string[] = [];
  const seen = new Set<unknown>();
  let current: unknown = err;
  while (current !== undefined && current !== null && !seen.has(current)) {
    seen.add(current);
    if (current instanceof Error) {
      lines.push(`${current.name}: ${current.message}`);
      current = current.cause;
    } else {
      lines.push(String(current));
      break;
    }
  }
  return lines;
}
