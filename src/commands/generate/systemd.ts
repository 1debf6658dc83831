import { Args, Flags } from '@oclif/core';

import { TspodCommand } from '../../cli/base-command.js';
import { parseDuration } from '../../cli/duration.js';
import { GLOBAL_FLAGS } from '../../cli/global-flags.js';
import { generateSystemdUnit, type GeneratedUnit } from '../../systemd/generate.js';
import { RESTART_POLICIES, type RestartPolicy } from '../../systemd/unit.js';

export default class GenerateSystemd extends TspodCommand<typeof GenerateSystemd> {
  static override summary = 'Print a systemd service unit that runs a pod (or write it with --files)';
  static override description =
    'UUID|IMAGE...: for images, the unit runs `tspod run IMAGE...`; for an existing pod, each start runs a new pod from its ' +
    'manifest with its run options. The unit is Type=notify (tspod sends READY=1 once the apps have started, or passes on ' +
    "an app's own with the image annotation appc.io/executor/supports-systemd-notify=true), KillMode=mixed, and its " +
    'TimeoutStopSec is 10 s above --stop-timeout. `systemd-analyze verify` accepts it.';
  static override examples = [
    '<%= config.bin %> generate systemd example.com/web:1.0 --name web',
    '<%= config.bin %> generate systemd --files --output-dir /etc/systemd/system /srv/images/web.aci /srv/images/sidecar.aci',
    '<%= config.bin %> generate systemd 5f3a2b1c --restart=always --files',
  ];
  static override strict = false;
  static override enableJsonFlag = true;
  static override args = { target: Args.string({ description: 'a pod UUID (or unique prefix), or image references', required: true }) };
  static override flags = {
    name: Flags.string({ description: 'the unit is tspod-NAME.service (default: from the app or image names)' }),
    restart: Flags.string({ description: 'systemd Restart= policy', options: [...RESTART_POLICIES], default: 'on-failure' }),
    files: Flags.boolean({ description: 'write tspod-NAME.service (and a pod\'s manifest) instead of printing it', default: false }),
    'output-dir': Flags.string({ description: 'where --files writes (default: the working directory)' }),
    'stop-timeout': Flags.string({ description: "tspod run's --stop-timeout (default: the pod's, else 10s); TimeoutStopSec is 10 s more" }),
    net: Flags.string({ description: "tspod run's --net, for images (default: tspod run's)" }),
  };

  public async run(): Promise<GeneratedUnit> {
    const { flags } = this;
    const globalArgs: string[] = [];
    for (const name of ['dir', 'local-config', 'system-config', 'insecure-options'] as const) {
      // The unit's environment has no TSPOD_DIR &c.: every non-default value is spelled out.
      if (flags[name] !== GLOBAL_FLAGS[name].default) globalArgs.push(`--${name}=${flags[name]}`);
    }
    const result = generateSystemdUnit({
      dir: flags.dir,
      globalArgs,
      targets: this.positionals,
      ...(flags.name === undefined ? {} : { name: flags.name }),
      restart: flags.restart as RestartPolicy,
      ...(flags['stop-timeout'] === undefined ? {} : { stopTimeoutMs: parseDuration(flags['stop-timeout'], 'stop-timeout') }),
      ...(flags.net === undefined ? {} : { net: flags.net }),
      files: flags.files,
      outputDir: flags['output-dir'] ?? process.cwd(),
      warn: (m) => this.warn(m),
    });
    if (result.path === undefined) this.log(result.content.trimEnd());
    else this.log(result.podManifest === undefined ? result.path : `${result.path}\n${result.podManifest}`);
    return result;
  }
}
