// The positional argument grammar of `tspod run` and `tspod prepare`, after rkt's
// rkt/cli_apps.go: `[POD FLAGS] IMAGE [APP FLAGS] [-- ARGS... ---] [IMAGE [APP FLAGS] [-- ARGS]]...`.
// Owns the one flag table (RUN_FLAGS; the oclif commands build their help from it) and turns
// argv into RunArgs, checking every flag value. Pure: no store, no files.
//
// Grammar rules (rkt, with tspod's deliberate differences marked):
// - Per-app flags bind to the PRECEDING image; before any image they are an error, except the
//   `both`-scoped ones (`--mount`, `--annotation`, `--user-annotation`, `--user-label`,
//   `--set-env`), which apply to the pod (or all apps) there.
// - `--` starts the preceding image's arguments (appended to its exec), `---` ends them.
// - `--flag=value` and `--flag value`; boolean flags take only `--flag` or `--flag=bool`.
// - tspod: pod-only flags are also accepted after an image (rkt rejects them as unknown there);
//   their meaning is unambiguous.
// - tspod: a non-repeatable flag given twice for the same target is an error (pflag keeps the last).

import { isAbsolute } from 'node:path';

import { isACName, type Annotation, type EnvironmentVariable, type ExposedPort, type Volume } from '../appc/index.js';
import { parseDuration } from '../cli/duration.js';
import { UsageError } from '../errors.js';
import type { NetMode } from '../../stage1/contract.js';
import {
  parseAnnotationPair,
  parseBool,
  parseCapabilities,
  parseDnsFlag,
  parseEnvPair,
  parseHostname,
  parseInteger,
  parseMountFlag,
  parseNetFlag,
  parsePortFlag,
  parseQuantityFlag,
  parseSeccompFlag,
  parseUserPair,
  parseVolumeFlag,
  type MountFlag,
  type SeccompFlag,
} from './run-args-values.js';
import { PULL_POLICIES, type PullPolicy } from '../fetch/resolve.js';
import { PLATFORM_FLAG_HELP, platformFromFlags, type PlatformFlags, type PlatformWanted } from '../oci/platform.js';

export type { MountFlag, SeccompFlag } from './run-args-values.js';

export { PULL_POLICIES, type PullPolicy } from '../fetch/resolve.js';

/** `pod`: before or after the images, for the pod; `app`: after an image, for it; `both`: pod-wide before any image, per app after one. */
export type RunFlagScope = 'pod' | 'app' | 'both';

export interface RunFlagSpec {
  readonly name: string;
  readonly scope: RunFlagScope;
  /** `true`: `--flag=value` or `--flag value`; `false`: a boolean, `--flag` or `--flag=true|false`. */
  readonly takesValue: boolean;
  readonly repeatable: boolean;
  readonly description: string;
  /** Parsed by tspod's global flags; seen here only to be passed through. */
  readonly global?: boolean;
}

/** Every flag of `tspod run` / `tspod prepare`; the one enumeration the parser and the help derive from. */
export const RUN_FLAGS = [
  // per-app
  { name: 'exec', scope: 'app', takesValue: true, repeatable: false, description: "replace the image's exec (arguments follow --)" },
  { name: 'name', scope: 'app', takesValue: true, repeatable: false, description: 'app name (default: derived from the image name)' },
  { name: 'user', scope: 'app', takesValue: true, repeatable: false, description: 'user to run the app as (name or uid)' },
  { name: 'group', scope: 'app', takesValue: true, repeatable: false, description: 'group to run the app as (name or gid)' },
  { name: 'supplementary-gids', scope: 'app', takesValue: true, repeatable: false, description: 'supplementary group ids, comma-separated (1,2)' },
  { name: 'working-dir', scope: 'app', takesValue: true, repeatable: false, description: "app's working directory (absolute)" },
  { name: 'environment', scope: 'app', takesValue: true, repeatable: true, description: "app environment NAME=VALUE (highest precedence)" },
  { name: 'readonly-rootfs', scope: 'app', takesValue: false, repeatable: false, description: "mount the app's root filesystem read-only" },
  { name: 'caps-retain', scope: 'app', takesValue: true, repeatable: false, description: 'capabilities to keep, comma-separated (CAP_NET_ADMIN,...)' },
  { name: 'caps-remove', scope: 'app', takesValue: true, repeatable: false, description: 'capabilities to drop from the default set, comma-separated' },
  { name: 'seccomp', scope: 'app', takesValue: true, repeatable: false, description: 'seccomp filter: mode=retain|remove[,errno=EPERM],syscall,@group...' },
  { name: 'memory', scope: 'app', takesValue: true, repeatable: false, description: 'memory limit (128M, 1Gi)' },
  { name: 'cpu', scope: 'app', takesValue: true, repeatable: false, description: 'cpu limit in cores (500m, 2)' },
  { name: 'cpu-shares', scope: 'app', takesValue: true, repeatable: false, description: 'relative cpu weight (2..262144)' },
  { name: 'oom-score-adj', scope: 'app', takesValue: true, repeatable: false, description: 'oom score adjustment (-1000..1000)' },
  // pod-wide before the first image, per app after one
  { name: 'mount', scope: 'both', takesValue: true, repeatable: true, description: 'mount a volume: volume=NAME,target=/path (before the images: every app)' },
  { name: 'set-env', scope: 'both', takesValue: true, repeatable: true, description: 'environment NAME=VALUE (before the images: every app)' },
  { name: 'annotation', scope: 'both', takesValue: true, repeatable: true, description: 'annotation NAME=VALUE (before the images: the pod)' },
  { name: 'user-annotation', scope: 'both', takesValue: true, repeatable: true, description: 'user annotation NAME=VALUE (before the images: the pod)' },
  { name: 'user-label', scope: 'both', takesValue: true, repeatable: true, description: 'user label NAME=VALUE (before the images: the pod)' },
  // pod
  { name: 'volume', scope: 'pod', takesValue: true, repeatable: true, description: 'volume NAME,kind=host|empty,source=PATH,readOnly=,recursive=,mode=,uid=,gid=' },
  { name: 'port', scope: 'pod', takesValue: true, repeatable: true, description: "expose an app port: NAME:HOSTPORT[:HOSTIP]" },
  { name: 'net', scope: 'pod', takesValue: true, repeatable: false, description: 'networks: host, none, default or NAME[:ARGS][,NAME[:ARGS]] (ARGS: KEY=VALUE;... passed as CNI_ARGS; default: default)' },
  { name: 'dns', scope: 'pod', takesValue: true, repeatable: true, description: 'name server IP, or host, or none' },
  { name: 'dns-search', scope: 'pod', takesValue: true, repeatable: true, description: 'DNS search domain' },
  { name: 'dns-opt', scope: 'pod', takesValue: true, repeatable: true, description: 'DNS resolver option' },
  { name: 'dns-domain', scope: 'pod', takesValue: true, repeatable: false, description: 'DNS local domain' },
  { name: 'hostname', scope: 'pod', takesValue: true, repeatable: false, description: "pod's host name (default: tspod-UUID)" },
  { name: 'uuid-file-save', scope: 'pod', takesValue: true, repeatable: false, description: "write the pod's UUID to this file" },
  { name: 'label', scope: 'pod', takesValue: true, repeatable: true, description: 'pod user label NAME=VALUE' },
  { name: 'set-env-file', scope: 'pod', takesValue: true, repeatable: false, description: 'file of NAME=VALUE lines for every app (# comments)' },
  { name: 'inherit-env', scope: 'pod', takesValue: false, repeatable: false, description: "pass tspod's environment to the apps (lowest precedence)" },
  { name: 'mds-register', scope: 'pod', takesValue: false, repeatable: false, description: 'register the pod with the metadata service' },
  { name: 'interactive', scope: 'pod', takesValue: false, repeatable: false, description: 'give the terminal to the app (one image only)' },
  { name: 'stop-timeout', scope: 'pod', takesValue: true, repeatable: false, description: 'time between SIGTERM and SIGKILL on stop (default 10s)' },
  { name: 'pod-manifest', scope: 'pod', takesValue: true, repeatable: false, description: 'run this pod manifest file instead of images' },
  { name: 'pull-policy', scope: 'pod', takesValue: true, repeatable: false, description: 'never, new or update (default: new)' },
  { name: 'os', scope: 'pod', takesValue: true, repeatable: false, description: PLATFORM_FLAG_HELP.os },
  { name: 'arch', scope: 'pod', takesValue: true, repeatable: false, description: PLATFORM_FLAG_HELP.arch },
  { name: 'variant', scope: 'pod', takesValue: true, repeatable: false, description: PLATFORM_FLAG_HELP.variant },
  { name: 'insecure-options', scope: 'pod', takesValue: true, repeatable: true, description: 'global flag, see tspod --help', global: true },
] as const satisfies readonly RunFlagSpec[];

export type RunFlagName = (typeof RUN_FLAGS)[number]['name'];

const FLAG_BY_NAME: ReadonlyMap<string, RunFlagSpec & { name: RunFlagName }> = new Map(RUN_FLAGS.map((f) => [f.name, f]));

/** Flags that change the generated manifest and so cannot be combined with `--pod-manifest`. */
const MANIFEST_FLAGS: readonly RunFlagName[] = ['volume', 'mount', 'port', 'set-env', 'set-env-file', 'annotation', 'user-annotation', 'user-label', 'label'];

export interface PodFlags {
  volumes: Volume[];
  /** `--mount` before any image: applies to every app. */
  mounts: MountFlag[];
  ports: ExposedPort[];
  net: NetMode;
  dns: string[];
  dnsSearch: string[];
  dnsOpt: string[];
  dnsDomain?: string;
  hostname?: string;
  uuidFileSave?: string;
  annotations: Annotation[];
  userLabels: Record<string, string>;
  userAnnotations: Record<string, string>;
  /** `--set-env` before any image: every app. */
  setEnv: EnvironmentVariable[];
  setEnvFile?: string;
  inheritEnv: boolean;
  mdsRegister: boolean;
  interactive: boolean;
  stopTimeoutMs: number;
  podManifest?: string;
  pullPolicy: PullPolicy;
  /** `--os/--arch/--variant` as given; `platform` is what they ask for (undefined: this machine). */
  platformFlags: PlatformFlags;
  platform?: PlatformWanted;
  /** Global flags seen among the run arguments, as given (`--insecure-options=image`). */
  passthrough: string[];
}

export interface AppArgs {
  /** The image reference as given (path, name[:version][,label=...], id). */
  image: string;
  exec?: string;
  /** Arguments after `--`, appended to the exec. */
  args: string[];
  name?: string;
  user?: string;
  group?: string;
  supplementaryGIDs?: number[];
  workingDir?: string;
  setEnv: EnvironmentVariable[];
  environment: EnvironmentVariable[];
  mounts: MountFlag[];
  readOnlyRootFS?: boolean;
  capsRetain?: string[];
  capsRemove?: string[];
  seccomp?: SeccompFlag;
  memory?: string;
  cpu?: string;
  cpuShares?: number;
  oomScoreAdj?: number;
  annotations: Annotation[];
  userAnnotations: Record<string, string>;
  userLabels: Record<string, string>;
}

export interface RunArgs {
  pod: PodFlags;
  apps: AppArgs[];
}

export const DEFAULT_STOP_TIMEOUT_MS = 10_000;

function defaultPodFlags(): PodFlags {
  return {
    volumes: [],
    mounts: [],
    ports: [],
    net: { kind: 'default' },
    dns: [],
    dnsSearch: [],
    dnsOpt: [],
    annotations: [],
    userLabels: {},
    userAnnotations: {},
    setEnv: [],
    inheritEnv: false,
    mdsRegister: false,
    interactive: false,
    stopTimeoutMs: DEFAULT_STOP_TIMEOUT_MS,
    pullPolicy: 'new',
    platformFlags: {},
    passthrough: [],
  };
}

function newApp(image: string): AppArgs {
  return { image, args: [], setEnv: [], environment: [], mounts: [], annotations: [], userAnnotations: {}, userLabels: {} };
}

/** The flag names closest to an unknown one, for the error's suggestion. */
function similarFlags(name: string): string[] {
  return RUN_FLAGS.map((f) => f.name).filter((n) => n.startsWith(name.slice(0, 3)) || n.includes(name) || name.includes(n));
}

function addAnnotation(list: Annotation[], flag: string, value: string): void {
  const a = parseAnnotationPair(flag, value);
  const i = list.findIndex((x) => x.name === a.name);
  if (i >= 0) list[i] = a;
  else list.push(a);
}

function applyPodFlag(pod: PodFlags, name: RunFlagName, value: string, raw: string): void {
  switch (name) {
    case 'mount':
      pod.mounts.push(parseMountFlag(value));
      return;
    case 'set-env':
      pod.setEnv.push(parseEnvPair(name, value));
      return;
    case 'annotation':
      addAnnotation(pod.annotations, name, value);
      return;
    case 'user-annotation': {
      const [k, v] = parseUserPair(name, value);
      pod.userAnnotations[k] = v;
      return;
    }
    case 'user-label':
    case 'label': {
      const [k, v] = parseUserPair(name, value);
      pod.userLabels[k] = v;
      return;
    }
    case 'volume': {
      const v = parseVolumeFlag(value);
      if (pod.volumes.some((x) => x.name === v.name)) throw new UsageError(`--volume ${v.name}: a volume with that name is already defined`);
      pod.volumes.push(v);
      return;
    }
    case 'port': {
      const p = parsePortFlag(value);
      if (pod.ports.some((x) => x.name === p.name)) throw new UsageError(`--port ${value}: port "${p.name}" is already exposed`);
      pod.ports.push(p);
      return;
    }
    case 'net':
      pod.net = parseNetFlag(value);
      return;
    case 'dns':
      pod.dns.push(...parseDnsFlag(value));
      if (pod.dns.length > 1 && (pod.dns.includes('host') || pod.dns.includes('none'))) {
        throw new UsageError('--dns: "host" and "none" cannot be combined with other --dns values');
      }
      return;
    case 'dns-search':
      pod.dnsSearch.push(...value.split(',').filter((s) => s !== ''));
      return;
    case 'dns-opt':
      pod.dnsOpt.push(...value.split(',').filter((s) => s !== ''));
      return;
    case 'dns-domain':
      pod.dnsDomain = value;
      return;
    case 'hostname':
      pod.hostname = parseHostname(value);
      return;
    case 'uuid-file-save':
      pod.uuidFileSave = nonEmpty(name, value);
      return;
    case 'set-env-file':
      pod.setEnvFile = nonEmpty(name, value);
      return;
    case 'inherit-env':
      pod.inheritEnv = parseBool(name, value);
      return;
    case 'mds-register':
      pod.mdsRegister = parseBool(name, value);
      return;
    case 'interactive':
      pod.interactive = parseBool(name, value);
      return;
    case 'stop-timeout':
      pod.stopTimeoutMs = parseDuration(value, name);
      return;
    case 'pod-manifest':
      pod.podManifest = nonEmpty(name, value);
      return;
    case 'pull-policy':
      if (!(PULL_POLICIES as readonly string[]).includes(value)) {
        throw new UsageError(`--pull-policy ${JSON.stringify(value)}: must be one of ${PULL_POLICIES.join(', ')}`);
      }
      pod.pullPolicy = value as PullPolicy;
      return;
    case 'os':
    case 'arch':
    case 'variant':
      pod.platformFlags[name] = value;
      return;
    case 'insecure-options':
      pod.passthrough.push(raw);
      return;
    default:
      throw new UsageError(`--${name} applies to one app: put it after the image it is for`, {
        suggestions: [`tspod run IMAGE --${name}${value === 'true' ? '' : `=${value}`}`],
      });
  }
}

function applyAppFlag(app: AppArgs, name: RunFlagName, value: string): void {
  switch (name) {
    case 'exec':
      // appc exec[0]: absolute, or a bare command searched in PATH; `bin/app` depends on the cwd
      if (!isAbsolute(nonEmpty(name, value)) && value.includes('/')) {
        throw new UsageError(`--exec ${JSON.stringify(value)}: must be an absolute path or a command name without "/"`);
      }
      app.exec = value;
      return;
    case 'name':
      if (!isACName(value)) throw new UsageError(`--name ${JSON.stringify(value)}: must be an ac name (lowercase letters, digits and "-")`);
      app.name = value;
      return;
    case 'user':
      app.user = nonEmpty(name, value);
      return;
    case 'group':
      app.group = nonEmpty(name, value);
      return;
    case 'supplementary-gids':
      app.supplementaryGIDs = value.split(',').map((g) => parseInteger(name, g.trim(), 0, 4294967294));
      return;
    case 'working-dir':
      if (!isAbsolute(value)) throw new UsageError(`--working-dir ${JSON.stringify(value)}: must be an absolute path`);
      app.workingDir = value;
      return;
    case 'set-env':
      app.setEnv.push(parseEnvPair(name, value));
      return;
    case 'environment':
      app.environment.push(parseEnvPair(name, value));
      return;
    case 'mount':
      app.mounts.push(parseMountFlag(value));
      return;
    case 'readonly-rootfs':
      app.readOnlyRootFS = parseBool(name, value);
      return;
    case 'caps-retain':
    case 'caps-remove':
      // spec/ace.md: the retain-set and the remove-set are mutually exclusive
      if ((name === 'caps-retain' ? app.capsRemove : app.capsRetain) !== undefined) {
        throw new UsageError(`--${name}: --caps-retain and --caps-remove cannot both be given for image ${app.image}`);
      }
      if (name === 'caps-retain') app.capsRetain = parseCapabilities(name, value);
      else app.capsRemove = parseCapabilities(name, value);
      return;
    case 'seccomp':
      app.seccomp = parseSeccompFlag(value);
      return;
    case 'memory':
      app.memory = parseQuantityFlag(name, value);
      return;
    case 'cpu':
      app.cpu = parseQuantityFlag(name, value);
      return;
    case 'cpu-shares':
      app.cpuShares = parseInteger(name, value, 2, 262144);
      return;
    case 'oom-score-adj':
      app.oomScoreAdj = parseInteger(name, value, -1000, 1000);
      return;
    case 'annotation':
      addAnnotation(app.annotations, name, value);
      return;
    case 'user-annotation': {
      const [k, v] = parseUserPair(name, value);
      app.userAnnotations[k] = v;
      return;
    }
    case 'user-label': {
      const [k, v] = parseUserPair(name, value);
      app.userLabels[k] = v;
      return;
    }
    default:
      throw new Error(`--${name} is not a per-app flag`);
  }
}

function nonEmpty(name: string, value: string): string {
  if (value === '') throw new UsageError(`--${name}: the value is empty`);
  return value;
}

/**
 * Parses the arguments of `tspod run` / `tspod prepare` (everything after the command id, global
 * flags included or not). Throws UsageError naming the offending flag or argument.
 */
export function parseRunArgs(argv: readonly string[]): RunArgs {
  const pod = defaultPodFlags();
  const apps: AppArgs[] = [];
  let current: AppArgs | undefined;
  const seenPod = new Set<string>();
  const seenApp = new Map<AppArgs, Set<string>>();

  for (let i = 0; i < argv.length; i += 1) {
    const tok = argv[i]!;
    if (tok === '--') {
      if (current === undefined) throw new UsageError('"--" must follow an image: tspod run IMAGE -- ARGS... ---');
      // rkt/cli_apps.go: `--` starts the app's arguments, `---` (or the end) ends them
      for (i += 1; i < argv.length && argv[i] !== '---'; i += 1) current.args.push(argv[i]!);
      continue;
    }
    if (tok === '---') throw new UsageError('"---" ends the arguments that "--" starts, but no "--" came before it');
    if (!tok.startsWith('-') || tok === '-') {
      current = newApp(tok);
      apps.push(current);
      seenApp.set(current, new Set());
      continue;
    }
    if (!tok.startsWith('--')) throw new UsageError(`unknown flag ${tok} (tspod run takes only --long flags)`);
    const eq = tok.indexOf('=');
    const flagName = eq >= 0 ? tok.slice(2, eq) : tok.slice(2);
    const spec = FLAG_BY_NAME.get(flagName);
    if (spec === undefined) {
      const similar = similarFlags(flagName);
      throw new UsageError(`unknown flag --${flagName}${current === undefined ? '' : ` (after image ${current.image})`}`, {
        suggestions: similar.length > 0 ? similar.map((n) => `--${n}`) : ['tspod run --help'],
      });
    }
    let value: string;
    let raw = tok;
    if (eq >= 0) {
      value = tok.slice(eq + 1);
    } else if (!spec.takesValue) {
      value = 'true';
    } else {
      if (i + 1 >= argv.length) throw new UsageError(`--${flagName} needs a value (--${flagName}=VALUE or --${flagName} VALUE)`);
      i += 1;
      value = argv[i]!;
      raw = `${tok}=${value}`;
    }
    const forApp = current !== undefined && spec.scope !== 'pod';
    if (spec.scope === 'app' && current === undefined) {
      throw new UsageError(`--${flagName} must follow the image it applies to (per-app flags bind to the preceding image)`, {
        suggestions: [`tspod run IMAGE --${flagName}${spec.takesValue ? '=...' : ''}`],
      });
    }
    const seen = forApp ? seenApp.get(current!)! : seenPod;
    if (!spec.repeatable && seen.has(flagName)) {
      throw new UsageError(`--${flagName} given twice${forApp ? ` for image ${current!.image}` : ''}`);
    }
    seen.add(flagName);
    if (forApp) applyAppFlag(current!, spec.name, value);
    else applyPodFlag(pod, spec.name, value, raw);
  }

  const platform = platformFromFlags(pod.platformFlags);
  if (platform !== undefined) pod.platform = platform;
  if (pod.podManifest !== undefined) {
    if (apps.length > 0) throw new UsageError(`--pod-manifest cannot be combined with images (${apps.map((a) => a.image).join(', ')})`);
    const clash = MANIFEST_FLAGS.filter((f) => seenPod.has(f));
    if (clash.length > 0) {
      throw new UsageError(`--pod-manifest cannot be combined with ${clash.map((f) => `--${f}`).join(', ')}: the manifest is used as it is`);
    }
  } else if (apps.length === 0) {
    throw new UsageError('no image given', { suggestions: ['tspod run IMAGE [APP FLAGS] [-- ARGS ---] [IMAGE ...]', 'tspod run --pod-manifest FILE'] });
  }
  if (pod.interactive && apps.length > 1) {
    throw new UsageError(`--interactive works with one image only, got ${apps.length}`);
  }
  if (pod.ports.length > 0 && (pod.net.kind === 'host' || pod.net.kind === 'none')) {
    throw new UsageError(`--port cannot be used with --net=${pod.net.kind}`, {
      suggestions: pod.net.kind === 'host' ? ['with --net=host the app ports are already the host ports; drop --port'] : [],
    });
  }
  return { pod, apps };
}
