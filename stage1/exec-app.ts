// The final exec step of an app: in a fresh Node process (exec-app-main.ts), on its MAIN thread,
// apply chroot, credentials, capabilities, no_new_privs and seccomp to that one thread, then
// execve(2) the app. Everything here is per thread in the kernel (docs/linux-from-node.md), and
// execve(2) keeps exactly the calling thread's attributes: the app starts single-threaded with
// what this thread had, and Node's other threads vanish with the old image. Also owns the
// ExecStep document (parse/validate) and the exit status of a failed exec step.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import tty from 'node:tty';

import { TspodError, ValidationError } from '../src/errors.js';
import {
  CLONE_FS,
  PR_CAP_AMBIENT,
  PR_CAP_AMBIENT_CLEAR_ALL,
  PR_CAP_AMBIENT_RAISE,
  PR_CAPBSET_DROP,
  PR_SET_KEEPCAPS,
  PR_SET_NO_NEW_PRIVS,
  SIG_BLOCK,
  SIG_UNBLOCK,
  SIGTTOU,
  SyscallError,
  type Syscalls,
} from '../src/sys/types.js';
import { capabilityNames, capabilitySetsFromJson, capDataBuffer, toCapData, type CapabilitySetsJson } from './capabilities.js';
import type { AppPlan } from './plan.js';

/**
 * Exit status of exec-app-main.js when the exec step fails (chroot, credentials, capabilities,
 * seccomp or execve itself): systemd's EXIT_EXEC (203, systemd.exec(5) "Process exit codes").
 * rkt's default stage1 runs apps under systemd, so rkt users see 203 for an app that could not be
 * started; 127 would be indistinguishable from the app's own shell saying "command not found".
 */
export const EXIT_EXEC = 203;
/** Exit status when the ExecStep document itself is missing or malformed: tspod's own failure (rkt's 254). */
export const EXIT_BAD_STEP = 254;

/** Default PATH for resolving a bare exec[0] (appc spec/ace.md "Execution Environment"). */
export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** linux/capability.h: capability numbers are below 64 (two u32 words in capset v3). */
const CAP_BITS = 64;

/** One app's exec step, as JSON (written by the pod runtime, read by exec-app-main.js). */
export interface ExecStep {
  /** The app's root, as seen by the process running the step (it chroots there). */
  rootfs: string;
  /** Working directory inside the rootfs (absolute). */
  cwd: string;
  uid: number;
  gid: number;
  supplementaryGids: number[];
  /** The five sets as `0x...` hex strings (capabilitySetsToJson). */
  capabilities: CapabilitySetsJson;
  noNewPrivileges: boolean;
  /** `struct sock_filter[]` bytes, base64; absent = no filter. */
  seccompProgramBase64?: string;
  /** argv; exec[0] is resolved in the rootfs (PATH of `env` when it has no `/`) unless `path` is given. */
  exec: string[];
  /** The file given to execve(2), when the plan already resolved it (AppPlan.exec.path). */
  path?: string;
  env: Record<string, string>;
  /**
   * `--interactive`: when stdin is a terminal, the app gets a process group of its own and it
   * becomes the terminal's foreground group, so ^C and ^Z reach the app and not tspod.
   */
  foreground?: boolean;
  /** `os/linux/oom-score-adj` (-1000..1000), written to /proc/self/oom_score_adj; inherited by the app. */
  oomScoreAdj?: number;
  /**
   * Socket activation (sd_listen_fds(3)): the `count` fds this process has at `fromFd`.. become
   * the app's fds 3.. (SD_LISTEN_FDS_START) with FD_CLOEXEC clear, and LISTEN_FDS, LISTEN_PID (this
   * process's pid in the pod's PID namespace, which execve keeps for the app) and LISTEN_FDNAMES are set.
   */
  listenFds?: ListenFdsStep;
}

/** ExecStep.listenFds. */
export interface ListenFdsStep {
  fromFd: number;
  count: number;
  /** One per fd; no `:` (LISTEN_FDNAMES is colon-separated). */
  names: string[];
}

/** sd_listen_fds(3): SD_LISTEN_FDS_START. */
const LISTEN_FDS_START = 3;

/** The ExecStep of a planned app. */
export function execStepForApp(
  app: Pick<AppPlan, 'rootfs' | 'cwd' | 'uid' | 'gid' | 'supplementaryGids' | 'capabilities' | 'noNewPrivileges' | 'seccomp' | 'exec' | 'env' | 'oomScoreAdj'>,
): ExecStep {
  const { bounding, effective, permitted, inheritable, ambient } = app.capabilities;
  return {
    rootfs: app.rootfs,
    cwd: app.cwd,
    uid: app.uid,
    gid: app.gid,
    supplementaryGids: [...app.supplementaryGids],
    capabilities: { bounding, effective, permitted, inheritable, ambient },
    noNewPrivileges: app.noNewPrivileges,
    ...(app.seccomp === null ? {} : { seccompProgramBase64: app.seccomp.programBase64 }),
    exec: [...app.exec.argv],
    path: app.exec.path,
    env: { ...app.env },
    ...(app.oomScoreAdj === undefined ? {} : { oomScoreAdj: app.oomScoreAdj }),
  };
}

const ID_MAX = 0xfffffffe; // (uid_t)-1 means "unchanged" to setresuid(2): never a real id.

/** Checks the shape of a parsed ExecStep document; every problem is named in one ValidationError. */
export function parseExecStep(value: unknown, source = 'exec step'): ExecStep {
  const problems: string[] = [];
  const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  const isId = (v: unknown): v is number => Number.isInteger(v) && (v as number) >= 0 && (v as number) <= ID_MAX;
  const isAbsolute = (v: unknown): v is string => typeof v === 'string' && v.startsWith('/') && !v.includes('\0');
  if (!isObject(value)) throw new ValidationError(`${source}: not a JSON object`);
  const v = value;
  if (!isAbsolute(v.rootfs)) problems.push('/rootfs: must be an absolute path');
  if (!isAbsolute(v.cwd)) problems.push('/cwd: must be an absolute path');
  if (!isId(v.uid)) problems.push('/uid: must be an integer id');
  if (!isId(v.gid)) problems.push('/gid: must be an integer id');
  if (!Array.isArray(v.supplementaryGids) || !v.supplementaryGids.every(isId)) problems.push('/supplementaryGids: must be an array of integer ids');
  if (!isObject(v.capabilities)) problems.push('/capabilities: must be an object of five hex masks');
  else {
    for (const set of ['bounding', 'effective', 'permitted', 'inheritable', 'ambient'] as const) {
      const mask = v.capabilities[set];
      if (typeof mask !== 'string' || !/^0x[0-9a-f]{1,16}$/i.test(mask)) problems.push(`/capabilities/${set}: must be a hex mask such as "0xa80425fb"`);
    }
  }
  if (typeof v.noNewPrivileges !== 'boolean') problems.push('/noNewPrivileges: must be a boolean');
  if (v.seccompProgramBase64 !== undefined) {
    const b64 = v.seccompProgramBase64;
    // linux/filter.h: a program is a non-empty array of 8-byte struct sock_filter.
    const bytes = typeof b64 === 'string' && /^[A-Za-z0-9+/]*={0,2}$/.test(b64) ? Buffer.from(b64, 'base64').length : -1;
    if (bytes <= 0 || bytes % 8 !== 0) problems.push('/seccompProgramBase64: must be base64 of a non-empty struct sock_filter array');
  }
  if (!Array.isArray(v.exec) || v.exec.length === 0 || !v.exec.every((a) => typeof a === 'string' && !a.includes('\0')) || v.exec[0] === '') {
    problems.push('/exec: must be a non-empty array of strings');
  }
  if (v.path !== undefined && !isAbsolute(v.path)) problems.push('/path: must be an absolute path');
  if (v.foreground !== undefined && typeof v.foreground !== 'boolean') problems.push('/foreground: must be a boolean');
  if (v.oomScoreAdj !== undefined && !(Number.isInteger(v.oomScoreAdj) && (v.oomScoreAdj as number) >= -1000 && (v.oomScoreAdj as number) <= 1000)) {
    problems.push('/oomScoreAdj: must be an integer -1000..1000');
  }
  if (v.listenFds !== undefined) {
    const l = v.listenFds as Partial<ListenFdsStep> | null;
    const ok =
      isObject(l) &&
      Number.isInteger(l.fromFd) && (l.fromFd as number) >= LISTEN_FDS_START &&
      Number.isInteger(l.count) && (l.count as number) >= 1 &&
      Array.isArray(l.names) && l.names.length === l.count && l.names.every((n) => typeof n === 'string' && !n.includes(':') && !n.includes('\0'));
    if (!ok) problems.push('/listenFds: must be {fromFd >= 3, count >= 1, names: one string without ":" per fd}');
  }
  if (!isObject(v.env) || !Object.entries(v.env).every(([k, val]) => k !== '' && !k.includes('=') && !k.includes('\0') && typeof val === 'string' && !val.includes('\0'))) {
    problems.push('/env: must map names (no "=") to strings');
  }
  if (problems.length > 0) throw new ValidationError(`${source}: invalid`, problems);
  return v as unknown as ExecStep;
}

export interface ExecAppOptions {
  /** Whether a path (inside the chroot, already entered) is an executable file; for PATH search. */
  isExecutable?: (file: string) => boolean;
  /** Whether an fd is a terminal (default tty.isatty); for `foreground`. */
  isTerminal?: (fd: number) => boolean;
  /** Writes this process's OOM score adjustment (default: /proc/self/oom_score_adj). */
  writeOomScoreAdj?: (value: number) => void;
}

function writeOwnOomScoreAdj(value: number): void {
  // A sync write on the main thread: /proc/self is this process whichever thread writes.
  fs.writeFileSync('/proc/self/oom_score_adj', `${value}\n`);
}

function isExecutableFile(file: string): boolean {
  try {
    // Sync fs calls run on the calling (main) thread, so they see this thread's chroot.
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

/** execvp(3)'s rule: a name with a `/` is used as is; otherwise the first executable in PATH. */
export function resolveExecutable(name: string, env: Record<string, string>, isExecutable: (file: string) => boolean = isExecutableFile): string {
  if (name.includes('/')) return name;
  for (const dir of (env.PATH ?? DEFAULT_PATH).split(':')) {
    const candidate = path.posix.join(dir === '' ? '.' : dir, name);
    if (isExecutable(candidate)) return candidate;
  }
  throw new SyscallError('execve', os.constants.errno.ENOENT, `${name} (not found in PATH ${env.PATH ?? DEFAULT_PATH})`);
}

function bits(mask: bigint): number[] {
  const out: number[] = [];
  for (let cap = 0; cap < CAP_BITS; cap++) if (((mask >> BigInt(cap)) & 1n) === 1n) out.push(cap);
  return out;
}

/** capset(2) EPERM: the usual cause is a capability this process never had (a container's root); name them. */
function explainCapsetFailure(err: unknown, wanted: bigint, sys: Syscalls): unknown {
  if (!(err instanceof SyscallError) || err.code !== 'EPERM') return err;
  let held: bigint;
  try {
    const data = sys.capget(0);
    // Permitted words of the two v3 data structs (linux/capability.h), low word first.
    held = BigInt(data.readUInt32LE(4)) | (BigInt(data.readUInt32LE(16)) << 32n);
  } catch {
    return err;
  }
  const missing = wanted & ~held;
  if (missing === 0n) return err;
  return new TspodError(`${err.message}: ${capabilityNames(missing).join(', ')} not in this process's permitted set, so the app cannot have them`, { cause: err });
}

/** FD_CLOEXEC on every open fd >= `first` (close_range(2), or /proc/self/fd where it is missing). */
function markCloexecFrom(sys: Syscalls, first: number): void {
  try {
    sys.closeRangeCloexec(first);
    return;
  } catch (err) {
    if (!(err instanceof SyscallError) || (err.code !== 'ENOSYS' && err.code !== 'EINVAL')) throw err;
  }
  let fds: number[];
  try {
    fds = fs.readdirSync('/proc/self/fd').map(Number);
  } catch {
    return; // no /proc in this root: nothing more can be done
  }
  for (const fd of fds) {
    if (fd < first) continue;
    try {
      sys.fcntlSetCloexec(fd, true);
    } catch {
      // the directory's own fd, closed by now
    }
  }
}

/**
 * Applies the step to the calling thread and execve(2)s the app. Returns only by throwing (a
 * SyscallError naming the call that failed; nothing after it ran, so the app never started).
 * Must run on the main thread of a process that does nothing else (exec-app-main.ts).
 */
export function execApp(step: ExecStep, sys: Syscalls, options: ExecAppOptions = {}): never {
  const caps = capabilitySetsFromJson(step.capabilities);
  const program = step.seccompProgramBase64 === undefined ? undefined : Buffer.from(step.seccompProgramBase64, 'base64');
  const env = { ...step.env };

  // 1. The thread's own fs_struct: Node's threads share root and cwd (CLONE_FS), so without this
  //    chroot would move them all, and setns(CLONE_NEWNS) would be refused (EINVAL) (unshare(2);
  //    docs/linux-from-node.md). It also keeps execve from seeing a shared fs_struct
  //    (fs/exec.c check_unsafe_exec: LSM_UNSAFE_SHARE).
  sys.unshare(CLONE_FS);
  // 1b. The OOM score, before chroot (the host's /proc) and while CAP_SYS_RESOURCE is still held:
  //     lowering it needs that capability (proc(5) /proc/pid/oom_score_adj). Kept across execve.
  if (step.oomScoreAdj !== undefined) (options.writeOomScoreAdj ?? writeOwnOomScoreAdj)(step.oomScoreAdj);
  // 2. Enter the app's root, then its working directory, resolved inside the new root.
  //    chroot(2) leaves the cwd outside the root: the chdir must follow it.
  sys.chroot(step.rootfs);
  sys.chdir(step.cwd);
  const file = step.path ?? resolveExecutable(step.exec[0] ?? '', step.env, options.isExecutable);
  // 3. Node marks fds 0-2 close-on-exec (docs/linux-from-node.md): without clearing FD_CLOEXEC the
  //    app would start with no stdin/stdout/stderr. Done before seccomp, which may deny fcntl.
  for (const fd of [0, 1, 2]) sys.fcntlSetCloexec(fd, false);
  // 3a. Socket activation (sd_listen_fds(3)): the fds come at fromFd.. (fd 3 carried the step) and
  //     move down to 3.. in ascending order, so no source is overwritten before it is copied; a
  //     dup2(2) copy has FD_CLOEXEC clear. LISTEN_PID is this pid: execve(2) keeps it for the app.
  const listenCount = step.listenFds?.count ?? 0;
  if (step.listenFds !== undefined) {
    const { fromFd, names } = step.listenFds;
    for (let i = 0; i < listenCount; i++) {
      if (fromFd + i !== LISTEN_FDS_START + i) sys.dup2(fromFd + i, LISTEN_FDS_START + i);
      sys.fcntlSetCloexec(LISTEN_FDS_START + i, false);
    }
    env.LISTEN_FDS = String(listenCount);
    env.LISTEN_PID = String(sys.getpid());
    env.LISTEN_FDNAMES = names.join(':');
  }
  // 3b. Every other fd above them is close-on-exec: the app starts with stdio and its listen fds
  //     only, whatever the init or Node left open (the pod lock, the systemd events stream, the
  //     listen fds' old places). close_range(2) CLOSE_RANGE_CLOEXEC (Linux 5.11) marks without
  //     closing, so Node keeps working should execve fail; before 5.11, one fcntl per open fd.
  markCloexecFrom(sys, LISTEN_FDS_START + listenCount);
  // 3b. --interactive: a process group of its own, made the terminal's foreground group
  //     (credentials(7) "Sessions and process groups"). tcsetpgrp(3) from a background group sends the caller
  //     SIGTTOU, which would stop it, unless the signal is blocked (tty_check_change in
  //     drivers/tty/tty_jobctrl.c); the mask is restored because execve keeps it.
  if (step.foreground === true && (options.isTerminal ?? tty.isatty)(0)) {
    sys.setpgid(0, 0);
    sys.pthreadSigmask(SIG_BLOCK, [SIGTTOU]);
    sys.tcsetpgrp(0, sys.getpid());
    sys.pthreadSigmask(SIG_UNBLOCK, [SIGTTOU]);
  }

  // seccomp(2): installing a filter needs no_new_privs or CAP_SYS_ADMIN in the effective set
  // (else EACCES). With no_new_privs it goes last, so the filter cannot block the setup calls.
  // Without it, it must go in while this thread is still fully privileged, before the
  // credentials and capabilities are dropped (runc's standard_init_linux.go does the same); the
  // filter must then allow setgroups, setresgid, setresuid, prctl, capset and execve.
  const seccompEarly = program !== undefined && !step.noNewPrivileges && ((caps.effective >> 21n) & 1n) === 0n; // 21 = CAP_SYS_ADMIN
  if (seccompEarly) sys.seccompSetFilter(program);

  // 4. Groups before gids before uids: setgroups(2) and setresgid(2) need CAP_SETGID, which the
  //    thread loses when it leaves uid 0 (capabilities(7) "Effect of user ID changes").
  sys.setgroups(step.supplementaryGids);
  sys.setresgid(step.gid, step.gid, step.gid);
  // 5. Bounding set: PR_CAPBSET_DROP needs CAP_SETPCAP in the effective set (prctl(2)), so drop
  //    while still uid 0 with every capability. Bits above the kernel's last capability fail
  //    with EINVAL: nothing is left to drop there.
  for (let cap = 0; cap < CAP_BITS; cap++) {
    if (((caps.bounding >> BigInt(cap)) & 1n) === 1n) continue;
    try {
      sys.prctl(PR_CAPBSET_DROP, cap);
    } catch (err) {
      if (err instanceof SyscallError && err.code === 'EINVAL') break;
      throw err;
    }
  }
  // 6. Leaving uid 0 clears the permitted and effective sets unless SECBIT_KEEP_CAPS is set
  //    (capabilities(7)); keep them when the app is to have any, so capset can then pick them.
  //    The kernel resets keepcaps at execve (prctl(2) PR_SET_KEEPCAPS).
  const nonRoot = step.uid !== 0;
  if (nonRoot && (caps.permitted | caps.ambient) !== 0n) sys.prctl(PR_SET_KEEPCAPS, 1);
  // 7. The raw per-thread setresuid (src/sys: glibc's wrapper would change every Node thread).
  sys.setresuid(step.uid, step.uid, step.uid);
  // 8. effective/permitted/inheritable, after setresuid, which cleared the effective set.
  try {
    sys.capset(capDataBuffer(toCapData(caps)));
  } catch (err) {
    throw explainCapsetFailure(err, caps.effective | caps.permitted | caps.inheritable, sys);
  }
  // 9. Ambient: PR_CAP_AMBIENT_RAISE needs the capability in permitted and inheritable (prctl(2)),
  //    so after capset; and setresuid away from 0 clears the ambient set, so after that too.
  //    Clear first: nothing inherited from tspod's own ambient set survives.
  sys.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL);
  for (const cap of bits(caps.ambient)) sys.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap);
  // 10. no_new_privs: execve can no longer grant privileges (setuid bits, file capabilities);
  //     it also lets an unprivileged thread install the seccomp filter.
  if (step.noNewPrivileges) sys.prctl(PR_SET_NO_NEW_PRIVS, 1);
  // 11. seccomp last, so none of the calls above went through the filter. Only execve (in every
  //     retain set: seccomp-groups.ts RETAIN_IMPLICIT) and koffi's own bookkeeping follow.
  if (program !== undefined && !seccompEarly) sys.seccompSetFilter(program);
  // 12. execve(2): the app replaces this process with this thread's root, credentials, sets and filter.
  return sys.execve(file, step.exec, Object.entries(env).map(([k, v]) => `${k}=${v}`));
}
