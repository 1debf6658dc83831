// Progress of downloads, one task per download, in one of four modes chosen by a pure function:
//
//   tty    bars on stderr, one line per download (several at once), redrawn in place at most
//          every `redrawMs`: label, bar, percent, bytes, rate, ETA. A finished download at the top
//          of the block stays printed and leaves the live block.
//   plain  stderr is not a terminal (logs, CI): a line at the start, when 10% steps are crossed or
//          5 s passed since the last line, on retries and restarts, and at the end. No escapes, no
//          carriage returns (bars in logs were a recurring complaint: ecosystem-notes §6.2).
//   json   `--json`: one JSON object per line on stdout, per event (data events at most every
//          `jsonIntervalMs` per download). Shape, stable:
//            {"type": "progress", "id": "1", "label": "...", "event": "start"|"data"|"retry"|
//             "restart"|"done"|"error", "time": RFC 3339, "bytes": N, "total": N|null,
//             ...per event: start {url, resumedFrom}; data {rate}; retry {attempt, delayMs, reason};
//             restart {reason}; done {elapsedMs, rate}; error {message}}
//          `rate` is in bytes per second (an integer), `elapsedMs` in milliseconds.
//   none   `--quiet`: nothing.
//
// A small renderer of our own: the bars need only cursor-up and clear-line (ECMA-48 CPL, EL), and
// none of the bar libraries offers the plain and JSON modes, which are most of this file.
import type { DownloadEvent } from '../http/download.js';
import { formatSize } from './table.js';

export const PROGRESS_MODES = ['tty', 'plain', 'json', 'none'] as const;
export type ProgressMode = (typeof PROGRESS_MODES)[number];

export interface ProgressModeInput {
  /** `--json` */
  json: boolean;
  /** `--quiet` */
  quiet: boolean;
  stderrIsTTY: boolean;
  /** $TERM: `dumb` terminals cannot move the cursor. */
  term?: string | undefined;
}

/** Pure: `--quiet` wins, then `--json`, then a real terminal gets bars, anything else lines. */
export function chooseProgressMode(input: ProgressModeInput): ProgressMode {
  if (input.quiet) return 'none';
  if (input.json) return 'json';
  if (input.stderrIsTTY && input.term !== 'dumb') return 'tty';
  return 'plain';
}

/** What the reporter writes to: process.stderr / process.stdout, or a fake in tests. */
export interface ProgressStream {
  write(chunk: string): unknown;
  columns?: number | undefined;
}

export interface ProgressReporterOptions {
  mode: ProgressMode;
  /** tty and plain output. */
  stderr: ProgressStream;
  /** json output. */
  stdout: ProgressStream;
  now?: () => number;
  /** Minimum time between two TTY redraws (default 100 ms); start, end and failures redraw at once. */
  redrawMs?: number;
  /** Plain mode: a line at least this often while bytes arrive (default 5 s). */
  plainIntervalMs?: number;
  /** JSON mode: at most one data event per download this often (default 1 s). */
  jsonIntervalMs?: number;
}

export interface ProgressTask {
  readonly id: string;
  readonly label: string;
  /** Feeds one download event (pass as `onProgress`). */
  update(event: DownloadEvent): void;
  /** The download failed: shows why and ends the task. */
  fail(message: string): void;
}

interface TaskState {
  id: string;
  label: string;
  bytes: number;
  total: number | null;
  rate: number;
  status: 'waiting' | 'running' | 'retrying' | 'done' | 'failed';
  note: string;
  lastLineAt: number;
  lastDecile: number;
  lastJsonAt: number;
}

/** "1m05s", "2h03m", "6s". */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

function formatRate(rate: number): string {
  return `${formatSize(Math.max(0, Math.round(rate)))}/s`;
}

function percent(task: Pick<TaskState, 'bytes' | 'total'>): number | null {
  if (task.total === null || task.total <= 0) return null;
  return Math.min(100, Math.floor((task.bytes * 100) / task.total));
}

/** One TTY line of a task, at most `columns - 1` characters (a full line would wrap on some terminals). */
export function renderBarLine(task: Pick<TaskState, 'label' | 'bytes' | 'total' | 'rate' | 'status' | 'note'>, columns: number): string {
  const width = Math.max(20, columns) - 1;
  const labelWidth = Math.min(task.label.length, Math.max(10, Math.floor(width * 0.35)));
  const label = task.label.length > labelWidth ? `${task.label.slice(0, labelWidth - 1)}…` : task.label;
  let stats: string;
  let bar = '';
  if (task.status === 'done') {
    stats = `done ${formatSize(task.bytes)}${task.note ? ` ${task.note}` : ''}`;
  } else if (task.status === 'failed' || task.status === 'retrying' || task.status === 'waiting') {
    stats = task.note;
  } else {
    const pct = percent(task);
    const eta = pct !== null && task.rate > 0 ? `  ETA ${formatDuration((task.total! - task.bytes) / task.rate)}` : '';
    const size = task.total !== null ? `${formatSize(task.bytes)}/${formatSize(task.total)}` : formatSize(task.bytes);
    stats = `${pct !== null ? `${String(pct).padStart(3)}%  ` : ''}${size}  ${formatRate(task.rate)}${eta}`;
    const room = width - label.length - stats.length - 6;
    if (pct !== null && room >= 10) {
      const barWidth = Math.min(40, room);
      const filled = Math.round((barWidth * pct) / 100);
      bar = `[${'='.repeat(filled)}${' '.repeat(barWidth - filled)}]`;
    }
  }
  const line = bar ? `${label}  ${bar}  ${stats}` : `${label}  ${stats}`;
  return line.length > width ? line.slice(0, width) : line;
}

/** Reports the progress of any number of downloads in one mode. */
export class ProgressReporter {
  readonly mode: ProgressMode;
  private readonly tasks: TaskState[] = [];
  /** Tasks in the live TTY block, top to bottom. */
  private live: TaskState[] = [];
  private linesDrawn = 0;
  private lastDraw = -Infinity;
  private nextId = 1;
  private trailing: NodeJS.Timeout | undefined;
  private readonly now: () => number;

  constructor(private readonly opts: ProgressReporterOptions) {
    this.mode = opts.mode;
    this.now = opts.now ?? Date.now;
  }

  task(label: string): ProgressTask {
    const state: TaskState = {
      id: String(this.nextId++),
      label,
      bytes: 0,
      total: null,
      rate: 0,
      status: 'waiting',
      note: 'waiting',
      lastLineAt: -Infinity,
      lastDecile: -1,
      lastJsonAt: -Infinity,
    };
    this.tasks.push(state);
    if (this.mode === 'tty') {
      this.live.push(state);
      this.draw(true);
    }
    return {
      id: state.id,
      label,
      update: (event) => this.onEvent(state, event),
      fail: (message) => this.onFail(state, message),
    };
  }

  /** Another line of output (a warning) without breaking the bars. */
  log(line: string): void {
    if (this.mode === 'none' || this.mode === 'json') return;
    if (this.mode === 'tty') {
      this.clearBlock();
      this.opts.stderr.write(`${line}\n`);
      this.draw(true);
      return;
    }
    this.opts.stderr.write(`${line}\n`);
  }

  /** The last frame: every bar in its final state, the cursor below them. */
  finish(): void {
    if (this.mode === 'tty') {
      this.draw(true);
      this.live = [];
      this.linesDrawn = 0;
    }
  }

  private onEvent(task: TaskState, event: DownloadEvent): void {
    const t = this.now();
    let force = false;
    switch (event.type) {
      case 'start':
        task.bytes = event.bytes;
        task.total = event.total;
        task.status = 'running';
        task.note = '';
        force = true;
        break;
      case 'data':
        task.bytes = event.bytes;
        task.total = event.total;
        task.rate = event.rate;
        task.status = 'running';
        break;
      case 'retry':
        task.status = 'retrying';
        task.note = `retrying in ${formatDuration(event.delayMs / 1000)} (try ${event.attempt}): ${event.reason}`;
        force = true;
        break;
      case 'restart':
        task.bytes = 0;
        task.rate = 0;
        task.lastDecile = -1;
        task.note = event.reason;
        force = true;
        break;
      case 'done':
        task.bytes = event.bytes;
        task.total = event.total;
        task.rate = event.rate;
        task.status = 'done';
        task.note = `in ${formatDuration(event.elapsedMs / 1000)} (${formatRate(event.rate)})`;
        force = true;
        break;
    }
    if (this.mode === 'json') this.json(task, event, t);
    else if (this.mode === 'plain') this.plain(task, event, t);
    else if (this.mode === 'tty') this.draw(force);
  }

  private onFail(task: TaskState, message: string): void {
    task.status = 'failed';
    task.note = `failed: ${message}`;
    if (this.mode === 'json') {
      this.writeJson(task, 'error', { message });
    } else if (this.mode === 'plain') {
      this.opts.stderr.write(`${task.label}: failed: ${message}\n`);
    } else if (this.mode === 'tty') {
      this.draw(true);
    }
  }

  private writeJson(task: TaskState, event: string, fields: Record<string, unknown>): void {
    const line = {
      type: 'progress',
      id: task.id,
      label: task.label,
      event,
      time: new Date(this.now()).toISOString(),
      bytes: task.bytes,
      total: task.total,
      ...fields,
    };
    this.opts.stdout.write(`${JSON.stringify(line)}\n`);
  }

  private json(task: TaskState, event: DownloadEvent, t: number): void {
    switch (event.type) {
      case 'start':
        this.writeJson(task, 'start', { url: event.url, resumedFrom: event.resumedFrom });
        break;
      case 'data': {
        const complete = task.total !== null && task.bytes >= task.total;
        if (t - task.lastJsonAt < (this.opts.jsonIntervalMs ?? 1000) && !complete) return;
        task.lastJsonAt = t;
        this.writeJson(task, 'data', { rate: Math.round(event.rate) });
        break;
      }
      case 'retry':
        this.writeJson(task, 'retry', { attempt: event.attempt, delayMs: event.delayMs, reason: event.reason });
        break;
      case 'restart':
        this.writeJson(task, 'restart', { reason: event.reason });
        break;
      case 'done':
        this.writeJson(task, 'done', { elapsedMs: event.elapsedMs, rate: Math.round(event.rate) });
        break;
    }
  }

  private plain(task: TaskState, event: DownloadEvent, t: number): void {
    const out = (text: string): void => {
      task.lastLineAt = t;
      this.opts.stderr.write(`${text}\n`);
    };
    switch (event.type) {
      case 'start': {
        task.lastDecile = Math.floor((percent(task) ?? 0) / 10);
        const size = task.total === null ? '' : ` (${formatSize(task.total)})`;
        const resumed = event.resumedFrom > 0 ? `, resuming at ${formatSize(event.resumedFrom)}` : '';
        out(`${task.label}: downloading${size}${resumed}`);
        break;
      }
      case 'data': {
        const pct = percent(task);
        const decile = pct === null ? -1 : Math.floor(pct / 10);
        const stepCrossed = pct !== null && decile > task.lastDecile && pct < 100;
        const quiet = t - task.lastLineAt >= (this.opts.plainIntervalMs ?? 5000);
        if (!stepCrossed && !quiet) return;
        if (pct !== null) task.lastDecile = Math.max(task.lastDecile, decile);
        const size = task.total === null ? formatSize(task.bytes) : `${pct}% ${formatSize(task.bytes)} of ${formatSize(task.total)}`;
        out(`${task.label}: ${size}, ${formatRate(event.rate)}`);
        break;
      }
      case 'retry':
        out(`${task.label}: ${event.reason}; retrying in ${formatDuration(event.delayMs / 1000)} (try ${event.attempt})`);
        break;
      case 'restart':
        out(`${task.label}: ${event.reason}`);
        break;
      case 'done':
        out(`${task.label}: done, ${formatSize(event.bytes)} in ${formatDuration(event.elapsedMs / 1000)} (${formatRate(event.rate)})`);
        break;
    }
  }

  /** Moves to the top of the live block and clears it. */
  private clearBlock(): void {
    if (this.linesDrawn === 0) return;
    // CPL (cursor previous line) to the block's first line, then ED 0 (erase to the end of screen).
    this.opts.stderr.write(`\x1b[${this.linesDrawn}F\x1b[0J`);
    this.linesDrawn = 0;
  }

  private draw(force: boolean): void {
    const t = this.now();
    const interval = this.opts.redrawMs ?? 100;
    if (!force && t - this.lastDraw < interval) {
      // A skipped frame is drawn a little later, so the last bytes before a pause are shown.
      this.trailing ??= setTimeout(() => {
        this.trailing = undefined;
        this.draw(true);
      }, interval).unref();
      return;
    }
    if (this.trailing !== undefined) {
      clearTimeout(this.trailing);
      this.trailing = undefined;
    }
    this.lastDraw = t;
    const columns = this.opts.stderr.columns ?? 80;
    let frame = this.linesDrawn > 0 ? `\x1b[${this.linesDrawn}F` : '';
    for (const task of this.live) frame += `\x1b[2K${renderBarLine(task, columns)}\n`;
    this.opts.stderr.write(frame);
    this.linesDrawn = this.live.length;
    // Finished downloads at the top are printed for good: they leave the redrawn block.
    while (this.live.length > 0 && (this.live[0]!.status === 'done' || this.live[0]!.status === 'failed')) {
      this.live.shift();
      this.linesDrawn -= 1;
    }
  }
}

export function createProgressReporter(opts: ProgressReporterOptions): ProgressReporter {
  return new ProgressReporter(opts);
}
