// `tspod status UUID`: one pod's state as rkt's k=v lines (`state=`, `created=`, `started=`,
// `networks=`, `pid=`, `exited=`, `app-NAME=CODE`), or --json (schemas/pod-status.json).
// `--wait[=DURATION]` waits until the pod has finished, `--wait-ready[=DURATION]` until it is ready.
import { Flags } from '@oclif/core';

import { TspodCommand } from '../cli/base-command.js';
import { podUuidArg, uuidFileFlag } from '../cli/pod-flags.js';
import { parseDuration } from '../cli/duration.js';
import { UsageError } from '../errors.js';
import { isPodFinished, podNetworks, toApiPodStatus, type ApiPodStatus } from '../pod/list.js';
import { readPod, type PodInfo } from '../pod/state.js';
import { podUuidsFromArgs } from '../pod/uuid.js';
import { waitPod } from '../pod/wait.js';

const FOREVER = 'forever';
const OPTIONAL_VALUE_FLAGS = ['--wait', '--wait-ready'];

function waitTimeout(value: string, flag: string): number {
  return value === FOREVER || value === 'true' ? Infinity : parseDuration(value, flag);
}

export function statusLines(pod: PodInfo): string[] {
  const lines = [`state=${pod.state}`];
  if (pod.createdAt !== undefined) lines.push(`created=${pod.createdAt.toISOString()}`);
  if (pod.startedAt !== undefined) lines.push(`started=${pod.startedAt.toISOString()}`);
  // rkt's form: `networks=default:ip4=172.31.0.2,...`
  lines.push(`networks=${podNetworks(pod).map((n) => `${n.net_name}:ip4=${n.ip}`).join(',')}`);
  if (pod.pid !== undefined) lines.push(`pid=${pod.pid}`);
  lines.push(`exited=${isPodFinished(pod)}`);
  if (pod.gcMarkedAt !== undefined) lines.push(`gc-marked=${pod.gcMarkedAt.toISOString()}`);
  for (const app of pod.apps) {
    if (app.exitCode !== undefined) lines.push(`app-${app.name}=${app.exitCode}`);
  }
  return lines;
}

export default class Status extends TspodCommand<typeof Status> {
  static override summary = "Print a pod's state";
  static override description =
    'Prints the state of a pod as key=value lines. --wait waits until the pod has finished (its lock is free), --wait-ready until all its apps have started; both poll every 100 ms and take an optional time limit (Go duration). Without a limit they wait forever.';
  static override examples = [
    '<%= config.bin %> status 5f3a2b1c',
    '<%= config.bin %> status --wait=30s 5f3a2b1c',
    '<%= config.bin %> status --wait-ready=10s --uuid-file=/run/app.uuid',
    '<%= config.bin %> status --json 5f3a2b1c',
  ];
  static override enableJsonFlag = true;
  static override args = { uuid: podUuidArg };
  static override flags = {
    wait: Flags.string({ description: 'wait until the pod has finished, at most DURATION (--wait alone: no limit)', helpValue: 'DURATION' }),
    'wait-ready': Flags.string({ description: 'wait until the pod is ready, at most DURATION (--wait-ready alone: no limit)', helpValue: 'DURATION' }),
    'uuid-file': uuidFileFlag,
  };

  public override async init(): Promise<void> {
    // rkt's --wait and --wait-ready take an optional value; oclif wants one, so a bare flag means "forever".
    this.argv = this.argv.map((arg) => (OPTIONAL_VALUE_FLAGS.includes(arg) ? `${arg}=${FOREVER}` : arg));
    await super.init();
  }

  public async run(): Promise<ApiPodStatus> {
    const { dir } = this.flags;
    const { sys } = this.context;
    const [uuid] = podUuidsFromArgs(dir, this.args.uuid === undefined ? [] : [this.args.uuid], this.flags['uuid-file']);
    if (this.flags.wait !== undefined && this.flags['wait-ready'] !== undefined) throw new UsageError('give either --wait or --wait-ready, not both');
    if (this.flags['wait-ready'] !== undefined) {
      await waitPod(dir, sys, uuid!, { timeoutMs: waitTimeout(this.flags['wait-ready'], 'wait-ready'), ready: true });
    } else if (this.flags.wait !== undefined) {
      await waitPod(dir, sys, uuid!, { timeoutMs: waitTimeout(this.flags.wait, 'wait'), ready: false });
    }
    const pod = readPod(dir, sys, uuid!);
    if (!this.jsonEnabled()) this.log(statusLines(pod).join('\n'));
    return toApiPodStatus(pod);
  }
}
