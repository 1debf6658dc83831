import { Args } from '@oclif/core';

import { TspodCommand } from '../cli/base-command.js';
import { runPreparedPod } from '../pod/run.js';

export default class RunPrepared extends TspodCommand<typeof RunPrepared> {
  static override summary = 'Run a prepared pod in the foreground';
  static override description = 'Starts a pod made by `tspod prepare`; it behaves as `tspod run` from there on. Of two processes starting one pod, one wins.';
  static override examples = ['<%= config.bin %> run-prepared 5f3a2b1c', '<%= config.bin %> run-prepared $(cat /run/app.uuid)'];
  static override args = { uuid: Args.string({ description: 'pod uuid (or a unique prefix)', required: true }) };

  public async run(): Promise<void> {
    process.exitCode = await runPreparedPod(this.args.uuid, {
      dir: this.flags.dir,
      sys: this.context.sys,
      warn: (m) => this.warn(m),
      networkConfig: { localConfig: this.context.options.localConfig, systemConfig: this.context.options.systemConfig },
    });
  }
}
