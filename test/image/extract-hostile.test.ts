// Runs the hostile corpus (fixtures/hostile/make-corpus.ts) through extractTar: every case must
// end as declared ('refused' with an ImageFormatError naming the entry, or 'contained'), and in
// every case nothing outside the target may appear or change, nor may the target hold a hardlink
// to a file outside it. Runs privileged (as root) and unprivileged (`privileged: false`).
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { makeCorpus, type HostileCase } from '../../fixtures/hostile/make-corpus.js';
import { ImageFormatError } from '../../src/errors.js';
import { extractTar } from '../../src/image/extract.js';
import { libcSyscalls } from '../../src/sys/index.js';

const isRoot = process.geteuid?.() === 0;
// tmpfs when there is one: the root ext4 here has no journal, and creating many small trees
// right after deletions there is 16-20x slower (docs/peers.md §1).
const TMP_BASE = fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir();

const corpusDir = fs.mkdtempSync(path.join(TMP_BASE, 'tspod-hostile-'));
let cases: HostileCase[] = [];
// vitest collects tests synchronously, so the case list is built at import time by a top-level await.
cases = await makeCorpus(corpusDir);

function makeSentinel(dir: string): void {
  fs.mkdirSync(path.join(dir, 'sub'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'secret'), 'secret');
  fs.writeFileSync(path.join(dir, 'sub/file'), 'file');
}

beforeAll(() => {
  makeSentinel(path.join(corpusDir, 'sentinel'));
});

afterAll(() => {
  // Read-only directories from the archives would stop a non-root rm -r.
  execFileSync('chmod', ['-R', 'u+rwx', corpusDir]);
  fs.rmSync(corpusDir, { recursive: true, force: true });
});

/** Every path under `root` except `exclude`, with what would show a change. */
function snapshot(root: string, exclude: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (dir: string): void => {
    for (const name of fs.readdirSync(dir)) {
      const p = path.join(dir, name);
      if (p === exclude) continue;
      const st = fs.lstatSync(p);
      out.set(p, `${st.mode.toString(8)}:${st.size}:${st.mtimeMs}:${st.ino}:${st.nlink}:${st.uid}:${st.gid}`);
      if (st.isDirectory()) walk(p);
    }
  };
  walk(root);
  return out;
}

/** Regular files in `target` with nlink > 1 must have all their links inside `target`. */
function outsideHardlinks(target: string): string[] {
  const counts = new Map<string, { nlink: number; seen: number; path: string }>();
  const walk = (dir: string): void => {
    for (const name of fs.readdirSync(dir)) {
      const p = path.join(dir, name);
      const st = fs.lstatSync(p);
      if (st.isDirectory()) walk(p);
      else if (!st.isSymbolicLink() && st.nlink > 1) {
        const key = `${st.dev}:${st.ino}`;
        const entry = counts.get(key) ?? { nlink: st.nlink, seen: 0, path: p };
        entry.seen += 1;
        counts.set(key, entry);
      }
    }
  };
  walk(target);
  return [...counts.values()].filter((c) => c.seen !== c.nlink).map((c) => c.path);
}

function describeCorpus(privileged: boolean): void {
  let run = 0;
  for (const c of cases) {
    it(`${c.name}: ${c.expect} (${c.description})`, async () => {
      run += 1;
      const runDir = path.join(corpusDir, 'runs', `${privileged ? 'root' : 'user'}-${run}-${c.name}`);
      const target = path.join(runDir, 'target');
      fs.mkdirSync(target, { recursive: true });
      makeSentinel(path.join(runDir, 'sentinel'));
      c.setup?.(target, runDir);
      const before = snapshot(corpusDir, target);
      const warnings: string[] = [];
      const rssBefore = process.memoryUsage().rss;
      let error: unknown;
      try {
        await extractTar(fs.createReadStream(c.file), target, {
          sys: libcSyscalls,
          privileged,
          onWarning: (m) => warnings.push(m),
          ...(c.prefix === undefined ? {} : { prefix: c.prefix }),
          ...(c.overwrite === undefined ? {} : { overwrite: c.overwrite }),
          ...(c.limits === undefined ? {} : { limits: c.limits }),
        });
      } catch (err) {
        error = err;
      }
      if (c.expect === 'refused') {
        expect(error, 'expected the archive to be refused').toBeInstanceOf(ImageFormatError);
        const message = (error as Error).message;
        expect(message).toMatch(/^extract /);
        for (const m of c.mentions ?? []) expect(message).toContain(m);
      } else {
        expect(error).toBeUndefined();
        c.check?.(target, { privileged, warnings });
      }
      // A claimed size is never allocated (huge-size cases claim 1 TiB).
      expect(process.memoryUsage().rss - rssBefore).toBeLessThan(256 * 1024 * 1024);
      expect(snapshot(corpusDir, target)).toEqual(before);
      expect(outsideHardlinks(target)).toEqual([]);
    });
  }
}

describe('hostile corpus', () => {
  it('has at least 40 cases, both expectations, unique names', () => {
    expect(cases.length).toBeGreaterThanOrEqual(40);
    expect(new Set(cases.map((c) => c.name)).size).toBe(cases.length);
    expect(cases.some((c) => c.expect === 'contained')).toBe(true);
    expect(cases.some((c) => c.expect === 'refused')).toBe(true);
  });

  // Privileged extraction keeps owners, setuid bits and device nodes: needs CAP_CHOWN/CAP_MKNOD.
  describe.skipIf(!isRoot)('privileged (needs root: chown, mknod)', () => describeCorpus(true));
  describe('unprivileged (privileged: false)', () => describeCorpus(false));
});
