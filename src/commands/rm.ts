// `tspod rm UUID...`: deletes exited, prepared or aborted pods now (unmounting what is left),
// without waiting for gc's grace period. Running pods are refused: `tspod stop` them first.

import { TspodCommand } from '../cli/base-command.js';
import { podUuidsArg, uuidFileFlag } from '../cli/pod-flags.js';
import { TspodError } from '../errors.js';
import { removePod, type PodRemoval } from '../pod/gc.js';
import { podUuidsFromArgs } from '../pod/uuid.js';

export default class Rm extends TspodCommand<typeof Rm> {
  static override summary = 'Remove pods that are not running';
  static override description =
    'Removes each pod (exited, prepared or an aborted prepare) at once, mounts included. A running pod is refused; stop it first with `tspod stop`. The other pods are still removed when one fails.';
  static override examples = ['<%= config.bin %> rm 5f3a2b1c', '<%= config.bin %> rm 5f3a2b1c 0b9e44d2', '<%= config.bin %> rm --uuid-file=/run/app.uuid'];
  static override strict = false;
  static override enableJsonFlag = true;
  static override args = { uuid: podUuidsArg };
  static override flags = {
    'uuid-file': uuidFileFlag,
  };

  public async run(): Promise<PodRemoval[]> {
    const { dir } = this.flags;
    const { sys } = this.context;
    const removed: PodRemoval[] = [];
    const failures: TspodError[] = [];
    const uuids = podUuidsFromArgs(dir, this.positionals, this.flags['uuid-file']);
    for (const uuid of uuids) {
      try {
        removed.push(await removePod(dir, sys, uuid));
        this.log(`removed pod ${uuid}`);
      } catch (err) {
        if (!(err instanceof TspodError) || uuids.length === 1) throw err;
        failures.push(err);
        process.stderr.write(`tspod: ${err.message}\n`);
      }
    }
    if (failures.length > 0) {
      throw new TspodError(`rm: ${failures.length} of ${uuids.length} pods not removed`, { suggestions: [...new Set(failures.flatMap((f) => f.suggestions))] });
    }
    return removed;
  }
}
