// `tspod enter [--app NAME] UUID [CMD [ARGS...]]`: runs a command (default /bin/sh) inside one app
// of a running pod and exits with its status. rawArgv: everything after the UUID belongs to the
// command (`tspod enter UUID ls -l` passes -l to ls), so the grammar is parsed by
// src/pod/enter.ts parseEnterArgs, not by oclif; the flags below are declared for --help.
import { Args, Flags } from '@oclif/core';

import { TspodCommand } from '../cli/base-command.js';
import { globalFlagArity } from '../cli/global-flags.js';
import { uuidFileFlag } from '../cli/pod-flags.js';
import { enterPod, parseEnterArgs, type EnterArgs } from '../pod/enter.js';
import { readUuidFile, resolvePodUuid } from '../pod/uuid.js';

export default class Enter extends TspodCommand<typeof Enter> {
  static override summary = 'Run a command inside an app of a running pod';
  static override description =
    "The command (default /bin/sh) runs in the app's namespaces (PID, mount, UTS, IPC, network), root filesystem, working " +
    'directory, cgroup, user and groups, with its capabilities, no_new_privs and seccomp filter, and the app\'s environment. ' +
    '--app is needed when the pod has several apps. Flags go before the pod uuid; everything after it is the command and its ' +
    'arguments (a "--" right after the uuid is dropped; use it to pass --help to the command). The exit status is the ' +
    "command's (128+N when killed by signal N), 254 for tspod's own failures, 203 when the command cannot be executed.";
  static override usage = 'enter [--app NAME] UUID [CMD [ARGS...]]';
  static override examples = [
    '<%= config.bin %> enter 5f3a2b1c',
    '<%= config.bin %> enter --app web 5f3a2b1c ps',
    '<%= config.bin %> enter --app web 5f3a2b1c /bin/sh -c "cat /etc/hostname; id"',
    '<%= config.bin %> enter --uuid-file=/run/app.uuid -- ls --help',
  ];
  static override strict = false;
  static override rawArgv = true;
  static override args = {
    uuid: Args.string({ description: 'pod uuid (or a unique prefix)', required: false }),
    command: Args.string({ description: 'command to run in the app, then its arguments (default /bin/sh)', required: false }),
  };
  static override flags = {
    app: Flags.string({ description: 'the app to enter (needed when the pod has several)', helpValue: 'NAME' }),
    'uuid-file': uuidFileFlag,
  };

  private enterArgs: EnterArgs | undefined;

  public override async init(): Promise<void> {
    // Only what comes before the pod uuid are flags: hand just the global ones to the base class.
    // A usage error here is reported once flags are known (run), with tspod's error format.
    try {
      this.enterArgs = parseEnterArgs(this.argv, globalFlagArity());
      this.argv = this.enterArgs.otherFlags;
    } catch (err) {
      this.argv = [];
      await super.init();
      throw err;
    }
    await super.init();
  }

  public async run(): Promise<void> {
    const { dir } = this.flags;
    const { app, uuid, uuidFile, command } = this.enterArgs!;
    const full = uuidFile !== undefined ? readUuidFile(uuidFile) : resolvePodUuid(dir, uuid!);
    process.exitCode = await enterPod(dir, { uuid: full, app, command }, { sys: this.context.sys });
  }
}
