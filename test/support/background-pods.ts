// Test helper: `tspod run` pods left running in the background by a suite (servers, pods to kill
// with SIGKILL), started until they are ready and stopped together with SIGTERM in afterAll.
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import type { TspodEnv } from './cli.js';

export interface BackgroundPod<Status> {
  uuid: string;
  /** `tspod status --json` once the pod was ready (its networks are up then). */
  pod: Status;
  child: ChildProcess;
  exited: Promise<number | null>;
}

export class BackgroundPods {
  private readonly started: { child: ChildProcess; exited: Promise<number | null> }[] = [];

  /** `tspod run --insecure-options=image ARGS` in the background; resolves once `status --wait-ready` says it is ready. */
  async start<Status = unknown>(env: TspodEnv, args: string[]): Promise<BackgroundPod<Status>> {
    const uuidFile = path.join(env.base, `background-${this.started.length}.uuid`);
    const child = env.spawn(['run', '--insecure-options=image', `--uuid-file-save=${uuidFile}`, ...args]);
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    this.started.push({ child, exited });
    for (let i = 0; i < 600 && !fs.existsSync(uuidFile) && child.exitCode === null; i++) await sleep(50);
    if (!fs.existsSync(uuidFile)) throw new Error(`tspod run ${args.join(' ')} exited ${child.exitCode}: ${stderr}`);
    const uuid = fs.readFileSync(uuidFile, 'utf8').trim();
    const ready = env.run(['status', '--wait-ready=60s', uuid]);
    if (ready.status !== 0) throw new Error(`tspod status --wait-ready ${uuid} exited ${ready.status}: ${ready.stderr}\n${stderr}`);
    return { uuid, pod: env.json<Status>(['status', uuid]), child, exited };
  }

  /** SIGTERM to every pod still running, each awaited. */
  async stopAll(): Promise<void> {
    for (const { child, exited } of this.started.splice(0)) {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        await exited;
      }
    }
  }
}
