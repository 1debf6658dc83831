// The stage0 -> stage1 contract, versioned. stage0 (the tspod CLI) imports only this file from
// stage1/. It fixes how stage1 is invoked, what it finds in the pod directory and what it writes
// back there for `list`, `status`, `enter`, `stop` and `gc` to read without a daemon.
// Documented in stage1/README.md; bump STAGE1_INTERFACE_VERSION on any incompatible change.

import fs from 'node:fs';
import os from 'node:os';

import { CLONE_NEWIPC, CLONE_NEWNET, CLONE_NEWNS, CLONE_NEWPID, CLONE_NEWUTS } from '../src/sys/types.js';

export const STAGE1_INTERFACE_VERSION = 1;

/** Environment variable holding the fd of the pod directory, locked (flock LOCK_EX) by stage0. */
export const ENV_LOCK_FD = 'TSPOD_LOCK_FD';

/** Files stage0 writes into the pod directory before handing over to stage1. */
export const POD_FILES = {
  /** The reified pod manifest (schemas/pod-manifest.json). */
  manifest: 'pod',
  /** Created empty when the pod directory is made; its mtime is the pod's creation time. */
  created: 'pod-created',
  /** Run options not in the manifest (schemas/run-options.json): net, dns, hostname, ... */
  runOptions: 'run-options.json',
  /** Per app: `apps/<name>/tree` (rendered tree id) and `apps/<name>/image-manifest`. */
  appsDir: 'apps',
  /**
   * Pod networks (issue 7): the record of the pod's networks (src/net/record.ts): names,
   * interfaces, addresses, the veth, the lease and the firewall tool. Written before anything is
   * created, for `list`, `status` and the teardown in the exit path and gc.
   */
  netInfo: 'net-info.json',
  /** Pod networks: `ok` or `failed: REASON`, written once the networks are set up (ENV_NETWORK_PENDING). */
  networkReady: 'net-ready',
} as const;

// --- pod networks (issue 7; stage1/README.md "Pod networks") ---------------------------------------

/**
 * Set to `1` in the init's environment when stage0 sets the pod's networks up after starting the
 * init (every --net but host and none). The init then starts no app before `net-ready` says `ok`;
 * stage0 writes that file, then sends the init NETWORK_READY_SIGNAL (stage1/net-ready.ts).
 */
export const ENV_NETWORK_PENDING = 'TSPOD_NETWORK_PENDING';
export const NETWORK_READY_SIGNAL = 'SIGUSR2';
// --- end of pod networks -------------------------------------------------------------------------

// --- cgroups (stage1/README.md "cgroups") -----------------------------------------------------

/** Where cgroupfs is mounted: cgroup v2's unified hierarchy, or a tmpfs with one v1 hierarchy per controller. */
export const CGROUP_ROOT = '/sys/fs/cgroup';

export type CgroupVersion = 'v1' | 'v2';

/** v2 when the root itself is the unified hierarchy; a hybrid host (v1 controllers mounted) is v1. */
export function detectCgroupVersion(root = CGROUP_ROOT): CgroupVersion {
  return fs.existsSync(`${root}/cgroup.controllers`) && !fs.existsSync(`${root}/memory`) ? 'v2' : 'v1';
}

/**
 * Set by stage0 on a cgroup v2 host when `tspod run` was started in a cgroup delegated to it (a
 * systemd unit with `Delegate=yes`): that cgroup's path, relative to CGROUP_ROOT. stage0 has
 * moved itself into its leaf `supervisor` (so the init starts there too), and the pod's cgroups
 * go below it: `<parent>/pod-<uuid>/app-<name>`. Absent: `tspod/pod-<uuid>` from the root.
 */
export const ENV_CGROUP_PARENT = 'TSPOD_CGROUP_PARENT';
// --- end of cgroups ------------------------------------------------------------------------------

/** Files stage1 writes back (relative to the pod directory). */
export const STAGE1_FILES = {
  /** Decimal PID (host pid namespace) of the pod's PID 1; written once namespaces exist. Its mtime is the start time. */
  pid: 'pid',
  /** The pod's cgroup path, relative to each hierarchy root; written before `pid`. */
  cgroup: 'cgroup',
  /** Directory of per-app files: `<app>.created`, `<app>.started` (empty, mtime = time), `<app>` (exit status, decimal). */
  statusDir: 'status',
  /** Created (empty) when every app has started: `status --wait-ready`. */
  ready: 'ready',
  /** The pod's root (mount point of the apps' rootfs trees), for `enter` and gc. */
  rootDir: 'root',
  /**
   * `--mds-register` only: the pod's metadata service HMAC key, 32 random bytes, mode 0600. The
   * metadata services of other pods read it to verify this pod's signatures while the pod is in
   * `pods/run` (stage1/mds.ts).
   */
  mdsHmacKey: 'mds-hmac-key',
  /** The PodPlan (stage1/plan.ts) the init made, as JSON, written before any mount. `enter.js` builds each app's exec step from it. */
  plan: 'plan.json',
} as const;

/** How stage0 names the stage1 entry points (relative to the package's dist/stage1/). */
export const STAGE1_ENTRYPOINTS = {
  run: 'init.js',
  /**
   * `enter.js POD_DIR APP -- CMD [ARGS...]`: started by `tspod enter` from a main thread that has
   * joined the init's IPC, UTS, network (when the pod has its own), PID and mount namespaces, so
   * it runs as a process of the pod; cwd `/`, stdio inherited. It reads `plan.json`, joins the
   * app's cgroup(s) and execs CMD through the app's exec step (a bare CMD is looked up in the
   * app's PATH). Exit status: CMD's; 254 for bad input, 203 when the exec step fails.
   */
  enter: 'enter.js',
  stop: 'stop.js',
  gc: 'gc.js',
} as const;

export type NetMode =
  | { kind: 'host' }
  | { kind: 'none' }
  | { kind: 'default' }
  /** `cniArgs`: `--net=NAME:KEY=VALUE;...`, the pairs by network name (CNI_ARGS of its plugins). */
  | { kind: 'named'; names: string[]; cniArgs?: Record<string, string> };

/** `run-options.json`: what `tspod run`/`run-prepared` flags tell stage1 beyond the manifest. */
export interface RunOptions {
  interfaceVersion: number;
  net: NetMode;
  hostname?: string;
  dns?: { servers: string[]; search: string[]; options: string[]; domain?: string };
  /** Give the terminal to the (single) app. */
  interactive: boolean;
  /** Register with the metadata service (appc MDS). */
  mdsRegister: boolean;
  /** Milliseconds between SIGTERM and SIGKILL when the pod is stopped. */
  stopTimeoutMs: number;
  /**
   * Environment of `tspod run` passed to the apps (--inherit-env), lowest precedence. Everything
   * else (image, --set-env-file, --set-env, --environment) is already in each app's
   * `environment` in the pod manifest.
   */
  inheritedEnv?: Record<string, string>;
  debug: boolean;
}

/**
 * The namespaces of a pod, which stage0 creates with unshare(2) on its main thread right before
 * it starts stage1's init: a new PID namespace takes effect only for children, so the init must
 * be the first child of a process that unshared it (linux-from-node.md). The apps share PID, IPC
 * and UTS (spec/pods.md), the pod has its own mount namespace, and its own network namespace
 * unless `--net=host`.
 */
export function podNamespaces(net: NetMode): number {
  const flags = CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWPID;
  return net.kind === 'host' ? flags : flags | CLONE_NEWNET;
}

/** Exit status stage1 records for an app killed by a signal: 128 + signal number, as shells do. */
export function exitStatusForSignal(signal: number): number {
  return 128 + signal;
}

/** The exit status of a Node `ChildProcess` 'exit' event: its code, or 128 + the signal's number. */
export function exitStatusOfChild(code: number | null, signal: NodeJS.Signals | null): number {
  if (code !== null) return code;
  return exitStatusForSignal(signal === null ? os.constants.signals.SIGKILL : os.constants.signals[signal]);
}

// --- systemd integration (issue 7; stage1/README.md "systemd") --------------------------------

/**
 * Environment variable holding the `SystemdHandover` JSON. stage0 always sets it: it is how the
 * init learns, before it plans the pod, whether app output is prefixed, which fds are socket
 * activation fds for which app, and where to report events. Absent: everything off.
 */
export const ENV_SYSTEMD = 'TSPOD_SYSTEMD';

/**
 * rkt's image annotation for an app that speaks sd_notify(3) itself
 * (rkt Documentation/using-rkt-with-systemd.md): with value `true` the app gets a NOTIFY_SOCKET
 * of its own, and the pod is ready when every such app has sent READY=1 instead of when every
 * app has started. The pod manifest's app annotations override the image's.
 */
export const ANNOTATION_SUPPORTS_SYSTEMD_NOTIFY = 'appc.io/executor/supports-systemd-notify';

/** What stage0 tells the init about systemd features (ENV_SYSTEMD). Fd numbers are the init's. */
export interface SystemdHandover {
  /**
   * More than one app and not --interactive: each app's stdout/stderr lines reach the init's
   * stdout/stderr prefixed with `[app] ` (whole lines only), so journald shows them per app.
   */
  prefixOutput: boolean;
  /**
   * A stream (socket) on which the init writes `PodEvent` JSON lines for stage0, which turns them
   * into sd_notify(3) messages. Set only when `tspod run` has a NOTIFY_SOCKET.
   */
  eventsFd?: number;
  /** Apps that get their own NOTIFY_SOCKET (ANNOTATION_SUPPORTS_SYSTEMD_NOTIFY); only with eventsFd. */
  notifyApps: string[];
  /**
   * Socket activation (sd_listen_fds(3)): per app, the init's fds it receives (in order, they
   * become its fds 3, 4, ...) and their LISTEN_FDNAMES. Only apps with a `socketActivated` port.
   */
  listenFds: Record<string, { fds: number[]; names: string[] }>;
}

/** Events the init reports on `SystemdHandover.eventsFd`, one JSON object per line. */
export type PodEvent =
  /** Every app's main process has started (the `ready` file exists). */
  | { event: 'ready' }
  /** An app's main process ended with this exit status. */
  | { event: 'exited'; app: string; status: number }
  /** The pod is stopping (a signal, or an app failed and the others are being stopped). */
  | { event: 'stopping' }
  /** A datagram an app sent to its NOTIFY_SOCKET, as received (newline-separated assignments). */
  | { event: 'notify'; app: string; message: string };

/** The handover in `env` (ENV_SYSTEMD), or everything off when it is absent or unreadable. */
export function systemdHandoverFromEnv(env: NodeJS.ProcessEnv): SystemdHandover {
  const off: SystemdHandover = { prefixOutput: false, notifyApps: [], listenFds: {} };
  const text = env[ENV_SYSTEMD];
  if (text === undefined) return off;
  try {
    const value = JSON.parse(text) as Partial<SystemdHandover>;
    return {
      prefixOutput: value.prefixOutput === true,
      ...(Number.isInteger(value.eventsFd) ? { eventsFd: value.eventsFd } : {}),
      notifyApps: Array.isArray(value.notifyApps) ? value.notifyApps.filter((a) => typeof a === 'string') : [],
      listenFds: typeof value.listenFds === 'object' && value.listenFds !== null ? value.listenFds : {},
    };
  } catch {
    return off;
  }
}
// --- end of systemd integration ---------------------------------------------------------------
