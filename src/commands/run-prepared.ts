import fs from 'node:fs';
import path from 'node:path';

import { Args } from '@oclif/core';

import { POD_FILES, type RunOptions } from '../../stage1/contract.js';
import { TspodCommand } from '../cli/base-command.js';
import { launchPod } from '../pod/launch.js';
import { beginRun, podPath } from '../pod/state.js';
import { resolvePodUuid } from '../pod/uuid.js';

export default class RunPrepared extends TspodCommand<typeof RunPrepared> {
  static override summary = 'Run a prepared pod in the foreground';
  static override description = 'Starts a pod made by `tspod prepare`; it behaves as `tspod run` from there on. Of two processes starting one pod, one wins.';
  static override examples = ['<%= config.bin %> run-prepared 5f3a2b1c', '<%= config.bin %> run-prepared $(cat /run/app.uuid)'];
  static override args = { uuid: Args.string({ description: 'pod uuid (or a unique prefix)', required: true }) };

  public async run(): Promise<void> {
    const { dir } = this.flags;
    const { sys } = this.context;
    const pod = await beginRun(dir, sys, resolvePodUuid(dir, this.args.uuid));
    const runOptions = JSON.parse(fs.readFileSync(path.join(podPath(dir, pod.location, pod.uuid), POD_FILES.runOptions), 'utf8')) as RunOptions;
    process.exitCode = await launchPod(dir, sys, pod, runOptions);
  }
}
