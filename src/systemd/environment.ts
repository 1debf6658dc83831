// What systemd hands `tspod run` through its environment, read once and removed: NOTIFY_SOCKET
// (sd_notify(3)) and LISTEN_PID/LISTEN_FDS/LISTEN_FDNAMES (sd_listen_fds(3)). Removing them is
// what both functions do with `unset_environment`: the pod's init, the apps (`--inherit-env`
// copies tspod's environment) and any other child must not take them for their own. Pure: the
// environment object comes in and is changed in place.

/** sd_listen_fds(3): SD_LISTEN_FDS_START, the first passed fd. */
export const SD_LISTEN_FDS_START = 3;

export const SYSTEMD_ENV_NAMES = ['NOTIFY_SOCKET', 'LISTEN_PID', 'LISTEN_FDS', 'LISTEN_FDNAMES'] as const;

export interface ListenFds {
  /** The passed fds, SD_LISTEN_FDS_START upwards. */
  fds: number[];
  /** LISTEN_FDNAMES, one per fd; `unknown` where systemd gave none (sd_listen_fds_with_names(3)). */
  names: string[];
}

export interface SystemdEnvironment {
  /** NOTIFY_SOCKET as given (a path, `@abstract`, or something tspod cannot use). */
  notifySocket?: string;
  listen?: ListenFds;
  /** Why some of it was ignored. */
  warnings: string[];
}

/** Reads and removes the systemd variables from `env`; `pid` is this process's (LISTEN_PID must name it). */
export function takeSystemdEnvironment(env: NodeJS.ProcessEnv, pid: number): SystemdEnvironment {
  const notifySocket = env.NOTIFY_SOCKET;
  const listenPid = env.LISTEN_PID;
  const listenFds = env.LISTEN_FDS;
  const listenNames = env.LISTEN_FDNAMES;
  for (const name of SYSTEMD_ENV_NAMES) delete env[name];

  const warnings: string[] = [];
  const result: SystemdEnvironment = { warnings };
  if (notifySocket !== undefined && notifySocket !== '') result.notifySocket = notifySocket;
  if (listenFds === undefined) return result;
  // sd_listen_fds(3): the fds are for us only when LISTEN_PID is our pid; otherwise they were
  // meant for a parent that passed its environment on, and nothing was passed to us.
  if (listenPid === undefined || !/^\d+$/.test(listenPid) || Number(listenPid) !== pid) {
    warnings.push(`LISTEN_FDS is set but LISTEN_PID (${listenPid ?? 'unset'}) is not tspod's pid ${pid}: no socket activation`);
    return result;
  }
  if (!/^\d+$/.test(listenFds)) {
    warnings.push(`LISTEN_FDS=${listenFds} is not a number: no socket activation`);
    return result;
  }
  const count = Number(listenFds);
  if (count === 0) return result;
  const given = listenNames === undefined ? [] : listenNames.split(':');
  if (listenNames !== undefined && given.length !== count) {
    warnings.push(`LISTEN_FDNAMES has ${given.length} names for ${count} fds: the names are ignored`);
  }
  const names = Array.from({ length: count }, (_, i) => (given.length === count && given[i] !== '' ? given[i]! : 'unknown'));
  result.listen = { fds: Array.from({ length: count }, (_, i) => SD_LISTEN_FDS_START + i), names };
  return result;
}
