// App output prefixing (issue 7 item 9; stage1/README.md "systemd"): when a pod runs more than
// one app and not --interactive, each exec step gets pipes for stdout and stderr instead of the
// init's, and the init copies what the app writes to its own stdout/stderr one whole line at a
// time, prefixed with `[app] `. Under systemd that is the unit's journal stream, so journald shows
// whose line each is. Only the init writes to the shared streams, so lines of different apps never
// interleave; a partial line waits for its end (or the app's EOF). Imported by warm-exec.ts before
// the init loads anything heavy: no imports beyond Node's.
import type { ChildProcess } from 'node:child_process';
import type { Readable } from 'node:stream';

/** Longest line kept whole; a longer one is cut into lines of this size (journald's LineMax= is 48 KiB). */
export const MAX_LINE_BYTES = 32 * 1024;
const NEWLINE = Buffer.from('\n');

/** Splits a byte stream into lines and emits each complete line with the current prefix. Pure; tested as data. */
export class LinePrefixer {
  private partial: Buffer[] = [];
  private partialBytes = 0;
  private prefix = Buffer.alloc(0);

  constructor(
    private readonly emit: (chunk: Buffer) => void,
    private readonly maxLine = MAX_LINE_BYTES,
  ) {}

  /** The prefix of the lines emitted from now on (lines still incomplete get it too). */
  setPrefix(prefix: string): void {
    this.prefix = Buffer.from(prefix);
  }

  /** Emits every line `chunk` completes, all in one call of `emit`; keeps the rest. */
  write(chunk: Buffer): void {
    const out: Buffer[] = [];
    let start = 0;
    for (let nl = chunk.indexOf(0x0a, start); nl !== -1; nl = chunk.indexOf(0x0a, start)) {
      const line = chunk.subarray(start, nl + 1);
      start = nl + 1;
      if (this.partialBytes + line.length - 1 > this.maxLine) {
        this.cutLongLine(line.subarray(0, line.length - 1), out);
        if (this.partialBytes > 0) this.flushPartial(out);
        continue;
      }
      out.push(this.prefix, ...this.partial, line);
      this.partial = [];
      this.partialBytes = 0;
    }
    this.cutLongLine(chunk.subarray(start), out);
    if (out.length > 0) this.emit(Buffer.concat(out));
  }

  /** The stream ended: a last line without its newline is emitted with one. */
  end(): void {
    const out: Buffer[] = [];
    if (this.partialBytes > 0) this.flushPartial(out);
    if (out.length > 0) this.emit(Buffer.concat(out));
  }

  /** Adds `rest` to the partial line, emitting a line of maxLine bytes each time it fills up. */
  private cutLongLine(rest: Buffer, out: Buffer[]): void {
    while (this.partialBytes + rest.length > this.maxLine) {
      const take = this.maxLine - this.partialBytes;
      out.push(this.prefix, ...this.partial, rest.subarray(0, take), NEWLINE);
      this.partial = [];
      this.partialBytes = 0;
      rest = rest.subarray(take);
    }
    if (rest.length > 0) {
      this.partial.push(Buffer.from(rest));
      this.partialBytes += rest.length;
    }
  }

  private flushPartial(out: Buffer[]): void {
    out.push(this.prefix, ...this.partial, NEWLINE);
    this.partial = [];
    this.partialBytes = 0;
  }
}

interface Relay {
  prefixers: LinePrefixer[];
  ended: Promise<void>;
  done: boolean;
  labeled: boolean;
}

export interface OutputSinks {
  stdout: (chunk: Buffer) => void;
  stderr: (chunk: Buffer) => void;
}

// process.stdout/stderr are synchronous for files and pipes on Linux (Node's process docs), so a
// line is written before the next one is taken, and nothing is pending when the init exits.
const PROCESS_SINKS: OutputSinks = {
  stdout: (chunk) => process.stdout.write(chunk),
  stderr: (chunk) => process.stderr.write(chunk),
};

/** The relays of the exec steps of one pod (spawned with stdio[1] and stdio[2] = 'pipe'). */
export class AppOutput {
  private readonly relays = new Map<ChildProcess, Relay>();

  constructor(private readonly sinks: OutputSinks = PROCESS_SINKS) {}

  /** Starts copying a child's stdout and stderr; its lines get a prefix once `label` names the app. */
  attach(child: ChildProcess): void {
    const streams: [Readable | null, (chunk: Buffer) => void][] = [
      [child.stdout, this.sinks.stdout],
      [child.stderr, this.sinks.stderr],
    ];
    const prefixers: LinePrefixer[] = [];
    const ends: Promise<void>[] = [];
    for (const [stream, sink] of streams) {
      if (stream === null) continue;
      const prefixer = new LinePrefixer(sink);
      prefixers.push(prefixer);
      stream.on('data', (chunk: Buffer) => prefixer.write(chunk));
      ends.push(
        new Promise<void>((resolve) => {
          // 'end': every writer has closed its end (the app and whatever inherited it) and all
          // data has been read; 'close' covers a stream destroyed on error.
          const finish = () => {
            stream.off('end', finish);
            stream.off('close', finish);
            prefixer.end();
            resolve();
          };
          stream.on('end', finish);
          stream.on('close', finish);
          stream.on('error', () => undefined);
        }),
      );
    }
    const relay: Relay = { prefixers, ended: Promise.all(ends).then(() => undefined), done: false, labeled: false };
    void relay.ended.then(() => (relay.done = true));
    this.relays.set(child, relay);
  }

  /** The child now runs `app`: its lines are prefixed `[app] `. */
  label(child: ChildProcess, app: string): void {
    const relay = this.relays.get(child);
    if (relay === undefined) return;
    relay.labeled = true;
    for (const prefixer of relay.prefixers) prefixer.setPrefix(`[${app}] `);
  }

  /**
   * Waits until the output of every labeled child has been read to its end, at most `timeoutMs`
   * (a process that left the pod's apps behind may hold a pipe open: it dies with the init), then
   * emits what partial lines remain.
   */
  async drain(timeoutMs = 2000): Promise<void> {
    const labeled = [...this.relays.values()].filter((r) => r.labeled);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.all(labeled.map((r) => r.ended)), new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)))]);
    clearTimeout(timer);
    for (const relay of labeled) if (!relay.done) for (const prefixer of relay.prefixers) prefixer.end();
  }
}
