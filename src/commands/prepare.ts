import { TspodCommand } from '../cli/base-command.js';
import { runFlags } from '../cli/run-flags.js';
import { preparePod } from '../pod/prepare.js';
import { parseRunArgs } from '../pod/run-args.js';

export default class Prepare extends TspodCommand<typeof Prepare> {
  static override summary = 'Prepare a pod to run later: resolve and render its images, write its manifest, print its UUID';
  static override description =
    'Takes the same images and flags as `tspod run`: IMAGE [APP FLAGS] [-- ARGS... ---] IMAGE ... Per-app flags bind to the ' +
    'image before them; --mount before any image applies to every app. Images are references as `tspod fetch` takes them: ' +
    'appc names (from the store, else discovered), image ids, https:// URLs or .aci files; what is not in the store is ' +
    'fetched and verified first, with its dependencies, under --pull-policy (default new). The pod is left in the prepared state: start it with ' +
    '`tspod run-prepared UUID`, inspect it with `tspod status`/`tspod cat-manifest`, drop it with `tspod rm`.';
  static override examples = [
    '<%= config.bin %> prepare tspod.dev/demo:1.0.0',
    '<%= config.bin %> prepare --volume data,kind=empty app.aci --exec /bin/sh -- -c "ls /data" --- db.aci --name db',
    '<%= config.bin %> prepare --pod-manifest pod.json --uuid-file-save /run/app.uuid',
  ];
  static override strict = false;
  static override rawArgv = true;
  static override enableJsonFlag = true;
  static override flags = runFlags;

  public async run(): Promise<{ uuid: string; podDir: string }> {
    const prepared = await preparePod(parseRunArgs(this.positionals.filter((a) => a !== '--json')), {
      fetch: this.context.fetchContext(),
      warn: (m) => this.warn(m),
    });
    this.log(prepared.uuid);
    return { uuid: prepared.uuid, podDir: prepared.podDir };
  }
}
