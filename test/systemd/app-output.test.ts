import { spawn } from 'node:child_process';

import { describe, expect, it } from 'vitest';

import { AppOutput, LinePrefixer } from '../../stage1/app-output.js';

function prefixer(maxLine?: number) {
  const emitted: string[] = [];
  const p = new LinePrefixer((chunk) => emitted.push(chunk.toString()), maxLine);
  return { p, emitted };
}

describe('LinePrefixer', () => {
  it('emits whole lines only, each with the prefix, all lines of one chunk in one write', () => {
    const { p, emitted } = prefixer();
    p.setPrefix('[web] ');
    p.write(Buffer.from('one\ntwo\npart'));
    p.write(Buffer.from('ial\n'));
    expect(emitted).toEqual(['[web] one\n[web] two\n', '[web] partial\n']);
  });

  it('emits a last line without newline at the end, with one added', () => {
    const { p, emitted } = prefixer();
    p.setPrefix('[a] ');
    p.write(Buffer.from('done'));
    expect(emitted).toEqual([]);
    p.end();
    p.end();
    expect(emitted).toEqual(['[a] done\n']);
  });

  it('gives lines buffered before the app was known the prefix set later', () => {
    const { p, emitted } = prefixer();
    p.write(Buffer.from('early '));
    p.setPrefix('[late] ');
    p.write(Buffer.from('line\n'));
    expect(emitted).toEqual(['[late] early line\n']);
  });

  it('cuts a line longer than the maximum into lines of that size', () => {
    const { p, emitted } = prefixer(4);
    p.setPrefix('>');
    p.write(Buffer.from('abcdefghij\nxy'));
    p.write(Buffer.from('zw'));
    p.write(Buffer.from('q\n'));
    expect(emitted.join('')).toBe('>abcd\n>efgh\n>ij\n>xyzw\n>q\n');
  });

  it('keeps bytes as they are (a UTF-8 character split across chunks)', () => {
    const { p, emitted } = prefixer();
    const text = Buffer.from('été\n');
    p.write(text.subarray(0, 1));
    p.write(text.subarray(1));
    expect(emitted).toEqual(['été\n']);
  });
});

describe('AppOutput', () => {
  it('relays a child\'s stdout and stderr with its label, and drain waits for its last partial line', async () => {
    const out: string[] = [];
    const err: string[] = [];
    const output = new AppOutput({ stdout: (c) => out.push(c.toString()), stderr: (c) => err.push(c.toString()) });
    const child = spawn('/bin/sh', ['-c', 'echo a; echo b >&2; sleep 0.1; printf tail'], { stdio: ['ignore', 'pipe', 'pipe'] });
    output.attach(child);
    output.label(child, 'web');
    await new Promise((resolve) => child.on('exit', resolve));
    await output.drain(5000);
    expect(out.join('')).toBe('[web] a\n[web] tail\n');
    expect(err.join('')).toBe('[web] b\n');
  });

  it('drain gives up after its timeout when a process keeps the pipe open, and flushes what it has', async () => {
    const out: string[] = [];
    const output = new AppOutput({ stdout: (c) => out.push(c.toString()), stderr: () => undefined });
    // The shell exits at once; its background sleep keeps stdout open.
    const child = spawn('/bin/sh', ['-c', 'printf partial; sleep 30 & exit 0'], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    output.attach(child);
    output.label(child, 'x');
    await new Promise((resolve) => child.on('exit', resolve));
    await output.drain(200);
    expect(out.join('')).toBe('[x] partial\n');
    process.kill(-child.pid!, 'SIGKILL');
  });

  it('drain does not wait for children that were never labeled (idle warm exec steps)', async () => {
    const output = new AppOutput({ stdout: () => undefined, stderr: () => undefined });
    const idle = spawn('/bin/sleep', ['20'], { stdio: ['ignore', 'pipe', 'pipe'] });
    output.attach(idle);
    await output.drain(50_000);
    // Had drain waited for it, the idle child would have ended first.
    expect(idle.exitCode).toBeNull();
    idle.kill('SIGKILL');
  });
});
