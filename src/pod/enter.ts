// `tspod enter`: a new process in one app of a running pod, with exactly that app's view: the
// pod's IPC, UTS, network, PID and mount namespaces, then (in stage1's `enter.js`) the app's
// cgroup, root, working directory, user, groups, capabilities, no_new_privs and seccomp filter.
// This module owns the command's argument grammar, the choice of the app, the plan of which
// namespaces to join (from the init's host pid in `pid`, stage1/contract.ts), joining them on the
// main thread, and the hand-over to stage1, whose exit status it returns.
//
// Why on the main thread and then a child (docs/linux-from-node.md): setns(2) moves only the
// calling thread, a PID namespace applies to the caller's children only, and child_process
// forks from the main thread; so stage0 joins, then spawns `enter.js`, which is PID n of the pod.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { NotFoundError, TspodError, UsageError } from '../errors.js';
import { CLONE_FS, CLONE_NEWIPC, CLONE_NEWNET, CLONE_NEWNS, CLONE_NEWPID, CLONE_NEWUTS, SyscallError, type Syscalls } from '../sys/types.js';
import { exitStatusOfChild, STAGE1_ENTRYPOINTS } from '../../stage1/contract.js';
import { isPodLocked, PodStateError, readPod } from './state.js';

// dist/src/pod/enter.js -> dist/stage1/
const STAGE1_DIR = fileURLToPath(new URL('../../stage1/', import.meta.url));

/** What `tspod enter` runs when no command is given (rkt's default too). */
export const DEFAULT_ENTER_COMMAND: readonly string[] = ['/bin/sh'];

const FORWARDED_SIGNALS = ['SIGTERM', 'SIGINT', 'SIGHUP'] as const;

// -------------------------------------------------------------------------------------------------
// Argument grammar

/** How a flag other than enter's own is spelled: a switch (`--debug`) or one taking a value. */
export type FlagArity = 'switch' | 'value';

export interface EnterArgs {
  /** `--app NAME`: which app of the pod to enter. */
  app: string | undefined;
  /** The pod: a UUID or a unique prefix (undefined with --uuid-file). */
  uuid: string | undefined;
  uuidFile: string | undefined;
  /** The command and its arguments; DEFAULT_ENTER_COMMAND when none was given. */
  command: string[];
  /** The other (global) flags met before the UUID, as `--flag` or `--flag VALUE` words, for the caller to parse. */
  otherFlags: string[];
}

/**
 * `tspod enter [FLAGS] UUID [--] [CMD [ARGS...]]` or `tspod enter [FLAGS] --uuid-file FILE [--] [CMD [ARGS...]]`.
 *
 * Flags are read up to the first word that is not a flag: that word is the pod (or, with
 * --uuid-file, the command). Everything after the pod belongs to the command, untouched, so
 * `tspod enter UUID ls -l --debug` passes `-l --debug` to ls. One `--` right after the pod (or
 * before it, ending the flags) is dropped. FLAGS are `--app NAME`, `--uuid-file FILE` and the
 * flags in `otherFlags` (tspod's global flags), each as `--flag VALUE` or `--flag=VALUE`.
 * oclif itself answers `--help`/`-h` anywhere before a `--`: write `tspod enter UUID -- cmd --help`.
 */
export function parseEnterArgs(argv: readonly string[], otherFlags: Readonly<Record<string, FlagArity>> = {}): EnterArgs {
  const result: EnterArgs = { app: undefined, uuid: undefined, uuidFile: undefined, command: [], otherFlags: [] };
  let i = 0;
  const valueOf = (flag: string, inline: string | undefined): string => {
    if (inline !== undefined) return inline;
    const value = argv[++i];
    if (value === undefined) throw new UsageError(`enter: ${flag} needs a value`);
    return value;
  };
  let flagsEnded = false;
  for (; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      flagsEnded = true;
      i++;
      break;
    }
    if (!arg.startsWith('-') || arg === '-') break;
    const eq = arg.indexOf('=');
    const flag = eq === -1 ? arg : arg.slice(0, eq);
    const inline = eq === -1 ? undefined : arg.slice(eq + 1);
    if (flag === '--app') result.app = valueOf(flag, inline);
    else if (flag === '--uuid-file') result.uuidFile = valueOf(flag, inline);
    else if (otherFlags[flag.slice(2)] === 'switch' && flag.startsWith('--')) result.otherFlags.push(arg);
    else if (otherFlags[flag.slice(2)] === 'value' && flag.startsWith('--')) result.otherFlags.push(flag, valueOf(flag, inline));
    else throw new UsageError(`enter: unknown flag ${flag} (flags go before the pod uuid)`, { suggestions: ['tspod enter --help'] });
  }
  if (result.app === '') throw new UsageError('enter: --app needs an app name');
  if (result.uuidFile === undefined) {
    result.uuid = argv[i];
    if (result.uuid === undefined) throw new UsageError('enter: missing pod uuid (or --uuid-file)', { suggestions: ['tspod list'] });
    i++;
    // `tspod enter UUID -- cmd`: the separator is not part of the command.
    if (!flagsEnded && argv[i] === '--') i++;
  }
  result.command = argv.slice(i);
  const first = result.command[0];
  if (first === '--app' || first?.startsWith('--app=') === true) {
    throw new UsageError(`enter: ${first} after the pod uuid would be the command; flags go before the uuid`, {
      suggestions: [`tspod enter --app NAME ${result.uuid ?? '--uuid-file FILE'} [CMD [ARGS...]]`],
    });
  }
  if (result.command.length === 0) result.command = [...DEFAULT_ENTER_COMMAND];
  return result;
}

/** The app to enter: the one asked for, or the pod's only app. */
export function selectApp(uuid: string, appNames: readonly string[], requested: string | undefined): string {
  const listed = appNames.join(', ');
  if (requested !== undefined) {
    if (appNames.includes(requested)) return requested;
    throw new NotFoundError(`enter pod ${uuid}: no app named ${requested} (the pod's apps: ${listed || 'none'})`, {
      suggestions: appNames.map((name) => `tspod enter --app ${name} ${uuid}`),
    });
  }
  if (appNames.length === 1) return appNames[0]!;
  if (appNames.length === 0) throw new TspodError(`enter pod ${uuid}: its manifest lists no app`);
  throw new UsageError(`enter pod ${uuid}: it has ${appNames.length} apps (${listed}); choose one with --app`, {
    suggestions: appNames.map((name) => `tspod enter --app ${name} ${uuid}`),
  });
}

// -------------------------------------------------------------------------------------------------
// Plan

/** One namespace of the pod's init to join with setns(2). */
export interface NamespaceToJoin {
  /** The name under /proc/PID/ns/. */
  name: 'ipc' | 'uts' | 'net' | 'pid' | 'mnt';
  nstype: number;
  path: string;
}

/**
 * The namespaces `enter` joins, in the order nsenter(1) joins them: mnt last, because setns(2)
 * into a mount namespace also moves the thread's root and cwd. User and cgroup namespaces are not
 * here: pods have neither (stage1/contract.ts podNamespaces).
 */
export const ENTER_NAMESPACES = [
  { name: 'ipc', nstype: CLONE_NEWIPC },
  { name: 'uts', nstype: CLONE_NEWUTS },
  { name: 'net', nstype: CLONE_NEWNET },
  { name: 'pid', nstype: CLONE_NEWPID },
  { name: 'mnt', nstype: CLONE_NEWNS },
] as const satisfies readonly Omit<NamespaceToJoin, 'path'>[];

/**
 * namespaces(7): two /proc/PID/ns/X files refer to the same namespace when their device and inode
 * numbers are equal.
 */
export function namespaceIdentity(file: string): string {
  const st = fs.statSync(file);
  return `${st.dev}:${st.ino}`;
}

/**
 * Which of the init's namespaces to join. The network namespace is joined only when the pod has
 * its own (`--net=host` pods share the host's). Every other one must differ from ours, or the pid
 * is not a pod's init.
 */
export function planNamespaces(initPid: number, identity: (file: string) => string = namespaceIdentity, what = 'enter'): NamespaceToJoin[] {
  const planned: NamespaceToJoin[] = [];
  for (const ns of ENTER_NAMESPACES) {
    const file = `/proc/${initPid}/ns/${ns.name}`;
    let theirs: string;
    try {
      theirs = identity(file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new PodStateError(`${what}: its init (pid ${initPid}) is gone; the pod is exiting`, { cause: err });
      throw err;
    }
    if (theirs === identity(`/proc/self/ns/${ns.name}`)) {
      if (ns.name === 'net') continue;
      throw new PodStateError(`${what}: pid ${initPid} shares this process's ${ns.name} namespace, so it is not the pod's init`);
    }
    planned.push({ ...ns, path: file });
  }
  return planned;
}

export interface EnterRequest {
  /** The full pod UUID. */
  uuid: string;
  app?: string;
  /** Default DEFAULT_ENTER_COMMAND. */
  command?: readonly string[];
}

export interface EnterPlan {
  uuid: string;
  podDir: string;
  app: string;
  /** Host PID of the pod's init (stage1 `pid`). */
  initPid: number;
  namespaces: NamespaceToJoin[];
  /** The stage1 entry point and its argv: `enter.js POD_DIR APP -- CMD...` (stage1/contract.ts). */
  stage1Argv: string[];
}

export interface EnterOptions {
  sys: Syscalls;
  /** Namespace identity (default: device and inode from stat(2)); tests fake it. */
  namespaceIdentity?: (file: string) => string;
  /** open(2) of a namespace file (default fs.openSync, which libuv makes O_CLOEXEC). */
  openNamespace?: (file: string) => number;
  closeNamespace?: (fd: number) => void;
}

/** Reads the pod and decides what to join and what to run; no namespace is touched. */
export function planEnter(dir: string, request: EnterRequest, options: EnterOptions): EnterPlan {
  const { uuid } = request;
  const pod = readPod(dir, options.sys, uuid);
  if (pod.state !== 'running') {
    throw new PodStateError(`enter pod ${uuid}: it is not running (state ${pod.state})`, {
      suggestions: [pod.state === 'prepared' ? `tspod run-prepared ${uuid}` : `tspod status ${uuid}`],
    });
  }
  const app = selectApp(
    uuid,
    pod.apps.map((a) => a.name),
    request.app,
  );
  if (pod.pid === undefined || pod.apps.find((a) => a.name === app)?.startedAt === undefined) {
    throw new PodStateError(`enter pod ${uuid}: app ${app} has not started yet`, { suggestions: [`tspod status --wait-ready ${uuid}`] });
  }
  const command = request.command ?? DEFAULT_ENTER_COMMAND;
  if (command.length === 0 || command[0] === '') throw new UsageError('enter: the command is empty');
  return {
    uuid,
    podDir: pod.path,
    app,
    initPid: pod.pid,
    namespaces: planNamespaces(pod.pid, options.namespaceIdentity, `enter pod ${uuid}`),
    stage1Argv: [path.join(STAGE1_DIR, STAGE1_ENTRYPOINTS.enter), pod.path, app, '--', ...command],
  };
}

// -------------------------------------------------------------------------------------------------
// Apply

/**
 * Moves the calling (main) thread into the namespaces: every file is opened first (after the
 * setns into the mount namespace, /proc/PID may no longer name the same thing), `check` runs
 * between the opens and the first setns, then unshare(CLONE_FS) (setns(2): joining a mount
 * namespace needs a thread that does not share its filesystem attributes, and Node's threads do),
 * then setns(2) for each, in order. The fds are closed whatever happens.
 */
export function joinNamespaces(namespaces: readonly NamespaceToJoin[], options: EnterOptions & { check?: () => void }): void {
  const open = options.openNamespace ?? ((file: string) => fs.openSync(file, fs.constants.O_RDONLY));
  const close = options.closeNamespace ?? ((fd: number) => fs.closeSync(fd));
  const opened: (NamespaceToJoin & { fd: number })[] = [];
  try {
    for (const ns of namespaces) opened.push({ ...ns, fd: open(ns.path) });
    options.check?.();
    options.sys.unshare(CLONE_FS);
    for (const ns of opened) {
      try {
        options.sys.setns(ns.fd, ns.nstype);
      } catch (err) {
        const cause = err instanceof SyscallError ? err.code : (err as Error).message;
        throw new TspodError(`enter: cannot join the ${ns.name} namespace of ${ns.path}: setns: ${cause}`, { cause: err });
      }
    }
  } finally {
    for (const ns of opened) close(ns.fd);
  }
}

/**
 * `tspod enter`: plans, joins the pod's namespaces on this (main) thread, then runs stage1's
 * enter.js as a child with the terminal, forwarding SIGTERM/SIGINT/SIGHUP, and returns its exit
 * status (the command's; 128+N for a signal N). After this, the calling process is in the pod's
 * namespaces on its main thread: it should only wait and exit.
 */
export async function enterPod(dir: string, request: EnterRequest, options: EnterOptions): Promise<number> {
  const plan = planEnter(dir, request, options);
  joinNamespaces(plan.namespaces, {
    ...options,
    // The files are open: if the pod still runs now, the pid was its init's, not a reused one.
    check: () => {
      if (!isPodLocked(options.sys, plan.podDir)) throw new PodStateError(`enter pod ${plan.uuid}: it has just exited`, { suggestions: [`tspod status ${plan.uuid}`] });
    },
  });
  // setns(2) CLONE_NEWNS set this thread's cwd to the namespace's root: say so explicitly. The
  // init's mount namespace still shows the host's files (only the apps are chrooted), so node and
  // enter.js are found at the same paths as outside.
  const child = spawn(process.execPath, plan.stage1Argv, { stdio: 'inherit', cwd: '/' });
  const exited = new Promise<number>((resolve, reject) => {
    child.on('error', (err) =>
      reject(new TspodError(`enter pod ${plan.uuid}: cannot start stage1's ${STAGE1_ENTRYPOINTS.enter}: ${err.message}`, { cause: err })),
    );
    child.on('exit', (code, signal) => resolve(exitStatusOfChild(code, signal)));
  });
  const handlers = FORWARDED_SIGNALS.map((signal) => [signal, () => child.kill(signal)] as const);
  for (const [signal, handler] of handlers) process.on(signal, handler);
  try {
    return await exited;
  } finally {
    for (const [signal, handler] of handlers) process.off(signal, handler);
  }
}
