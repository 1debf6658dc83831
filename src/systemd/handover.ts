// Plans what stage0 hands the init for the systemd features (stage1/contract.ts SystemdHandover):
// whether app output is prefixed, the events stream for sd_notify, which apps get a NOTIFY_SOCKET
// of their own, and which socket activation fds go to which app. Pure: the pod's apps (ports and
// annotations, as the pod manifest and image manifests give them) in, the handover, the init's
// extra stdio and warnings out. Tested as data.
import type { Annotation, Port } from '../appc/types.js';
import { ANNOTATION_SUPPORTS_SYSTEMD_NOTIFY, type SystemdHandover } from '../../stage1/contract.js';
import type { ListenFds } from './environment.js';

/** The init's fds: 0-2 stdio, 3 the pod lock (ENV_LOCK_FD); the handover's start at 4. */
export const FIRST_HANDOVER_FD = 4;

export interface HandoverApp {
  name: string;
  /** The app's ports (the pod manifest's app, else the image's: spec/pods.md). */
  ports: Port[];
  /** The image's annotations with the pod manifest app's merged over them. */
  annotations: Annotation[];
}

export interface HandoverInput {
  apps: HandoverApp[];
  interactive: boolean;
  /** tspod run has a usable NOTIFY_SOCKET. */
  notify: boolean;
  /** Socket activation fds tspod run received (sd_listen_fds(3)). */
  listen?: ListenFds;
}

export interface HandoverPlan {
  handover: SystemdHandover;
  /**
   * The init's stdio from fd FIRST_HANDOVER_FD on, for child_process.spawn: `'pipe'` for the
   * events stream, then stage0's own fd numbers of the listen fds passed on.
   */
  extraStdio: ('pipe' | number)[];
  warnings: string[];
}

/** Whether an app speaks sd_notify(3) itself (rkt's annotation, value `true`). */
export function supportsSystemdNotify(app: Pick<HandoverApp, 'annotations'>): boolean {
  return app.annotations.some((a) => a.name === ANNOTATION_SUPPORTS_SYSTEMD_NOTIFY && a.value.trim().toLowerCase() === 'true');
}

/** Names of an app's ports that ask for socket activation (appc spec/aci.md `socketActivated`). */
export function socketActivatedPorts(app: Pick<HandoverApp, 'ports'>): string[] {
  return app.ports.filter((p) => p.socketActivated === true).map((p) => p.name);
}

/**
 * Which fds go to which app. One app with socket-activated ports gets every fd. With several,
 * each fd goes to the app that has a socket-activated port of the fd's name (LISTEN_FDNAMES,
 * systemd.socket(5) FileDescriptorName=); an fd no app claims is not passed on.
 */
function assignListenFds(apps: HandoverApp[], listen: ListenFds, warnings: string[]): Map<string, number[]> {
  const wanting = apps.filter((a) => socketActivatedPorts(a).length > 0);
  const assigned = new Map<string, number[]>();
  if (wanting.length === 0) {
    warnings.push(`${listen.fds.length} socket activation fd(s) (LISTEN_FDS) passed, but no app has a socketActivated port: they are not passed on`);
    return assigned;
  }
  listen.fds.forEach((_, i) => {
    const name = listen.names[i] ?? 'unknown';
    const app = wanting.length === 1 ? wanting[0]! : wanting.find((a) => socketActivatedPorts(a).includes(name));
    if (app === undefined) {
      warnings.push(`socket activation fd ${i} is named "${name}", which is no socketActivated port of ${wanting.map((a) => a.name).join(', ')}: not passed on`);
      return;
    }
    assigned.set(app.name, [...(assigned.get(app.name) ?? []), i]);
  });
  return assigned;
}

export function planHandover(input: HandoverInput): HandoverPlan {
  const warnings: string[] = [];
  const extraStdio: ('pipe' | number)[] = [];
  const handover: SystemdHandover = {
    prefixOutput: input.apps.length > 1 && !input.interactive,
    notifyApps: [],
    listenFds: {},
  };
  if (input.notify) {
    handover.eventsFd = FIRST_HANDOVER_FD + extraStdio.length;
    extraStdio.push('pipe');
    handover.notifyApps = input.apps.filter(supportsSystemdNotify).map((a) => a.name);
  }
  if (input.listen !== undefined && input.listen.fds.length > 0) {
    for (const [app, indices] of assignListenFds(input.apps, input.listen, warnings)) {
      const fds: number[] = [];
      for (const i of indices) {
        fds.push(FIRST_HANDOVER_FD + extraStdio.length);
        extraStdio.push(input.listen.fds[i]!);
      }
      handover.listenFds[app] = { fds, names: indices.map((i) => input.listen!.names[i] ?? 'unknown') };
    }
  }
  return { handover, extraStdio, warnings };
}
