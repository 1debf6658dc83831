// Progress output: the mode choice as data, and each mode rendered into a fake stream. TTY output is
// replayed on a tiny terminal model (cursor-previous-line, erase line, erase below) so the checks
// are about what a user would see, not about escape sequences.
import { setTimeout as sleep } from 'node:timers/promises';

import { describe, expect, it } from 'vitest';

import type { DownloadEvent } from '../../src/http/download.js';
import { chooseProgressMode, createProgressReporter, formatDuration, renderBarLine, type ProgressMode, type ProgressModeInput } from '../../src/output/progress.js';

const MiB = 1024 * 1024;

class FakeStream {
  chunks: string[] = [];
  constructor(readonly columns: number | undefined = 80) {}
  write(chunk: string): boolean {
    this.chunks.push(chunk);
    return true;
  }
  get text(): string {
    return this.chunks.join('');
  }
}

/** Replays output on a screen: handles ESC[nF, ESC[2K, ESC[0J, newlines and text. */
function screen(output: string): string[] {
  const lines: string[] = [''];
  let row = 0;
  const re = /\x1b\[(\d*)([A-Za-z])|\n|[^\x1b\n]+/g;
  for (const m of output.matchAll(re)) {
    const tok = m[0];
    if (tok === '\n') {
      row += 1;
      if (lines.length <= row) lines.push('');
    } else if (m[2] === 'F') {
      row = Math.max(0, row - Number(m[1] || 1));
    } else if (m[2] === 'K') {
      lines[row] = '';
    } else if (m[2] === 'J') {
      lines.length = row + 1;
      lines[row] = '';
    } else if (m[2] !== undefined) {
      throw new Error(`unexpected escape ${JSON.stringify(tok)}`);
    } else {
      lines[row] = (lines[row] ?? '') + tok;
    }
  }
  while (lines.length > 0 && lines.at(-1) === '') lines.pop();
  return lines;
}

function clock(start = 1_000_000): { now: () => number; advance: (ms: number) => void } {
  let t = start;
  return { now: () => t, advance: (ms) => void (t += ms) };
}

describe('chooseProgressMode', () => {
  const cases: [string, ProgressModeInput, ProgressMode][] = [
    ['a terminal', { json: false, quiet: false, stderrIsTTY: true, term: 'xterm-256color' }, 'tty'],
    ['a pipe or a log file', { json: false, quiet: false, stderrIsTTY: false, term: 'xterm' }, 'plain'],
    ['a dumb terminal', { json: false, quiet: false, stderrIsTTY: true, term: 'dumb' }, 'plain'],
    ['--json on a terminal', { json: true, quiet: false, stderrIsTTY: true }, 'json'],
    ['--json in a pipe', { json: true, quiet: false, stderrIsTTY: false }, 'json'],
    ['--quiet on a terminal', { json: false, quiet: true, stderrIsTTY: true }, 'none'],
    ['--quiet with --json', { json: true, quiet: true, stderrIsTTY: false }, 'none'],
  ];
  it.each(cases)('%s -> %s', (_name, input, mode) => {
    expect(chooseProgressMode(input)).toBe(mode);
  });
});

describe('tty bars', () => {
  it('shows label, bar, percent, bytes, rate and ETA for a download in flight', () => {
    const line = renderBarLine({ label: 'example.com/app:1.0', bytes: MiB, total: 2 * MiB, rate: 512 * 1024, status: 'running', note: '' }, 80);
    expect(line).toMatch(/^example\.com\/app:1\.0  \[=+ +\]   50%  1\.0MiB\/2\.0MiB  512KiB\/s  ETA 2s$/);
    const bar = /\[(=*)( *)\]/.exec(line)!;
    expect(Math.abs(bar[1]!.length - bar[2]!.length)).toBeLessThanOrEqual(1);
    expect(line.length).toBeLessThanOrEqual(79);
  });

  it('shows bytes and rate without a bar when the size is unknown', () => {
    expect(renderBarLine({ label: 'x', bytes: 3 * MiB, total: null, rate: MiB, status: 'running', note: '' }, 80)).toBe('x  3.0MiB  1.0MiB/s');
  });

  it('fits narrow terminals: long labels are cut, the bar dropped, the line never wraps', () => {
    const label = 'registry.example.com/very/long/image/name:1.2.3-with-a-long-tag';
    for (const columns of [20, 40, 60, 100, 200]) {
      const line = renderBarLine({ label, bytes: 5 * MiB, total: 20 * MiB, rate: 2 * MiB, status: 'running', note: '' }, columns);
      expect(line.length).toBeLessThanOrEqual(Math.max(20, columns) - 1);
    }
    expect(renderBarLine({ label, bytes: 5 * MiB, total: 20 * MiB, rate: 2 * MiB, status: 'running', note: '' }, 200)).toContain('[');
    expect(renderBarLine({ label, bytes: 5 * MiB, total: 20 * MiB, rate: 2 * MiB, status: 'running', note: '' }, 40)).not.toContain('[');
  });

  it('draws several downloads at once, one line each, updated in place', () => {
    const err = new FakeStream(100);
    const c = clock();
    const r = createProgressReporter({ mode: 'tty', stderr: err, stdout: new FakeStream(), now: c.now });
    const a = r.task('example.com/a:1');
    const b = r.task('example.com/b:1');
    a.update({ type: 'start', url: 'https://example.com/a.aci', bytes: 0, total: 4 * MiB, resumedFrom: 0 });
    b.update({ type: 'start', url: 'https://example.com/b.aci', bytes: 0, total: null, resumedFrom: 0 });
    c.advance(1000);
    a.update({ type: 'data', bytes: MiB, total: 4 * MiB, rate: MiB });
    c.advance(100);
    b.update({ type: 'data', bytes: 2 * MiB, total: null, rate: 2 * MiB });
    const lines = screen(err.text);
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^example\.com\/a:1  \[.*\]   25%  1\.0MiB\/4\.0MiB  1\.0MiB\/s  ETA 3s$/);
    expect(lines[1]).toBe('example.com/b:1  2.0MiB  2.0MiB/s');
  });

  it('redraws at most every redrawMs for data (a skipped frame follows later), at once for start, retry and done', async () => {
    const err = new FakeStream();
    const c = clock();
    const r = createProgressReporter({ mode: 'tty', stderr: err, stdout: new FakeStream(), now: c.now, redrawMs: 100 });
    const t = r.task('app');
    t.update({ type: 'start', url: 'u', bytes: 0, total: 100, resumedFrom: 0 });
    const afterStart = err.chunks.length;
    for (let i = 1; i <= 10; i++) {
      c.advance(10);
      t.update({ type: 'data', bytes: i, total: 100, rate: 100 });
    }
    expect(err.chunks.length - afterStart).toBe(1); // only the event 100 ms after the start
    c.advance(5);
    t.update({ type: 'data', bytes: 11, total: 100, rate: 100 });
    expect(screen(err.text)[0]).toMatch(/ 10%/);
    await sleep(150); // the skipped frame is drawn shortly after
    expect(screen(err.text)[0]).toMatch(/ 11%/);
    t.update({ type: 'retry', attempt: 2, delayMs: 1000, reason: '503 Service Unavailable', bytes: 10, total: 100 });
    expect(screen(err.text)).toEqual(['app  retrying in 1s (try 2): 503 Service Unavailable']);
  });

  it('leaves finished downloads printed and keeps the others live; log lines go above the bars', () => {
    const err = new FakeStream();
    const c = clock();
    const r = createProgressReporter({ mode: 'tty', stderr: err, stdout: new FakeStream(), now: c.now });
    const a = r.task('a');
    const b = r.task('b');
    a.update({ type: 'start', url: 'u', bytes: 0, total: MiB, resumedFrom: 0 });
    b.update({ type: 'start', url: 'u', bytes: 0, total: MiB, resumedFrom: 0 });
    c.advance(2000);
    a.update({ type: 'done', bytes: MiB, total: MiB, elapsedMs: 2000, rate: MiB / 2 });
    r.log('warning: something');
    c.advance(1000);
    b.update({ type: 'data', bytes: MiB / 2, total: MiB, rate: MiB / 2 });
    b.fail('get https://example.com/b.aci: 404 Not Found');
    r.finish();
    const lines = screen(err.text);
    expect(lines).toEqual(['a  done 1.0MiB in 2s (512KiB/s)', 'warning: something', 'b  failed: get https://example.com/b.aci: 404 Not Found']);
  });

  it('writes nothing to stdout', () => {
    const out = new FakeStream();
    const r = createProgressReporter({ mode: 'tty', stderr: new FakeStream(), stdout: out });
    r.task('x').update({ type: 'start', url: 'u', bytes: 0, total: 1, resumedFrom: 0 });
    expect(out.chunks).toEqual([]);
  });
});

/** A download of `total` bytes in 1% steps, `stepMs` apart. */
function feed(update: (e: DownloadEvent) => void, c: ReturnType<typeof clock>, total: number | null, size: number, stepMs: number): void {
  update({ type: 'start', url: 'https://example.com/app.aci', bytes: 0, total, resumedFrom: 0 });
  for (let i = 1; i <= 100; i++) {
    c.advance(stepMs);
    update({ type: 'data', bytes: Math.round((size * i) / 100), total, rate: (size / 100) * (1000 / stepMs) });
  }
  update({ type: 'done', bytes: size, total: size, elapsedMs: stepMs * 100, rate: (size * 1000) / (stepMs * 100) });
}

describe('plain lines', () => {
  it('prints the start, every 10%, and the end, without escapes', () => {
    const err = new FakeStream();
    const c = clock();
    const r = createProgressReporter({ mode: 'plain', stderr: err, stdout: new FakeStream(), now: c.now });
    feed(r.task('example.com/app:1.0').update, c, 100 * MiB, 100 * MiB, 10);
    const lines = err.text.split('\n').filter(Boolean);
    expect(err.text).not.toMatch(/\x1b|\r/);
    expect(lines[0]).toBe('example.com/app:1.0: downloading (100MiB)');
    expect(lines.slice(1, -1)).toEqual(
      [10, 20, 30, 40, 50, 60, 70, 80, 90].map((p) => `example.com/app:1.0: ${p}% ${p}MiB of 100MiB, 100MiB/s`),
    );
    expect(lines.at(-1)).toBe('example.com/app:1.0: done, 100MiB in 1s (100MiB/s)');
  });

  it('prints every 5 s when the size is unknown or the download is slow', () => {
    const err = new FakeStream();
    const c = clock();
    const r = createProgressReporter({ mode: 'plain', stderr: err, stdout: new FakeStream(), now: c.now });
    feed(r.task('slow').update, c, null, 10 * MiB, 1000); // 100 s
    const lines = err.text.split('\n').filter(Boolean);
    expect(lines[0]).toBe('slow: downloading');
    expect(lines.length).toBe(1 + 20 + 1);
    expect(lines[1]).toBe('slow: 512KiB, 102KiB/s');
  });

  it('says when it resumes, retries, restarts and fails', () => {
    const err = new FakeStream();
    const r = createProgressReporter({ mode: 'plain', stderr: err, stdout: new FakeStream() });
    const t = r.task('app');
    t.update({ type: 'start', url: 'u', bytes: 5 * MiB, total: 10 * MiB, resumedFrom: 5 * MiB });
    t.update({ type: 'retry', attempt: 2, delayMs: 1500, reason: 'connection closed by the server', bytes: 6 * MiB, total: 10 * MiB });
    t.update({ type: 'restart', reason: 'the server sent the whole file: starting again from zero' });
    t.fail('download https://x/app.aci: 500 Internal Server Error (gave up after 5 tries)');
    expect(err.text.split('\n').filter(Boolean)).toEqual([
      'app: downloading (10MiB), resuming at 5.0MiB',
      'app: connection closed by the server; retrying in 2s (try 2)',
      'app: the server sent the whole file: starting again from zero',
      'app: failed: download https://x/app.aci: 500 Internal Server Error (gave up after 5 tries)',
    ]);
  });
});

describe('json lines', () => {
  it('prints one object per event on stdout, data at most every second, in the documented shape', () => {
    const out = new FakeStream();
    const err = new FakeStream();
    const c = clock(Date.parse('2024-05-01T12:00:00Z'));
    const r = createProgressReporter({ mode: 'json', stderr: err, stdout: out, now: c.now });
    const t = r.task('example.com/app:1.0');
    feed(t.update, c, 10 * MiB, 10 * MiB, 50); // 5 s
    t.update({ type: 'retry', attempt: 2, delayMs: 500, reason: '503 Service Unavailable', bytes: 0, total: null });
    r.task('other').fail('get https://x: 404 Not Found');
    expect(err.chunks).toEqual([]);
    const events = out.text
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    for (const e of events) {
      expect(e).toMatchObject({ type: 'progress', id: expect.any(String), label: expect.any(String), event: expect.any(String), time: expect.any(String) });
      expect(Number.isNaN(Date.parse(e.time as string))).toBe(false);
    }
    expect(events[0]).toEqual({
      type: 'progress',
      id: '1',
      label: 'example.com/app:1.0',
      event: 'start',
      time: '2024-05-01T12:00:00.000Z',
      bytes: 0,
      total: 10 * MiB,
      url: 'https://example.com/app.aci',
      resumedFrom: 0,
    });
    const data = events.filter((e) => e.event === 'data');
    expect(data.length).toBeGreaterThanOrEqual(5);
    expect(data.length).toBeLessThanOrEqual(6);
    expect(data.at(-1)).toMatchObject({ bytes: 10 * MiB, total: 10 * MiB, rate: expect.any(Number) });
    expect(Number.isInteger(data[0]!.rate)).toBe(true);
    expect(events.find((e) => e.event === 'done')).toMatchObject({ id: '1', bytes: 10 * MiB, elapsedMs: 5000, rate: 2 * MiB });
    expect(events.find((e) => e.event === 'retry')).toMatchObject({ attempt: 2, delayMs: 500, reason: '503 Service Unavailable' });
    expect(events.at(-1)).toMatchObject({ id: '2', label: 'other', event: 'error', message: 'get https://x: 404 Not Found' });
  });
});

describe('quiet', () => {
  it('writes nothing anywhere', () => {
    const out = new FakeStream();
    const err = new FakeStream();
    const c = clock();
    const r = createProgressReporter({ mode: 'none', stderr: err, stdout: out, now: c.now });
    const t = r.task('x');
    feed(t.update, c, MiB, MiB, 10);
    t.fail('boom');
    r.log('warning');
    r.finish();
    expect(out.chunks).toEqual([]);
    expect(err.chunks).toEqual([]);
  });
});

describe('formatDuration', () => {
  it.each([
    [0, '0s'],
    [59.4, '59s'],
    [65, '1m05s'],
    [3600, '1h00m'],
    [7380, '2h03m'],
  ])('%s s -> %s', (s, text) => {
    expect(formatDuration(s)).toBe(text);
  });
});
