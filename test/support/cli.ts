// Runs the built tspod CLI (bin/run.js) as a user would, against throw-away data and config
// directories. The vitest global setup compiles src/ first.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { purgeTestNetworkState, removeTestNetwork, writeTestNetwork, type TestNetwork } from '../net/net-fixtures.js';

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
  /**
   * As root (pods can run): the env's own default pod network, a bridge and /24 of its own in
   * `etc/net.d/default.conf` (test/net/net-fixtures.ts), so no test touches a real `tspod0`;
   * cleanup() deletes the bridge.
   */
  readonly network: TestNetwork | undefined;

  constructor(base = fs.mkdtempSync(path.join(os.tmpdir(), 'tspod-cli-'))) {
    this.base = base;
    this.dir = path.join(base, 'data');
    this.localConfig = path.join(base, 'etc');
    this.systemConfig = path.join(base, 'usr-lib');
    this.network = process.geteuid?.() === 0 ? writeTestNetwork(this.localConfig) : undefined;
  }

  argv(args: string[]): string[] {
    return [BIN, '--dir', this.dir, '--local-config', this.localConfig, '--system-config', this.systemConfig, ...args];
  }

  /**
   * The CLI's environment: this process's, with discovery kept off the machine's own DNS (a
   * nameserver on a closed loopback port answers at once with ECONNREFUSED), so no test depends on
   * what the network in CI resolves. Tests that serve DNS pass their own TSPOD_NAMESERVER.
   */
  childEnv(): NodeJS.ProcessEnv {
    return { ...process.env, TSPOD_NAMESERVER: process.env.TSPOD_NAMESERVER ?? '127.0.0.1:1' };
  }

  run(args: string[], options: { input?: string } = {}): CliResult {
    const result = spawnSync(process.execPath, this.argv(args), { encoding: 'utf8', input: options.input ?? '', timeout: 120_000, env: this.childEnv() });
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

  /**
   * Like run, without blocking this process: for tests whose own servers (a registry front, a
   * token endpoint) must keep answering while the command runs.
   */
  runAsync(args: string[]): Promise<CliResult> {
    return new Promise((resolve, reject) => {
      const child = this.spawn(args);
      let stdout = '';
      let stderr = '';
      child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
      child.on('error', reject);
      child.on('close', (status) => resolve({ status, stdout, stderr }));
    });
  }

  spawn(args: string[]): ChildProcess {
    return spawn(process.execPath, this.argv(args), { stdio: ['ignore', 'pipe', 'pipe'], env: this.childEnv() });
  }

  cleanup(): void {
    // Rules of pods killed without `tspod gc`, then the env's bridge.
    if (this.network !== undefined) purgeTestNetworkState(this.dir);
    removeTestNetwork(this.network);
    fs.rmSync(this.base, { recursive: true, force: true });
  }
}

/** The TspodEnvs a suite makes, to clean up together (in its afterAll). */
export class TspodEnvs {
  private readonly made: TspodEnv[] = [];

  make(): TspodEnv {
    const env = new TspodEnv();
    this.made.push(env);
    return env;
  }

  cleanup(): void {
    for (const env of this.made.splice(0)) env.cleanup();
  }
}
