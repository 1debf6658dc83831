// `tspod gc`: marks exited pods and aborted or expired prepares as garbage, then deletes the
// garbage whose grace period has passed (counted from the mark). Safe next to other gc runs.
import { Flags } from '@oclif/core';

import { TspodCommand } from '../cli/base-command.js';
import { parseDuration } from '../cli/duration.js';
import { EXIT_TSPOD_FAILURE } from '../errors.js';
import { gcPods, type PodGcReport } from '../pod/gc.js';

export default class Gc extends TspodCommand<typeof Gc> {
  static override summary = 'Remove exited pods after a grace period, and discard aborted or expired prepares';
  static override description =
    'Exited pods are first marked (moved to exited-garbage) and deleted by a gc run after the grace period; --mark-only only marks, which records when the pod finished (for ExecStopPost= in a systemd unit). Prepared pods not run within --expire-prepared are discarded.';
  static override examples = [
    '<%= config.bin %> gc',
    '<%= config.bin %> gc --grace-period=0',
    '<%= config.bin %> gc --grace-period=24h --expire-prepared=48h',
    '<%= config.bin %> gc --mark-only',
  ];
  static override enableJsonFlag = true;
  static override flags = {
    'grace-period': Flags.string({ description: 'keep exited pods this long after they are marked (Go duration: 30m, 24h, 0)', default: '30m' }),
    'expire-prepared': Flags.string({ description: 'discard prepared pods not run for this long', default: '24h' }),
    'mark-only': Flags.boolean({ description: 'only mark exited pods as garbage, delete nothing', default: false }),
  };

  public async run(): Promise<PodGcReport> {
    const report = await gcPods(this.flags.dir, this.context.sys, {
      gracePeriodMs: parseDuration(this.flags['grace-period'], 'grace-period'),
      expirePreparedMs: parseDuration(this.flags['expire-prepared'], 'expire-prepared'),
      markOnly: this.flags['mark-only'],
    });
    for (const uuid of report.marked) this.log(`marked pod ${uuid} as exited garbage`);
    for (const uuid of report.discarded) this.log(`moved pod ${uuid} to garbage`);
    for (const uuid of report.removed) this.log(`removed pod ${uuid}`);
    for (const { uuid, error } of report.failed) process.stderr.write(`tspod: gc pod ${uuid}: ${error}\n`);
    if (report.failed.length > 0) process.exitCode = EXIT_TSPOD_FAILURE;
    return report;
  }
}
