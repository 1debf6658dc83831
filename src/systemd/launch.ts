// stage0's side of the systemd integration, used by src/pod/launch.ts around the init's spawn:
// takes NOTIFY_SOCKET and the socket activation fds from the environment (before the pod's
// namespaces exist), plans the handover to the init (handover.ts), turns the init's events into
// sd_notify(3) messages (pod-notifier.ts) and sends them (notify.ts), with a barrier after READY=1
// and before tspod run exits. stage1/README.md "systemd" describes the whole.
import fs from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';

import type { Annotation, ImageManifest, PodManifest, Port } from '../appc/types.js';
import { ENV_SYSTEMD, POD_FILES, type PodEvent, type RunOptions } from '../../stage1/contract.js';
import { SyscallError, type Syscalls } from '../sys/types.js';
import { takeSystemdEnvironment, type ListenFds } from './environment.js';
import { planHandover, type HandoverApp } from './handover.js';
import { parseNotifySocket, SdNotify } from './notify.js';
import { PodNotifier, type NotifyStep } from './pod-notifier.js';

/** How long tspod run waits, once the init has exited, for the rest of its events. */
const EVENTS_DRAIN_MS = 2000;

export interface SystemdLaunchOptions {
  sys: Syscalls;
  warn: (message: string) => void;
  /** The environment to take the systemd variables from (and remove them); default process.env. */
  env?: NodeJS.ProcessEnv;
  /** This process's pid (LISTEN_PID, MAINPID); default process.pid. */
  pid?: number;
}

export interface InitHandover {
  /** The init's stdio from fd 4 on (child_process.spawn `stdio`). */
  extraStdio: ('pipe' | number)[];
  /** Environment for the init (ENV_SYSTEMD). */
  env: Record<string, string>;
}

/** The apps of a pod as the handover needs them, read from its directory without the validators (the init validates). */
export function readHandoverApps(podDir: string): HandoverApp[] {
  const manifest = JSON.parse(fs.readFileSync(path.join(podDir, POD_FILES.manifest), 'utf8')) as PodManifest;
  return manifest.apps.map((app) => {
    let image: Partial<ImageManifest> = {};
    try {
      image = JSON.parse(fs.readFileSync(path.join(podDir, POD_FILES.appsDir, app.name, 'image-manifest'), 'utf8')) as ImageManifest;
    } catch {
      // the init reports a missing image manifest
    }
    const annotations = new Map<string, Annotation>();
    for (const a of [...(image.annotations ?? []), ...(app.annotations ?? [])]) annotations.set(a.name, a);
    const ports: Port[] = (app.app ?? image.app)?.ports ?? [];
    return { name: app.name, ports, annotations: [...annotations.values()] };
  });
}

export class SystemdLaunch {
  private notifier: PodNotifier | undefined;
  private readonly barriers: Promise<unknown>[] = [];
  private eventsEnded: Promise<void> = Promise.resolve();

  private constructor(
    private readonly options: SystemdLaunchOptions,
    private readonly notify: SdNotify | undefined,
    private readonly listen: ListenFds | undefined,
  ) {}

  /**
   * Reads and removes NOTIFY_SOCKET and LISTEN_* (sd_notify(3), sd_listen_fds(3) with
   * unset_environment), opens the notification socket and marks the listen fds close-on-exec
   * until they are handed to the init. Call before the pod's network namespace is unshared.
   */
  static take(options: SystemdLaunchOptions): SystemdLaunch {
    const { sys, warn } = options;
    const taken = takeSystemdEnvironment(options.env ?? process.env, options.pid ?? process.pid);
    for (const warning of taken.warnings) warn(warning);
    let notify: SdNotify | undefined;
    if (taken.notifySocket !== undefined) {
      const parsed = parseNotifySocket(taken.notifySocket);
      if ('reason' in parsed) warn(`${parsed.reason}; no sd_notify`);
      else notify = SdNotify.open(parsed.address, { sys, warn });
    }
    let listen = taken.listen;
    if (listen !== undefined) {
      try {
        // sd_listen_fds(3) sets FD_CLOEXEC too: no child but the init gets them.
        for (const fd of listen.fds) sys.fcntlSetCloexec(fd, true);
      } catch (err) {
        warn(`socket activation: ${err instanceof SyscallError ? err.message : String(err)}; the fds are not passed on`);
        listen = undefined;
      }
    }
    return new SystemdLaunch(options, notify, listen);
  }

  /** Whether tspod run reports to a NOTIFY_SOCKET. */
  get notifying(): boolean {
    return this.notify !== undefined;
  }

  /** The handover for the pod in `podDir` (stage1/contract.ts SystemdHandover). */
  prepare(podDir: string, runOptions: Pick<RunOptions, 'interactive'>): InitHandover {
    const apps = readHandoverApps(podDir);
    const plan = planHandover({ apps, interactive: runOptions.interactive, notify: this.notify !== undefined, ...(this.listen === undefined ? {} : { listen: this.listen }) });
    for (const warning of plan.warnings) this.options.warn(warning);
    if (this.notify !== undefined) {
      this.notifier = new PodNotifier({ apps: apps.map((a) => a.name), notifyApps: plan.handover.notifyApps, mainPid: this.options.pid ?? process.pid });
    }
    return { extraStdio: plan.extraStdio, env: { [ENV_SYSTEMD]: JSON.stringify(plan.handover) } };
  }

  /** The init is running: MAINPID and the first STATUS, then its events as they come. */
  attach(events: Readable | null | undefined): void {
    if (this.notifier === undefined) return;
    this.run(this.notifier.start());
    if (events === null || events === undefined) return;
    let pending = '';
    this.eventsEnded = new Promise<void>((resolve) => {
      events.on('end', resolve);
      events.on('close', resolve);
      events.on('error', () => resolve());
    });
    events.on('data', (chunk: Buffer) => {
      const lines = (pending + chunk.toString('utf8')).split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) {
        if (line.trim() === '') continue;
        let event: PodEvent;
        try {
          event = JSON.parse(line) as PodEvent;
        } catch {
          continue; // only the init writes here
        }
        this.run(this.notifier!.onEvent(event));
      }
    });
  }

  /** tspod run got a signal that stops the pod: STOPPING=1 (systemd.kill(5): KillMode=mixed sends SIGTERM to tspod only). */
  stopping(): void {
    if (this.notifier !== undefined) this.run(this.notifier.onStop());
  }

  /** The init has exited with `status`: the remaining events, the last STATUS, and the barriers. */
  async finish(status: number): Promise<void> {
    if (this.notifier === undefined || this.notify === undefined) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.eventsEnded, new Promise<void>((resolve) => (timer = setTimeout(resolve, EVENTS_DRAIN_MS)))]);
    clearTimeout(timer);
    this.run(this.notifier.finish(status));
    await Promise.all(this.barriers);
    this.notify.close();
  }

  private run(steps: NotifyStep[]): void {
    for (const step of steps) {
      this.notify?.send(step.message);
      if (step.barrier === true && this.notify !== undefined) this.barriers.push(this.notify.barrier());
    }
  }
}
