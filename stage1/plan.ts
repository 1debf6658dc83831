// stage1's run plan, pure: the pod manifest, each app's image manifest and rendered tree, the run
// options and a read-only view of the host filesystem in; a JSON-serialisable PodPlan out
// (namespaces, hostname, ordered mount(2) calls with the device nodes, files and links to make
// after them, and per app: exec, environment, credentials, capabilities, seccomp, cgroup values).
// The apply step writes the plan to the pod directory and executes it; nothing here calls the
// kernel. Rules: appc spec/ace.md and spec/OS-SPEC.md; rkt stage1/init/common for the choices the
// spec leaves open (default capabilities, default seccomp whitelist, path protection).
import net from 'node:net';
import path from 'node:path';

import { parseQuantity } from '../src/appc/quantity.js';
import type { App, EnvironmentVariable, ImageManifest, Isolator, PodManifest, Volume } from '../src/appc/types.js';
import { capabilityNames, capabilitySets, capabilitySetsToJson, type CapabilityMode, type CapabilitySetsJson } from './capabilities.js';
import type { NetMode, RunOptions } from './contract.js';
import { podNamespaces, STAGE1_FILES } from './contract.js';
import { podNetworkResolvConf } from './net-dns.js';
import { PlanError } from './plan-error.js';
import { cleanAbsolute, isWithin, readInRootfs, resolveInRootfs, type RootfsView } from './rootfs-paths.js';
import { seccompForApp, type SeccompMode } from './seccomp.js';
import { resolveUser, userEnvironment } from './users.js';

export { PlanError };
export type { RootfsView };

export const PLAN_VERSION = 1;

import {
  CLONE_NEWCGROUP,
  CLONE_NEWIPC,
  CLONE_NEWNET,
  CLONE_NEWNS,
  CLONE_NEWPID,
  CLONE_NEWUSER,
  CLONE_NEWUTS,
  MS_BIND,
  MS_MOVE,
  MS_NODEV,
  MS_NOEXEC,
  MS_NOSUID,
  MS_PRIVATE,
  MS_RDONLY,
  MS_REC,
  MS_REMOUNT,
  MS_SLAVE,
  MS_STRICTATIME,
} from '../src/sys/types.js';

const MS_NAMES: readonly (readonly [string, number])[] = [
  ['MS_RDONLY', MS_RDONLY],
  ['MS_NOSUID', MS_NOSUID],
  ['MS_NODEV', MS_NODEV],
  ['MS_NOEXEC', MS_NOEXEC],
  ['MS_REMOUNT', MS_REMOUNT],
  ['MS_BIND', MS_BIND],
  ['MS_MOVE', MS_MOVE],
  ['MS_REC', MS_REC],
  ['MS_PRIVATE', MS_PRIVATE],
  ['MS_SLAVE', MS_SLAVE],
  ['MS_STRICTATIME', MS_STRICTATIME],
];

const CLONE_NAMES: readonly (readonly [string, number])[] = [
  ['CLONE_NEWNS', CLONE_NEWNS],
  ['CLONE_NEWUTS', CLONE_NEWUTS],
  ['CLONE_NEWIPC', CLONE_NEWIPC],
  ['CLONE_NEWPID', CLONE_NEWPID],
  ['CLONE_NEWNET', CLONE_NEWNET],
  ['CLONE_NEWCGROUP', CLONE_NEWCGROUP],
  ['CLONE_NEWUSER', CLONE_NEWUSER],
];

export function flagNames(flags: number, table: readonly (readonly [string, number])[] = MS_NAMES): string[] {
  return table.filter(([, v]) => (flags & v) !== 0).map(([n]) => n);
}

/** spec/ace.md "Execution Environment". */
export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
/** The `container` variable's value (spec/ace.md: the ACE's name). */
export const CONTAINER_NAME = 'tspod';
/** cpu.cfs_period_us tspod uses (the kernel's default period, 100 ms). */
export const CPU_PERIOD_US = 100_000;
/** sched-design-CFS / cgroup-v1 cpu: cfs_quota_us must be at least 1 ms. */
export const CPU_QUOTA_MIN_US = 1_000;

// ---------------------------------------------------------------------------------------------
// Input and output types
// ---------------------------------------------------------------------------------------------

export interface PlanAppInput {
  imageManifest: ImageManifest;
  /** `trees/<tree-id>/rootfs`: the image rendered with its dependencies, never written to. */
  treeRootfs: string;
}

export interface PlanHost {
  /** Contents of the host's /etc/resolv.conf, for `--dns=host`. */
  resolvConf?: string;
  /** SELinux is enabled on the host (the selinux-context isolator is ignored otherwise). */
  selinuxEnabled?: boolean;
  /** overlayfs usable for the pod dir (false: the plan asks for copies straight away). */
  overlaySupported?: boolean;
  /**
   * cgroup v2: the cgroup a systemd unit delegated to `tspod run` (ENV_CGROUP_PARENT), relative
   * to the root. The pod's cgroup goes below it, and controllers are enabled from it down, never
   * above it. Absent: `tspod/pod-<uuid>` in each hierarchy.
   */
  delegatedCgroup?: string;
}

export interface PlanInput {
  uuid: string;
  podDir: string;
  manifest: PodManifest;
  /** By app name (`apps/<name>` of the pod directory). */
  apps: Readonly<Record<string, PlanAppInput>>;
  runOptions: RunOptions;
  view: RootfsView;
  host?: PlanHost;
  /** $AC_METADATA_URL when runOptions.mdsRegister (no trailing slash). */
  metadataUrl?: string;
}

export type MountKind =
  | 'propagation'
  | 'pod-root'
  | 'rootfs'
  | 'proc'
  | 'sysfs'
  | 'dev'
  | 'devpts'
  | 'shm'
  | 'mqueue'
  | 'console'
  | 'protect-bind'
  | 'protect-readonly'
  | 'protect-mask-file'
  | 'protect-mask-dir'
  | 'volume'
  | 'volume-readonly'
  | 'readonly-rootfs';

export interface DeviceNode {
  /** Host path in the pod's mount namespace. */
  path: string;
  /** mknod(2) S_IFCHR. */
  type: 'c';
  major: number;
  minor: number;
  mode: number;
  /** The host's node of the same device, for a bind mount where mknod is refused. */
  hostPath: string;
}

export interface PlannedSymlink {
  path: string;
  target: string;
}

/** A file written on the new mount (parents created 0755 root:root; an existing file replaced). */
export interface PlannedFile {
  path: string;
  content: string;
  mode: number;
  why: string;
}

/** One mount(2) call, then what to create on the new mount. */
export interface PlannedMount {
  kind: MountKind;
  app?: string;
  source: string | null;
  target: string;
  fstype: string | null;
  flags: number;
  /** Kernel spellings of `flags`, for humans and grep. */
  flagNames: string[];
  data: string | null;
  /** Create the target (and parents, 0755 root:root) when missing: a directory or an empty file. */
  createTarget?: 'dir' | 'file';
  /** Skip (do not fail) when the target does not exist: path protection of optional kernel files. */
  optional?: boolean;
  /** Replace `source` with the pod's terminal (--interactive). */
  sourceIsTerminal?: boolean;
  /** overlayfs refused (EINVAL/ENODEV): copy `from` to `to` and bind-mount `to` instead. */
  copyFallback?: { from: string; to: string };
  /** After the mount succeeds. */
  mknod?: DeviceNode[];
  symlinks?: PlannedSymlink[];
  files?: PlannedFile[];
}

export interface ExecSpec {
  /** The file given to execve(2). */
  path: string;
  argv: string[];
}

export interface CgroupValues {
  /** Relative to each hierarchy root. */
  path: string;
  /** By v1 controller: file -> value. */
  v1: Record<string, Record<string, string>>;
  /** cgroup v2 interface file -> value. */
  v2: Record<string, string>;
}

export interface SeccompPlan {
  source: 'isolator' | 'default';
  mode: SeccompMode;
  errno: string;
  /** `struct sock_filter[]` bytes, base64. */
  programBase64: string;
  instructions: number;
  defaultAction: string;
  matchAction: string;
  syscallCount: number;
}

export interface AppPlan {
  name: string;
  imageId: string;
  imageName: string;
  /** The app's root (chroot target) in the pod's mount namespace. */
  rootfs: string;
  treeRootfs: string;
  exec: ExecSpec;
  env: Record<string, string>;
  cwd: string;
  uid: number;
  gid: number;
  supplementaryGids: number[];
  capabilities: CapabilitySetsJson & { mode: CapabilityMode; boundingNames: string[] };
  noNewPrivileges: boolean;
  /** null: no filter (`retain @appc.io/all`). */
  seccomp: SeccompPlan | null;
  readOnlyRootFS: boolean;
  eventHandlers: { preStart?: ExecSpec; postStop?: ExecSpec };
  oomScoreAdj?: number;
  cgroup: CgroupValues;
}

export interface EmptyVolumePlan {
  name: string;
  path: string;
  mode: number;
  uid: number;
  gid: number;
}

export interface IsolatorReport {
  scope: 'pod' | 'app';
  app?: string;
  name: string;
  status: 'enforced' | 'ignored';
}

export interface PodPlan {
  version: number;
  uuid: string;
  podDir: string;
  namespaces: { flags: number; names: string[] };
  net: NetMode & { newNamespace: boolean };
  hostname: string;
  hosts: string;
  /** undefined: keep each image's /etc/resolv.conf. */
  resolvConf?: string;
  podRoot: string;
  emptyVolumes: EmptyVolumePlan[];
  mounts: PlannedMount[];
  sysctls: { key: string; path: string; value: string }[];
  /**
   * `delegated`: PlanHost.delegatedCgroup. `v2Controllers`: what the pod's and apps' limits need
   * (cpu, memory) and pids, which counts the pod's processes where the parent offers it.
   */
  cgroup: CgroupValues & { delegated?: string; v2Controllers: string[] };
  apps: AppPlan[];
  isolators: IsolatorReport[];
  warnings: string[];
}

// ---------------------------------------------------------------------------------------------
// Pod level
// ---------------------------------------------------------------------------------------------

/** HOST_NAME_MAX (limits.h): sethostname(2) takes at most 64 bytes. */
const HOST_NAME_MAX = 64;
const HOSTNAME_PATTERN = /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

export function podHostname(uuid: string, requested?: string): string {
  if (requested === undefined || requested === '') return `tspod-${uuid.replace(/-/g, '').slice(0, 8)}`;
  if (requested.length > HOST_NAME_MAX || !HOSTNAME_PATTERN.test(requested)) {
    throw new PlanError(`pod hostname ${JSON.stringify(requested)} is not a valid host name (letters, digits, '-' and '.', at most ${HOST_NAME_MAX} characters)`);
  }
  return requested;
}

export function hostsFile(hostname: string): string {
  return `127.0.0.1\tlocalhost localhost.localdomain ${hostname}\n::1\tlocalhost ip6-localhost ip6-loopback ${hostname}\n`;
}

/** resolv.conf(5) from --dns flags; undefined = keep the image's (absent, or `none`). */
export function resolvConf(dns: RunOptions['dns'], hostResolvConf: string | undefined, warnings: string[]): string | undefined {
  if (dns === undefined) return undefined;
  const servers = dns.servers;
  if (servers.length === 0 || (servers.length === 1 && servers[0] === 'none')) return undefined;
  if (servers.includes('host')) {
    if (servers.length > 1) throw new PlanError(`--dns=host cannot be combined with other servers (${servers.join(', ')})`);
    if (hostResolvConf === undefined) {
      warnings.push('--dns=host: the host has no /etc/resolv.conf; the images keep their own');
      return undefined;
    }
    return hostResolvConf;
  }
  const bad = servers.filter((s) => net.isIP(s) === 0);
  if (bad.length > 0) throw new PlanError(`--dns: ${bad.join(', ')} ${bad.length === 1 ? 'is' : 'are'} not an IP address (or "host", "none")`);
  // resolv.conf(5): "up to MAXNS (currently 3) name servers"; later lines are ignored by glibc.
  if (servers.length > 3) warnings.push(`--dns: glibc uses only the first 3 name servers of ${servers.length}`);
  const lines = ['# generated by tspod'];
  // resolv.conf(5): domain and search are mutually exclusive, the last one wins: search last.
  if (dns.domain !== undefined && dns.domain !== '') lines.push(`domain ${dns.domain}`);
  if (dns.search.length > 0) lines.push(`search ${dns.search.join(' ')}`);
  for (const s of servers) lines.push(`nameserver ${s}`);
  if (dns.options.length > 0) lines.push(`options ${dns.options.join(' ')}`);
  return `${lines.join('\n')}\n`;
}

export function namespacesFor(netMode: NetMode): { flags: number; names: string[] } {
  const flags = podNamespaces(netMode);
  return { flags, names: flagNames(flags, CLONE_NAMES) };
}

// ---------------------------------------------------------------------------------------------
// cgroups
// ---------------------------------------------------------------------------------------------

/** systemd's cgroup_cpu_shares_to_weight: [2, 262144] -> [1, 10000], 1024 -> 39. */
export function cpuSharesToWeight(shares: number): number {
  return 1 + Math.floor(((shares - 2) * 9999) / 262142);
}

interface ResourceLimits {
  memoryBytes?: number;
  cpuQuotaUs?: number;
  cpuShares?: number;
}

function resourceLimits(isolators: readonly Isolator[], where: string, warnings: string[], report: (name: string, status: IsolatorReport['status']) => void): ResourceLimits {
  const out: ResourceLimits = {};
  for (const iso of isolators) {
    const v = (iso.value ?? {}) as Record<string, unknown>;
    if (iso.name === 'resource/memory') {
      const limit = v.limit;
      if (limit === undefined) {
        warnings.push(`${where}: resource/memory without a limit is ignored (only limits are enforced)`);
        report(iso.name, 'ignored');
        continue;
      }
      const bytes = Math.floor(parseQuantity(limit as string | number));
      if (bytes <= 0) throw new PlanError(`${where}: resource/memory limit must be positive, got ${JSON.stringify(limit)}`);
      out.memoryBytes = bytes;
      report(iso.name, 'enforced');
    } else if (iso.name === 'resource/cpu') {
      const limit = v.limit;
      if (limit === undefined) {
        warnings.push(`${where}: resource/cpu without a limit is ignored (requests are not enforced, as in rkt)`);
        report(iso.name, 'ignored');
        continue;
      }
      const cores = parseQuantity(limit as string | number);
      if (cores <= 0) throw new PlanError(`${where}: resource/cpu limit must be positive, got ${JSON.stringify(limit)}`);
      let quota = Math.round(cores * CPU_PERIOD_US);
      if (quota < CPU_QUOTA_MIN_US) {
        warnings.push(`${where}: resource/cpu limit ${JSON.stringify(limit)} raised to the kernel minimum of ${CPU_QUOTA_MIN_US / CPU_PERIOD_US} cores`);
        quota = CPU_QUOTA_MIN_US;
      }
      out.cpuQuotaUs = quota;
      report(iso.name, 'enforced');
    } else if (iso.name === 'os/linux/cpu-shares') {
      const shares = iso.value;
      // schema/types/isolator_linux_specific.go: LinuxCPUShares is 2..262144.
      if (typeof shares !== 'number' || !Number.isInteger(shares) || shares < 2 || shares > 262144) {
        throw new PlanError(`${where}: os/linux/cpu-shares must be an integer 2..262144, got ${JSON.stringify(shares)}`);
      }
      out.cpuShares = shares;
      report(iso.name, 'enforced');
    }
  }
  return out;
}

export function cgroupValues(cgroupPath: string, limits: ResourceLimits): CgroupValues {
  const v1: Record<string, Record<string, string>> = {};
  const v2: Record<string, string> = {};
  if (limits.memoryBytes !== undefined) {
    v1.memory = { 'memory.limit_in_bytes': String(limits.memoryBytes) };
    v2['memory.max'] = String(limits.memoryBytes);
  }
  if (limits.cpuQuotaUs !== undefined || limits.cpuShares !== undefined) {
    const cpu: Record<string, string> = {};
    if (limits.cpuQuotaUs !== undefined) {
      cpu['cpu.cfs_period_us'] = String(CPU_PERIOD_US);
      cpu['cpu.cfs_quota_us'] = String(limits.cpuQuotaUs);
      v2['cpu.max'] = `${limits.cpuQuotaUs} ${CPU_PERIOD_US}`;
    }
    if (limits.cpuShares !== undefined) {
      cpu['cpu.shares'] = String(limits.cpuShares);
      v2['cpu.weight'] = String(cpuSharesToWeight(limits.cpuShares));
    }
    v1.cpu = cpu;
  }
  return { path: cgroupPath, v1, v2 };
}

// ---------------------------------------------------------------------------------------------
// Isolator classification
// ---------------------------------------------------------------------------------------------

const APP_HANDLED = new Set([
  'resource/memory',
  'resource/cpu',
  'os/linux/cpu-shares',
  'os/linux/capabilities-retain-set',
  'os/linux/capabilities-remove-set',
  'os/linux/seccomp-retain-set',
  'os/linux/seccomp-remove-set',
  'os/linux/no-new-privileges',
  'os/linux/oom-score-adj',
]);
/** spec/ace.md lets the ACE ignore these if it says so; tspod has no implementation yet. */
const IGNORABLE = new Set(['resource/block-bandwidth', 'resource/block-iops', 'resource/network-bandwidth']);

function checkUnsupported(iso: Isolator, where: string, host: PlanHost, warnings: string[], report: (name: string, status: IsolatorReport['status']) => void): boolean {
  if (IGNORABLE.has(iso.name)) {
    warnings.push(`${where}: isolator "${iso.name}" is not implemented by tspod and was ignored`);
    report(iso.name, 'ignored');
    return true;
  }
  if (iso.name === 'os/linux/selinux-context') {
    // spec/ace.md: "MAY be ignored if the host lacks SELinux".
    if (host.selinuxEnabled === true) throw new PlanError(`${where}: isolator "os/linux/selinux-context" is not supported by tspod on a host with SELinux enabled`);
    warnings.push(`${where}: isolator "os/linux/selinux-context" ignored: SELinux is not enabled on this host`);
    report(iso.name, 'ignored');
    return true;
  }
  if (iso.name === 'os/linux/apparmor-profile') {
    // spec/ace.md: the ACE MUST refuse to run if the profile is not loaded; tspod loads none.
    throw new PlanError(`${where}: isolator "os/linux/apparmor-profile" is not supported by tspod (the spec requires refusing to run)`);
  }
  return false;
}

/** Keys of os/unix/sysctl tspod applies: those scoped by the pod's own IPC and network namespaces. */
function sysctlAllowed(key: string, ownNetns: boolean): boolean {
  if (/^(kernel\.(shmmax|shmall|shmmni|shm_rmid_forced|msgmax|msgmnb|msgmni|sem)|fs\.mqueue\.[a-z_]+)$/.test(key)) return true;
  return ownNetns && /^net\.[A-Za-z0-9_.-]+$/.test(key) && !key.includes('..');
}

// ---------------------------------------------------------------------------------------------
// Per app
// ---------------------------------------------------------------------------------------------

interface ResolvedMount {
  target: string;
  volume: Volume;
  readOnly: boolean;
  source: string;
}

/** spec/OS-SPEC.md: /dev nodes every app gets (major/minor from devices.txt). */
export const DEV_NODES: readonly { name: string; major: number; minor: number }[] = [
  { name: 'null', major: 1, minor: 3 },
  { name: 'zero', major: 1, minor: 5 },
  { name: 'full', major: 1, minor: 7 },
  { name: 'random', major: 1, minor: 8 },
  { name: 'urandom', major: 1, minor: 9 },
  { name: 'tty', major: 5, minor: 0 },
];

export const DEV_SYMLINKS: readonly PlannedSymlink[] = [
  // spec/OS-SPEC.md: /dev/ptmx bind-mounted from or symlinked to /dev/pts/ptmx (devpts newinstance).
  { path: 'ptmx', target: 'pts/ptmx' },
  { path: 'fd', target: '/proc/self/fd' },
  { path: 'stdin', target: '/proc/self/fd/0' },
  { path: 'stdout', target: '/proc/self/fd/1' },
  { path: 'stderr', target: '/proc/self/fd/2' },
];

/** rkt's default path protection (stage1/init/common/path.go), minus /sys/fs (cgroup-aware runtimes such as the JVM read it). */
export const PROTECT_READONLY = ['/proc/sys', '/proc/sysrq-trigger', '/proc/bus', '/proc/fs', '/proc/irq'];
export const PROTECT_MASK_FILES = ['/proc/kcore', '/proc/kmem', '/proc/mem', '/proc/kallsyms', '/proc/sched_debug', '/proc/config.gz', '/proc/keys', '/proc/timer_list', '/proc/latency_stats'];
export const PROTECT_MASK_DIRS = ['/proc/acpi', '/proc/scsi', '/sys/firmware', '/sys/hypervisor', '/sys/module', '/sys/power'];

function mountEntry(e: Omit<PlannedMount, 'flagNames'>): PlannedMount {
  return { ...e, flagNames: flagNames(e.flags) };
}

function parseMode(mode: string | undefined, where: string): number {
  const m = mode ?? '0755';
  if (!/^0?[0-7]{3,4}$/.test(m)) throw new PlanError(`${where}: mode ${JSON.stringify(m)} is not an octal file mode such as 0755`);
  const n = Number.parseInt(m, 8);
  if (n > 0o7777) throw new PlanError(`${where}: mode ${JSON.stringify(m)} is out of range`);
  return n;
}

function mergeEnv(env: Record<string, string>, list: readonly EnvironmentVariable[] | Record<string, string> | undefined): void {
  if (list === undefined) return;
  if (Array.isArray(list)) for (const { name, value } of list as EnvironmentVariable[]) env[name] = value;
  else for (const [k, v] of Object.entries(list)) env[k] = v;
}

function isExecutable(info: { kind: string; mode: number } | undefined): boolean {
  return info?.kind === 'file' && (info.mode & 0o111) !== 0;
}

function coveredByMount(p: string, mounts: readonly ResolvedMount[]): ResolvedMount | undefined {
  // The deepest mount wins: it is mounted last.
  return [...mounts].sort((a, b) => b.target.length - a.target.length).find((m) => isWithin(p, m.target));
}

/** execvp(3) rules: a name with no `/` is looked up in PATH inside the rootfs. */
function resolveExec(argv: readonly string[], env: Record<string, string>, cwd: string, tree: string, view: RootfsView, mounts: readonly ResolvedMount[], where: string, warnings: string[]): ExecSpec {
  const [first, ...rest] = argv;
  if (first === undefined || first === '') throw new PlanError(`${where}: exec is empty (the image has no exec and none was given with --exec)`);
  if (first.includes('/')) {
    const abs = first.startsWith('/') ? path.posix.normalize(first) : path.posix.join(cwd, first);
    if (coveredByMount(abs, mounts) !== undefined) return { path: abs, argv: [first, ...rest] };
    const { info } = resolveInRootfs(view, tree, abs);
    if (info === undefined) throw new PlanError(`${where}: executable ${abs} not found in the image`);
    if (!isExecutable(info)) throw new PlanError(`${where}: ${abs} is not an executable file in the image`);
    return { path: abs, argv: [first, ...rest] };
  }
  const searchPath = env.PATH ?? DEFAULT_PATH;
  for (const dir of searchPath.split(':')) {
    // execvp(3): an empty PATH element means the current directory; tspod resolves it against cwd.
    const base = dir === '' ? cwd : dir.startsWith('/') ? dir : path.posix.join(cwd, dir);
    const candidate = path.posix.join(base, first);
    if (coveredByMount(candidate, mounts) !== undefined) continue;
    if (isExecutable(resolveInRootfs(view, tree, candidate).info)) return { path: candidate, argv: [first, ...rest] };
  }
  const fromVolume = searchPath.split(':').map((d) => path.posix.join(d.startsWith('/') ? d : cwd, first)).find((c) => coveredByMount(c, mounts) !== undefined);
  if (fromVolume !== undefined) {
    warnings.push(`${where}: ${first} not found on PATH in the image; assuming ${fromVolume} comes from a volume`);
    return { path: fromVolume, argv: [first, ...rest] };
  }
  throw new PlanError(`${where}: executable ${JSON.stringify(first)} not found on PATH (${searchPath}) in the image`);
}

function checkHostSource(view: RootfsView, source: string, where: string): void {
  const parts = source.split('/').filter((p) => p !== '');
  for (let i = 1; i <= parts.length; i++) {
    const p = `/${parts.slice(0, i).join('/')}`;
    const info = view.lstat(p);
    // spec/ace.md: a missing source MUST fail; a symlinked source or ancestor SHOULD fail.
    if (info === undefined) throw new PlanError(`${where}: host volume source ${source} does not exist (${p} is missing); tspod does not create host paths`);
    if (info.kind === 'symlink') throw new PlanError(`${where}: host volume source ${source} goes through the symbolic link ${p}; give the real path`);
  }
}

interface AppPlanContext {
  input: PlanInput;
  podRoot: string;
  host: PlanHost;
  warnings: string[];
  isolators: IsolatorReport[];
  hosts: string;
  resolvConf: string | undefined;
  podCgroup: string;
  podLimits: ResourceLimits;
  emptyVolumes: Map<string, EmptyVolumePlan>;
}

function planApp(ctx: AppPlanContext, podApp: PodManifest['apps'][number], mounts: PlannedMount[]): AppPlan {
  const { input, warnings } = ctx;
  const name = podApp.name;
  const where = `app ${name}`;
  const appInput = Object.hasOwn(input.apps, name) ? input.apps[name] : undefined;
  if (appInput === undefined) throw new PlanError(`${where}: no rendered image given for it (apps/${name} is missing in the pod directory)`);
  const app: App | undefined = podApp.app ?? appInput.imageManifest.app;
  if (app === undefined) throw new PlanError(`${where}: image ${appInput.imageManifest.name} has no app section and the pod manifest gives none`);
  const tree = appInput.treeRootfs;
  const view = input.view;
  const rootfs = path.join(ctx.podRoot, name);
  const inRoot = (p: string): string => path.join(rootfs, p);
  const report = (iso: string, status: IsolatorReport['status']): void => {
    ctx.isolators.push({ scope: 'app', app: name, name: iso, status });
  };

  // --- isolators ---------------------------------------------------------------------------
  const isolators = app.isolators ?? [];
  for (const iso of isolators) {
    if (APP_HANDLED.has(iso.name)) continue;
    if (checkUnsupported(iso, where, ctx.host, warnings, report)) continue;
    throw new PlanError(`${where}: unknown isolator "${iso.name}"`);
  }

  // --- user ------------------------------------------------------------------------------------
  const user = resolveUser({
    app: name,
    user: app.user,
    group: app.group,
    supplementaryGIDs: app.supplementaryGIDs ?? (app as { supplementaryGids?: number[] }).supplementaryGids,
    passwd: readInRootfs(view, tree, '/etc/passwd'),
    groupFile: readInRootfs(view, tree, '/etc/group'),
    statOwner: (p) => {
      const { info } = resolveInRootfs(view, tree, p);
      return info === undefined ? undefined : { uid: info.uid, gid: info.gid };
    },
  });

  // --- volumes and mounts ----------------------------------------------------------------------
  const volumes = new Map((input.manifest.volumes ?? []).map((v) => [v.name, v]));
  const resolved: ResolvedMount[] = [];
  const mountPoints = app.mountPoints ?? [];
  const requested = [...(podApp.mounts ?? [])];
  for (const mp of mountPoints) {
    const cleanMp = cleanAbsolute(mp.path, `${where}: mountPoint ${mp.name}`);
    const satisfied = requested.some((m) => m.volume === mp.name || path.posix.normalize(m.path) === cleanMp);
    if (!satisfied) {
      // rkt: a mount point with no volume gets an implicit empty volume, with a warning.
      warnings.push(`${where}: mount point ${mp.name} (${mp.path}) has no volume; using an empty one`);
      const implicitName = `${name}-${mp.name}`;
      requested.push({ volume: implicitName, path: mp.path, appVolume: { name: implicitName, kind: 'empty', mode: '0755', uid: 0, gid: 0 } });
    }
  }
  for (const m of requested) {
    const volume = m.appVolume ?? volumes.get(m.volume);
    if (volume === undefined) throw new PlanError(`${where}: mount at ${m.path} names volume ${JSON.stringify(m.volume)}, which the pod does not define`);
    const target = cleanAbsolute(m.path, `${where}: mount of volume ${volume.name}`);
    if (target === '/') throw new PlanError(`${where}: volume ${volume.name} cannot be mounted over the app's root (/)`);
    const mp = mountPoints.find((p) => path.posix.normalize(p.path) === target);
    let source: string;
    if (volume.kind === 'host') {
      if (volume.source === undefined) throw new PlanError(`${where}: host volume ${volume.name} has no source`);
      source = cleanAbsolute(volume.source, `${where}: volume ${volume.name} source`);
      checkHostSource(view, source, `${where}: volume ${volume.name}`);
    } else {
      source = path.join(input.podDir, 'volumes', volume.name);
      if (!ctx.emptyVolumes.has(volume.name)) {
        ctx.emptyVolumes.set(volume.name, {
          name: volume.name,
          path: source,
          mode: parseMode(volume.mode, `volume ${volume.name}`),
          uid: volume.uid ?? 0,
          gid: volume.gid ?? 0,
        });
      }
    }
    resolved.push({ target, volume, readOnly: volume.readOnly === true || mp?.readOnly === true, source });
  }
  // spec/ace.md: overlapping mount targets SHOULD be an error. tspod counts a target inside
  // another target as overlapping too: the outer mount would hide or be hidden by the inner one.
  for (let i = 0; i < resolved.length; i++) {
    for (let j = i + 1; j < resolved.length; j++) {
      const a = resolved[i];
      const b = resolved[j];
      if (a === undefined || b === undefined) continue;
      if (isWithin(a.target, b.target) || isWithin(b.target, a.target)) {
        throw new PlanError(`${where}: mount targets overlap: ${a.target} (volume ${a.volume.name}) and ${b.target} (volume ${b.volume.name})`);
      }
    }
  }

  // --- environment -----------------------------------------------------------------------------
  // Precedence, lowest first: defaults < --inherit-env < the app's environment. The pod's
  // apps[].app replaces the image's app as a whole (spec/pods.md); stage0 already merged image,
  // --set-env-file, --set-env and --environment into it.
  const env: Record<string, string> = { PATH: DEFAULT_PATH, ...userEnvironment(user) };
  mergeEnv(env, input.runOptions.inheritedEnv);
  mergeEnv(env, (podApp.app ?? appInput.imageManifest.app)?.environment);
  // spec/ace.md: the ACE MUST set these; the app cannot override them.
  env.AC_APP_NAME = name;
  env.container = CONTAINER_NAME;
  if (input.runOptions.mdsRegister) {
    if (input.metadataUrl === undefined) throw new PlanError(`${where}: --mds-register needs the metadata service URL, and none was given to the planner`);
    env.AC_METADATA_URL = input.metadataUrl.replace(/\/+$/, '');
  }

  // --- working directory and exec --------------------------------------------------------------
  const cwd = cleanAbsolute(app.workingDirectory ?? '/', `${where}: workingDirectory`);
  const cover = coveredByMount(cwd, resolved);
  if (cover !== undefined) {
    const rel = path.posix.relative(cover.target, cwd);
    const ok = rel === '' || (cover.volume.kind === 'host' && resolveInRootfs(view, cover.source, `/${rel}`).info?.kind === 'dir');
    if (!ok) throw new PlanError(`${where}: working directory ${cwd} does not exist in volume ${cover.volume.name}`);
  } else if (resolveInRootfs(view, tree, cwd).info?.kind !== 'dir') {
    // spec/aci.md: "If the directory does not exist ... the ACE MUST fail".
    throw new PlanError(`${where}: working directory ${cwd} does not exist in the image`);
  }
  const exec = resolveExec(app.exec ?? [], env, cwd, tree, view, resolved, where, warnings);
  const eventHandlers: AppPlan['eventHandlers'] = {};
  for (const h of app.eventHandlers ?? []) {
    const spec = resolveExec(h.exec, env, cwd, tree, view, resolved, `${where}: ${h.name} handler`, warnings);
    if (h.name === 'pre-start') eventHandlers.preStart = spec;
    else if (h.name === 'post-stop') eventHandlers.postStop = spec;
  }

  // --- capabilities, seccomp, no_new_privs, oom ------------------------------------------------
  const caps = capabilitySets(isolators, { uid: user.uid, app: name });
  for (const iso of isolators) if (iso.name.startsWith('os/linux/capabilities-')) report(iso.name, 'enforced');
  const seccomp = seccompForApp(isolators, name);
  for (const iso of isolators) if (iso.name.startsWith('os/linux/seccomp-')) report(iso.name, 'enforced');
  let noNewPrivileges = false;
  for (const iso of isolators.filter((i) => i.name === 'os/linux/no-new-privileges')) {
    if (typeof iso.value !== 'boolean') throw new PlanError(`${where}: os/linux/no-new-privileges must be true or false, got ${JSON.stringify(iso.value)}`);
    noNewPrivileges ||= iso.value;
    report(iso.name, 'enforced');
  }
  if (user.uid !== 0 && seccomp.filter !== undefined && !noNewPrivileges) {
    // seccomp(2): an unprivileged caller must set no_new_privs first (else EACCES); rkt forced it too.
    noNewPrivileges = true;
  }
  let oomScoreAdj: number | undefined;
  for (const iso of isolators.filter((i) => i.name === 'os/linux/oom-score-adj')) {
    const v = iso.value;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < -1000 || v > 1000) throw new PlanError(`${where}: os/linux/oom-score-adj must be an integer -1000..1000, got ${JSON.stringify(v)}`);
    oomScoreAdj = v;
    report(iso.name, 'enforced');
  }
  const limits = resourceLimits(isolators, where, warnings, report);
  if (limits.memoryBytes !== undefined && ctx.podLimits.memoryBytes !== undefined && limits.memoryBytes > ctx.podLimits.memoryBytes) {
    warnings.push(`${where}: memory limit ${limits.memoryBytes} is above the pod's ${ctx.podLimits.memoryBytes}; the pod limit bounds it`);
  }

  // --- mounts, in order ------------------------------------------------------------------------
  const files: PlannedFile[] = [];
  if (readInRootfs(view, tree, '/etc/hosts') === undefined && coveredByMount('/etc/hosts', resolved) === undefined) {
    // spec/ace.md: the ACE MAY provide /etc/hosts, and SHOULD NOT modify the image's own.
    files.push({ path: inRoot(resolveInRootfs(view, tree, '/etc/hosts').path), content: ctx.hosts, mode: 0o644, why: 'the image has no /etc/hosts' });
  }
  if (ctx.resolvConf !== undefined && coveredByMount('/etc/resolv.conf', resolved) === undefined) {
    files.push({ path: inRoot(resolveInRootfs(view, tree, '/etc/resolv.conf').path), content: ctx.resolvConf, mode: 0o644, why: '--dns' });
  }
  const overlayDir = path.join(input.podDir, 'overlay', name);
  const useOverlay = ctx.host.overlaySupported !== false;
  mounts.push(
    mountEntry(
      useOverlay
        ? {
            kind: 'rootfs',
            app: name,
            source: 'overlay',
            target: rootfs,
            fstype: 'overlay',
            flags: 0,
            data: `lowerdir=${tree},upperdir=${overlayDir}/upper,workdir=${overlayDir}/work`,
            createTarget: 'dir',
            copyFallback: { from: tree, to: path.join(input.podDir, 'rootfs-copy', name) },
            files,
          }
        : {
            kind: 'rootfs',
            app: name,
            source: path.join(input.podDir, 'rootfs-copy', name),
            target: rootfs,
            fstype: null,
            flags: MS_BIND | MS_REC,
            data: null,
            createTarget: 'dir',
            copyFallback: { from: tree, to: path.join(input.podDir, 'rootfs-copy', name) },
            files,
          },
    ),
  );
  mounts.push(mountEntry({ kind: 'proc', app: name, source: 'proc', target: inRoot('/proc'), fstype: 'proc', flags: MS_NOSUID | MS_NODEV | MS_NOEXEC, data: null, createTarget: 'dir' }));
  mounts.push(mountEntry({ kind: 'sysfs', app: name, source: 'sysfs', target: inRoot('/sys'), fstype: 'sysfs', flags: MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, data: null, createTarget: 'dir' }));
  mounts.push(
    mountEntry({
      kind: 'dev',
      app: name,
      source: 'tmpfs',
      target: inRoot('/dev'),
      fstype: 'tmpfs',
      // Not MS_NODEV: the device nodes below must work. MS_NOEXEC would break nothing, but nspawn/runc leave it off too.
      flags: MS_NOSUID | MS_STRICTATIME,
      data: 'mode=755,size=65536k',
      createTarget: 'dir',
      mknod: DEV_NODES.map((d) => ({ path: inRoot(`/dev/${d.name}`), type: 'c', major: d.major, minor: d.minor, mode: 0o666, hostPath: `/dev/${d.name}` })),
      symlinks: DEV_SYMLINKS.map((s) => ({ path: inRoot(`/dev/${s.path}`), target: s.target })),
    }),
  );
  mounts.push(
    mountEntry({
      kind: 'devpts',
      app: name,
      source: 'devpts',
      target: inRoot('/dev/pts'),
      fstype: 'devpts',
      flags: MS_NOSUID | MS_NOEXEC,
      // devpts(5) / Documentation/filesystems/devpts.rst: newinstance gives the pod its own ptys; gid 5 = tty.
      data: 'newinstance,ptmxmode=0666,mode=0620,gid=5',
      createTarget: 'dir',
    }),
  );
  mounts.push(mountEntry({ kind: 'shm', app: name, source: 'shm', target: inRoot('/dev/shm'), fstype: 'tmpfs', flags: MS_NOSUID | MS_NODEV, data: 'mode=1777,size=65536k', createTarget: 'dir' }));
  mounts.push(mountEntry({ kind: 'mqueue', app: name, source: 'mqueue', target: inRoot('/dev/mqueue'), fstype: 'mqueue', flags: MS_NOSUID | MS_NODEV | MS_NOEXEC, data: null, createTarget: 'dir' }));
  mounts.push(
    mountEntry({
      // spec/OS-SPEC.md: /dev/console must exist. A node 5:1 would be the host's console: bind /dev/null, or the terminal.
      kind: 'console',
      app: name,
      source: '/dev/null',
      target: inRoot('/dev/console'),
      fstype: null,
      flags: MS_BIND,
      data: null,
      createTarget: 'file',
      ...(input.runOptions.interactive ? { sourceIsTerminal: true } : {}),
    }),
  );
  for (const p of PROTECT_READONLY) {
    // mount(2): MS_RDONLY is ignored on the first MS_BIND; a second MS_REMOUNT|MS_BIND call applies it.
    mounts.push(mountEntry({ kind: 'protect-bind', app: name, source: inRoot(p), target: inRoot(p), fstype: null, flags: MS_BIND | MS_REC, data: null, optional: true }));
    mounts.push(mountEntry({ kind: 'protect-readonly', app: name, source: null, target: inRoot(p), fstype: null, flags: MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, data: null, optional: true }));
  }
  for (const p of PROTECT_MASK_FILES) {
    mounts.push(mountEntry({ kind: 'protect-mask-file', app: name, source: '/dev/null', target: inRoot(p), fstype: null, flags: MS_BIND, data: null, optional: true }));
  }
  for (const p of PROTECT_MASK_DIRS) {
    mounts.push(mountEntry({ kind: 'protect-mask-dir', app: name, source: 'tmpfs', target: inRoot(p), fstype: 'tmpfs', flags: MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, data: 'size=0,mode=000', optional: true }));
  }
  // Shallow targets first, so a later mount never lands under (and gets hidden by) an earlier one.
  const ordered = [...resolved].sort((a, b) => a.target.split('/').length - b.target.split('/').length || a.target.localeCompare(b.target));
  for (const m of ordered) {
    // Mount at the real place in the tree: a target under an image symlink (/var/run -> /run) stays inside the rootfs.
    const target = inRoot(resolveInRootfs(view, tree, m.target).path);
    const recursive = m.volume.kind === 'host' && m.volume.recursive !== false;
    mounts.push(mountEntry({ kind: 'volume', app: name, source: m.source, target, fstype: null, flags: MS_BIND | (recursive ? MS_REC : 0), data: null, createTarget: 'dir' }));
    if (m.readOnly) {
      // mount(2): read-only needs a second MS_REMOUNT|MS_BIND call; it applies to the top mount only, not submounts of a recursive bind.
      mounts.push(mountEntry({ kind: 'volume-readonly', app: name, source: null, target, fstype: null, flags: MS_BIND | MS_REMOUNT | MS_RDONLY, data: null }));
    }
  }
  const readOnlyRootFS = podApp.readOnlyRootFS === true;
  if (readOnlyRootFS) {
    // Remounts only the rootfs mount: volumes, /proc, /dev, ... keep their own flags.
    mounts.push(mountEntry({ kind: 'readonly-rootfs', app: name, source: null, target: rootfs, fstype: null, flags: MS_BIND | MS_REMOUNT | MS_RDONLY, data: null }));
  }

  return {
    name,
    imageId: podApp.image.id,
    imageName: podApp.image.name ?? appInput.imageManifest.name,
    rootfs,
    treeRootfs: tree,
    exec,
    env,
    cwd,
    uid: user.uid,
    gid: user.gid,
    supplementaryGids: user.supplementaryGids,
    capabilities: { mode: caps.mode, ...capabilitySetsToJson(caps), boundingNames: capabilityNames(caps.bounding) },
    noNewPrivileges,
    seccomp:
      seccomp.filter === undefined
        ? null
        : {
            source: seccomp.source,
            mode: seccomp.mode,
            errno: seccomp.errno,
            programBase64: seccomp.filter.program.toString('base64'),
            instructions: seccomp.filter.instructions,
            defaultAction: `0x${seccomp.filter.defaultAction.toString(16)}`,
            matchAction: `0x${seccomp.filter.matchAction.toString(16)}`,
            syscallCount: seccomp.filter.syscalls.length,
          },
    readOnlyRootFS,
    eventHandlers,
    ...(oomScoreAdj === undefined ? {} : { oomScoreAdj }),
    cgroup: cgroupValues(`${ctx.podCgroup}/app-${name}`, limits),
  };
}

// ---------------------------------------------------------------------------------------------
// The plan
// ---------------------------------------------------------------------------------------------

export function planPod(input: PlanInput): PodPlan {
  const warnings: string[] = [];
  const isolators: IsolatorReport[] = [];
  const host = input.host ?? {};
  const { runOptions, manifest } = input;
  const podDir = cleanAbsolute(input.podDir, 'pod directory');
  input = { ...input, podDir };

  const names = manifest.apps.map((a) => a.name);
  const dup = names.find((n, i) => names.indexOf(n) !== i);
  if (dup !== undefined) throw new PlanError(`pod manifest: app name ${dup} is used twice`);
  if (manifest.apps.length === 0) throw new PlanError('pod manifest: the pod has no apps');
  if (runOptions.interactive && manifest.apps.length !== 1) throw new PlanError(`--interactive needs exactly one app, the pod has ${manifest.apps.length}`);

  const netNs = runOptions.net.kind !== 'host';
  const hostname = podHostname(input.uuid, runOptions.hostname);
  // Pod networks (issue 7) without --dns servers: the host's DNS (stage1/net-dns.ts).
  const podNetwork = runOptions.net.kind === 'default' || runOptions.net.kind === 'named';
  const resolv =
    podNetwork && (runOptions.dns === undefined || runOptions.dns.servers.length === 0)
      ? podNetworkResolvConf(host.resolvConf, warnings)
      : resolvConf(runOptions.dns, host.resolvConf, warnings);

  // Pod-level isolators: resources bound the whole pod's cgroup; sysctls go to the pod's namespaces.
  const podReport = (name: string, status: IsolatorReport['status']): void => {
    isolators.push({ scope: 'pod', name, status });
  };
  const podIsolators = manifest.isolators ?? [];
  const sysctls: PodPlan['sysctls'] = [];
  for (const iso of podIsolators) {
    if (iso.name === 'resource/memory' || iso.name === 'resource/cpu') continue;
    if (checkUnsupported(iso, 'pod', host, warnings, podReport)) continue;
    if (iso.name === 'os/unix/sysctl') {
      const v = iso.value;
      if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new PlanError('pod: os/unix/sysctl needs an object of "key": "value" strings');
      for (const [key, value] of Object.entries(v as Record<string, unknown>)) {
        if (typeof value !== 'string') throw new PlanError(`pod: os/unix/sysctl ${key} must be a string, got ${JSON.stringify(value)}`);
        // spec/ace.md: the ACE MUST ignore forbidden keys or refuse to run; tspod refuses.
        if (!sysctlAllowed(key, netNs)) {
          throw new PlanError(`pod: os/unix/sysctl key ${key} is not allowed (only net.* with a pod network namespace, kernel.shm*/msg*/sem and fs.mqueue.*)`);
        }
        sysctls.push({ key, path: `/proc/sys/${key.replace(/\./g, '/')}`, value });
      }
      podReport(iso.name, 'enforced');
      continue;
    }
    // spec/ace.md: unknown isolators MAY be ignored, and the ACE MUST say which.
    warnings.push(`pod: isolator "${iso.name}" is not understood by tspod at pod level and was ignored`);
    podReport(iso.name, 'ignored');
  }
  // os/linux/cpu-shares is app-scoped (reported as ignored above); only resource/* bound the pod.
  const podLimits = resourceLimits(podIsolators.filter((i) => i.name.startsWith('resource/')), 'pod', warnings, podReport);
  const delegated = host.delegatedCgroup?.replace(/^\/+|\/+$/g, '') || undefined;
  const podCgroup = `${delegated ?? 'tspod'}/pod-${input.uuid}`;

  const podRoot = path.join(podDir, STAGE1_FILES.rootDir);
  const mounts: PlannedMount[] = [
    // mount_namespaces(7): make every mount private first, so nothing the pod mounts reaches the host.
    mountEntry({ kind: 'propagation', source: null, target: '/', fstype: null, flags: MS_REC | MS_PRIVATE, data: null }),
    mountEntry({ kind: 'pod-root', source: 'tmpfs', target: podRoot, fstype: 'tmpfs', flags: MS_NOSUID | MS_NODEV, data: 'mode=755', createTarget: 'dir' }),
  ];
  const ctx: AppPlanContext = {
    input,
    podRoot,
    host,
    warnings,
    isolators,
    hosts: hostsFile(hostname),
    resolvConf: resolv,
    podCgroup,
    podLimits,
    emptyVolumes: new Map(),
  };
  const apps = manifest.apps.map((a) => planApp(ctx, a, mounts));

  const podCg = cgroupValues(podCgroup, podLimits);
  const anyCpu = apps.some((a) => a.cgroup.v1.cpu !== undefined) || podCg.v1.cpu !== undefined;
  const anyMemory = apps.some((a) => a.cgroup.v1.memory !== undefined) || podCg.v1.memory !== undefined;
  return {
    version: PLAN_VERSION,
    uuid: input.uuid,
    podDir,
    namespaces: namespacesFor(runOptions.net),
    net: { ...runOptions.net, newNamespace: netNs },
    hostname,
    hosts: hostsFile(hostname),
    ...(resolv === undefined ? {} : { resolvConf: resolv }),
    podRoot,
    emptyVolumes: [...ctx.emptyVolumes.values()],
    mounts,
    sysctls,
    cgroup: {
      ...podCg,
      ...(delegated === undefined ? {} : { delegated }),
      v2Controllers: [...(anyCpu ? ['cpu'] : []), ...(anyMemory ? ['memory'] : []), 'pids'],
    },
    apps,
    isolators,
    warnings,
  };
}
