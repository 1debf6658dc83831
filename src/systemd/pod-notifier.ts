// What `tspod run` tells systemd about its pod, decided from the init's events (stage1/contract.ts
// PodEvent) and stage0's own signals. Pure: each call returns the sd_notify(3) messages to send,
// in order, and whether a barrier (sd_notify_barrier(3)) must follow; src/systemd/launch.ts sends
// them. Tested as data.
//
// Readiness (systemd.service(5) Type=notify): READY=1 once every app's main process has started,
// or, when some apps speak sd_notify themselves (ANNOTATION_SUPPORTS_SYSTEMD_NOTIFY), once the pod
// has started and each of those apps has sent READY=1. An app that never does keeps the unit
// "activating" until TimeoutStartSec=, exactly as it would without tspod.
import type { PodEvent } from '../../stage1/contract.js';
import { parseNotifyMessage, type NotifyFields } from './notify.js';

export interface NotifyStep {
  message: NotifyFields;
  /** Send BARRIER=1 after this message (and wait for it before exiting). */
  barrier?: boolean;
}

/**
 * Assignments an app may pass through to the unit (sd_notify(3)). Left out: MAINPID (a pid of the
 * pod's namespace means nothing to the manager; tspod is the main process), STOPPING (one app
 * stopping is not the pod stopping), FDSTORE and BARRIER (the init answers the app's barrier).
 */
const RELAYED = new Set(['STATUS', 'RELOADING', 'MONOTONIC_USEC', 'ERRNO', 'BUSERROR', 'EXTEND_TIMEOUT_USEC', 'WATCHDOG']);

export interface PodNotifierInput {
  /** App names in pod manifest order. */
  apps: string[];
  /** Apps that send their own READY=1 (a subset of apps). */
  notifyApps: string[];
  /** `tspod run`'s pid: MAINPID. */
  mainPid: number;
}

export class PodNotifier {
  private podStarted = false;
  private readySent = false;
  private stopping = false;
  private readonly waitingFor: Set<string>;
  private readonly exited = new Map<string, number>();

  constructor(private readonly input: PodNotifierInput) {
    this.waitingFor = new Set(input.notifyApps);
  }

  /** Right after the init was started. MAINPID: tspod stays the main process even under `sh -c`. */
  start(): NotifyStep[] {
    const { apps } = this.input;
    return [{ message: { MAINPID: this.input.mainPid, STATUS: `starting ${apps.length} app${apps.length === 1 ? '' : 's'}: ${apps.join(', ')}` } }];
  }

  onEvent(event: PodEvent): NotifyStep[] {
    switch (event.event) {
      case 'ready':
        this.podStarted = true;
        return this.readiness();
      case 'exited':
        this.exited.set(event.app, event.status);
        return this.stopping ? [] : [{ message: { STATUS: this.runningStatus() } }];
      case 'stopping':
        return this.onStop();
      case 'notify':
        return this.fromApp(event.app, event.message);
    }
  }

  /** The pod is being stopped (a signal to tspod run, or the init stopping it after a failure). */
  onStop(): NotifyStep[] {
    if (this.stopping) return [];
    this.stopping = true;
    return [{ message: { STOPPING: 1, STATUS: 'stopping' } }];
  }

  /** tspod run is about to exit with `status`: the last word, then a barrier so it is not dropped. */
  finish(status: number): NotifyStep[] {
    const steps = this.onStop();
    return [...steps, { message: { STATUS: `exited with status ${status}` }, barrier: true }];
  }

  private readiness(): NotifyStep[] {
    if (this.readySent || !this.podStarted || this.stopping) return [];
    if (this.waitingFor.size > 0) return [{ message: { STATUS: `started; waiting for READY=1 from ${[...this.waitingFor].join(', ')}` } }];
    this.readySent = true;
    return [{ message: { READY: 1, STATUS: this.runningStatus() }, barrier: true }];
  }

  private fromApp(app: string, message: string): NotifyStep[] {
    if (!this.input.notifyApps.includes(app)) return [];
    const fields: NotifyFields = {};
    let ready = false;
    for (const [name, value] of parseNotifyMessage(message)) {
      if (name === 'READY' && value === '1') ready = true;
      else if (name === 'STATUS') fields.STATUS = this.input.apps.length === 1 ? value : `${app}: ${value}`;
      else if (RELAYED.has(name)) fields[name] = value;
    }
    const steps: NotifyStep[] = [];
    if (ready && !this.readySent) {
      this.waitingFor.delete(app);
      const readiness = this.readiness();
      // The app's own STATUS wins over tspod's "running: ..." in the same message.
      if (readiness.length > 0) return [{ ...readiness[0]!, message: { ...readiness[0]!.message, ...fields } }];
    } else if (ready) {
      // After RELOADING=1 an app says READY=1 again (systemd.service(5) Type=notify-reload).
      fields.READY = 1;
    }
    if (Object.keys(fields).length > 0) steps.push({ message: fields });
    return steps;
  }

  private runningStatus(): string {
    const running = this.input.apps.filter((a) => !this.exited.has(a));
    const exited = [...this.exited].map(([a, s]) => `${a} (${s})`);
    return `running: ${running.length > 0 ? running.join(', ') : 'none'}${exited.length > 0 ? `; exited: ${exited.join(', ')}` : ''}`;
  }
}
