import { TspodCommand } from '../cli/base-command.js';
import { runFlags } from '../cli/run-flags.js';
import { runPod } from '../pod/run.js';

export default class Run extends TspodCommand<typeof Run> {
  static override summary = 'Run a pod in the foreground; exits with the failing app\'s status';
  static override description =
    'IMAGE [APP FLAGS] [-- ARGS... ---] IMAGE ...: the pod is prepared as by `tspod prepare`, then its apps run in shared ' +
    'PID, mount, UTS and IPC namespaces (and a network namespace unless --net=host), each chrooted into its own copy ' +
    '(overlayfs) of its image. tspod stays in the foreground as the pod\'s supervisor: SIGTERM/SIGINT stop the apps ' +
    '(SIGKILL after --stop-timeout), an app exiting non-zero stops the others, and the exit status is the failing app\'s ' +
    '(254 for tspod\'s own failures).';
  static override examples = [
    '<%= config.bin %> run tspod.dev/demo:1.0.0',
    '<%= config.bin %> run --insecure-options=image a.aci --exec /bin/sh -- -c "echo hi" --- b.aci --name b',
    '<%= config.bin %> run --volume data,kind=empty,mode=0755 a.aci --mount volume=data,target=/data --net=none',
  ];
  static override strict = false;
  static override rawArgv = true;
  static override flags = runFlags;

  public async run(): Promise<void> {
    process.exitCode = await runPod(this.positionals, {
      fetch: this.context.fetchContext(),
      warn: (m) => this.warn(m),
      networkConfig: { localConfig: this.context.options.localConfig, systemConfig: this.context.options.systemConfig },
    });
  }
}
