import { Flags } from '@oclif/core';

import { TspodCommand } from '../cli/base-command.js';
import { podUuidsArg, uuidFileFlag } from '../cli/pod-flags.js';
import { stopPod, type StopResult } from '../pod/stop.js';
import { podUuidsFromArgs } from '../pod/uuid.js';

export default class Stop extends TspodCommand<typeof Stop> {
  static override summary = 'Stop running pods';
  static override description =
    "Sends SIGTERM to each pod's PID 1, which stops the apps (SIGKILL after the pod's --stop-timeout); `tspod run` then exits. " +
    '--force kills the pod at once.';
  static override examples = ['<%= config.bin %> stop 5f3a2b1c', '<%= config.bin %> stop --force 5f3a2b1c 0b9e44d2', '<%= config.bin %> stop --uuid-file=/run/app.uuid'];
  static override strict = false;
  static override enableJsonFlag = true;
  static override args = { uuid: podUuidsArg };
  static override flags = {
    force: Flags.boolean({ description: 'SIGKILL instead of an orderly stop', default: false }),
    'uuid-file': uuidFileFlag,
  };

  public async run(): Promise<StopResult[]> {
    const { dir } = this.flags;
    const results = podUuidsFromArgs(dir, this.positionals, this.flags['uuid-file']).map((uuid) => stopPod(dir, this.context.sys, uuid, { force: this.flags.force }));
    for (const r of results) this.log(`${r.uuid}: ${r.signal} sent to pod pid ${r.pid}`);
    return results;
  }
}
