// `tspod list`: every pod in every state, one line per app (rkt's columns), or rkt's api/v1 Pod
// shape with --json (schemas/pod-list.json).
import { Flags } from '@oclif/core';

import { TspodCommand } from '../cli/base-command.js';
import { formatAgo, renderTable } from '../output/table.js';
import { listPods, podNetworks, toApiPod, type ApiPod } from '../pod/list.js';
import type { AppInfo, PodInfo } from '../pod/state.js';

interface Row {
  pod: PodInfo;
  app: AppInfo | undefined;
  /** The pod's first line carries its UUID, state and times; the other apps' lines only theirs. */
  first: boolean;
}

export default class List extends TspodCommand<typeof List> {
  static override summary = 'List pods';
  static override description =
    'Lists the pods in every state (embryo, preparing, prepared, running, exited, garbage ...), one line per app. The state comes from the pod directory and its lock, as rkt does: no daemon is asked.';
  static override examples = ['<%= config.bin %> list', '<%= config.bin %> list --full --no-legend', '<%= config.bin %> list --json'];
  static override enableJsonFlag = true;
  static override flags = {
    full: Flags.boolean({ description: 'full UUIDs and image ids, absolute times', default: false }),
    'no-legend': Flags.boolean({ description: 'do not print the header line', default: false }),
  };

  /** Plain JSON: oclif's colorizing tokenizer costs ~60 ms (and much GC) on 1,000 pods. */
  public override logJson(json: unknown): void {
    process.stdout.write(`${JSON.stringify(json, null, 2)}\n`);
  }

  public async run(): Promise<ApiPod[]> {
    const pods = listPods(this.flags.dir, this.context.sys);
    if (!this.jsonEnabled()) this.log(renderPodTable(pods, { full: this.flags.full, noLegend: this.flags['no-legend'] }));
    return pods.map(toApiPod);
  }
}

export function renderPodTable(pods: PodInfo[], options: { full: boolean; noLegend: boolean }): string {
  const { full } = options;
  const rows: Row[] = pods.flatMap((pod): Row[] =>
    pod.apps.length === 0 ? [{ pod, app: undefined, first: true }] : pod.apps.map((app, i) => ({ pod, app, first: i === 0 })),
  );
  const time = (date: Date | undefined): string => (date === undefined ? '' : full ? date.toISOString() : formatAgo(date.toISOString()));
  const podColumn = (get: (pod: PodInfo) => string) => (row: Row) => (row.first ? get(row.pod) : '');
  return renderTable(
    [
      { header: 'UUID', get: podColumn((p) => (full ? p.uuid : p.uuid.slice(0, 8))) },
      { header: 'APP', get: (r: Row) => r.app?.name ?? '-' },
      {
        header: 'IMAGE NAME',
        get: (r: Row) => (r.app === undefined ? '' : `${r.app.imageName ?? ''}${r.app.imageVersion === undefined ? '' : `:${r.app.imageVersion}`}`),
      },
      ...(full ? [{ header: 'IMAGE ID', get: (r: Row) => r.app?.imageId ?? '' }] : []),
      { header: 'STATE', get: podColumn((p) => p.state) },
      { header: 'CREATED', get: podColumn((p) => time(p.createdAt)) },
      { header: 'STARTED', get: podColumn((p) => time(p.startedAt)) },
      { header: 'NETWORKS', get: podColumn((p) => podNetworks(p).map((n) => `${n.net_name}:ip4=${n.ip}`).join(',')) },
    ],
    rows,
    { noLegend: options.noLegend },
  );
}
