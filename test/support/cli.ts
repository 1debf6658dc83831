// Runs the built tspod CLI (bin/run.js) as a user would, against throw-away data and config
// directories. The vitest global setup compiles src/ first.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const ROOT = path.resolve(import.meta.dirname, '../..');
export const BIN = path.join(ROOT, 'bin', 'run.js');

export interface CliResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

export class TspodEnv {
  readonly base: string;
  readonly dir: string;
  readonly localConfig: string;
  readonly systemConfig: string;

  constructor(base = fs.mkdtempSync(path.join(os.tmpdir(), 'tspod-cli-'))) {
    this.base = base;
    this.dir = path.join(base, 'data');
    this.localConfig = path.join(base, 'etc');
    this.systemConfig = path.join(base, 'usr-lib');
  }

  argv(args: string[]): string[] {
    return [BIN, '--dir', this.dir, '--local-config', this.localConfig, '--system-config', this.systemConfig, ...args];
  }

  run(args: string[], options: { input?: string } = {}): CliResult {
    const result = spawnSync(process.execPath, this.argv(args), { encoding: 'utf8', input: options.input ?? '', timeout: 120_000 });
    return { status: result.status, stdout: result.stdout, stderr: result.stderr };
  }

  /** Like run, but the command must succeed; returns stdout. */
  ok(args: string[]): string {
    const result = this.run(args);
    if (result.status !== 0) throw new Error(`tspod ${args.join(' ')} exited ${result.status}:\n${result.stderr}${result.stdout}`);
    return result.stdout;
  }

  json<T = unknown>(args: string[]): T {
    return JSON.parse(this.ok([...args, '--json'])) as T;
  }

  spawn(args: string[]): ChildProcess {
    return spawn(process.execPath, this.argv(args), { stdio: ['ignore', 'pipe', 'pipe'] });
  }

  cleanup(): void {
    fs.rmSync(this.base, { recursive: true, force: true });
  }
}
