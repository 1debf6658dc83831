// Pod manifest generation (the prepare step of stage0, rkt's stage0/run.go generatePodManifest):
// parsed `tspod run` arguments + resolved images -> a reified, validated appc pod manifest and
// the stage1 run options. Or, with `--pod-manifest`, the user's manifest checked and used as is.
// Collaborators (image resolution, file reading, the environment) come in through `deps`.
//
// Decisions (each following rkt unless said otherwise):
// - `--exec` replaces the image's exec as a whole; `-- ARGS` are appended (rkt).
// - An image without an app runs only with `--exec`; its app is then `user 0, group 0` unless
//   `--user`/`--group` say otherwise (rkt uses the invoking uid/gid; tspod runs pods as root).
// - Environment, low to high: image < --set-env-file < pod --set-env < app --set-env < --environment;
//   `--inherit-env` goes to RunOptions.inheritedEnv, below all of them (stage1 applies it).
// - tspod reifies every mount point into an explicit `mounts` entry, so stage1 never has to
//   look volumes up by mount-point name.

import { readFileSync } from 'node:fs';

import {
  APPC_VERSION,
  parsePodManifest,
  sanitizeACName,
  validatePodManifest,
  type App,
  type EnvironmentVariable,
  type ExposedPort,
  type ImageManifest,
  type Isolator,
  type Mount,
  type PodManifest,
  type RuntimeApp,
  type Volume,
} from '../appc/index.js';
import { NotFoundError, UsageError, ValidationError } from '../errors.js';
import { STAGE1_INTERFACE_VERSION, type RunOptions } from '../../stage1/contract.js';
import { ENV_NAME_PATTERN } from './run-args-values.js';
import type { AppArgs, PodFlags, PullPolicy, RunArgs } from './run-args.js';

export interface ResolvedImage {
  id: string;
  manifest: ImageManifest;
}

export interface BuildPodManifestDeps {
  /** Image reference (or image id) -> the stored image, fetched per the pull policy if needed. */
  resolveImage: (ref: string) => Promise<ResolvedImage>;
  /** Reads `--set-env-file` (default: fs.readFileSync utf8). */
  readEnvFile?: (path: string) => string;
  /** Reads `--pod-manifest` (default: fs.readFileSync). */
  readFile?: (path: string) => string | Uint8Array;
  /** The environment `--inherit-env` passes on (default: process.env). */
  env?: NodeJS.ProcessEnv;
  warn: (message: string) => void;
}

/** One app of the pod with the image it runs, for writing `apps/<name>/image-manifest`. */
export interface PodAppImage {
  name: string;
  image: ResolvedImage;
}

export interface BuiltPod {
  manifest: PodManifest;
  runOptions: RunOptions;
  apps: PodAppImage[];
  uuidFileSave?: string;
  pullPolicy: PullPolicy;
}

const ISO_CAPS_RETAIN = 'os/linux/capabilities-retain-set';
const ISO_CAPS_REMOVE = 'os/linux/capabilities-remove-set';
const ISO_SECCOMP_RETAIN = 'os/linux/seccomp-retain-set';
const ISO_SECCOMP_REMOVE = 'os/linux/seccomp-remove-set';

/** Builds the pod manifest and run options of `tspod run` / `tspod prepare`. */
export async function buildPodManifest(args: RunArgs, deps: BuildPodManifestDeps): Promise<BuiltPod> {
  const { pod } = args;
  const { manifest, apps } =
    pod.podManifest !== undefined ? await loadPodManifest(pod.podManifest, deps) : await generatePodManifest(args, deps);
  const result: BuiltPod = { manifest, apps, runOptions: runOptionsOf(pod, deps), pullPolicy: pod.pullPolicy };
  if (pod.uuidFileSave !== undefined) result.uuidFileSave = pod.uuidFileSave;
  return result;
}

interface ManifestAndApps {
  manifest: PodManifest;
  apps: PodAppImage[];
}

// ---------------------------------------------------------------------------------------------
// --pod-manifest

async function loadPodManifest(path: string, deps: BuildPodManifestDeps): Promise<ManifestAndApps> {
  let bytes: string | Uint8Array;
  try {
    bytes = (deps.readFile ?? ((p: string) => readFileSync(p)))(path);
  } catch (err) {
    throw new NotFoundError(`read pod manifest ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, { cause: err });
  }
  const manifest = parsePodManifest(bytes, `pod manifest ${path}`);
  const apps: PodAppImage[] = [];
  for (const ra of manifest.apps) {
    // rkt validatePodManifest: every image must be in the store, every app must have an app section
    let image: ResolvedImage;
    try {
      image = await deps.resolveImage(ra.image.id);
    } catch (err) {
      throw new NotFoundError(`pod manifest ${path}: app "${ra.name}": image ${ra.image.id} is not in the store`, {
        cause: err,
        suggestions: ['fetch the image first: tspod fetch IMAGE'],
      });
    }
    if (ra.app === undefined && image.manifest.app === undefined) {
      throw new ValidationError(`pod manifest ${path}`, [`/apps/${apps.length}: app "${ra.name}" has no app section, nor has its image ${image.manifest.name}`]);
    }
    apps.push({ name: ra.name, image });
  }
  return { manifest, apps };
}

// ---------------------------------------------------------------------------------------------
// Generation from images and flags

async function generatePodManifest(args: RunArgs, deps: BuildPodManifestDeps): Promise<ManifestAndApps> {
  const { pod } = args;
  const fileEnv = pod.setEnvFile === undefined ? [] : readEnvFile(pod.setEnvFile, deps);
  const podEnv = mergeEnv(fileEnv, pod.setEnv);
  const volumes: Volume[] = pod.volumes.map((v) => ({ ...v }));
  const volumeNames = (): string => (volumes.length === 0 ? 'none defined' : `defined: ${volumes.map((v) => v.name).join(', ')}`);
  for (const m of pod.mounts) {
    if (!volumes.some((v) => v.name === m.volume)) {
      throw new UsageError(`--mount volume=${m.volume}: no --volume named "${m.volume}" (${volumeNames()})`, {
        suggestions: [`--volume ${m.volume},kind=empty or --volume ${m.volume},kind=host,source=/path`],
      });
    }
  }

  const runtimeApps: RuntimeApp[] = [];
  const images: PodAppImage[] = [];
  for (const a of args.apps) {
    const image = await deps.resolveImage(a.image);
    const name = a.name ?? appNameOf(a.image, image.manifest);
    const clash = images.find((x) => x.name === name);
    if (clash !== undefined) {
      throw new UsageError(`two apps are named "${name}" (images ${clash.image.manifest.name} and ${image.manifest.name})`, {
        suggestions: [`give one of them a name: ${a.image} --name ${name}-2`],
      });
    }
    for (const m of a.mounts) {
      if (!volumes.some((v) => v.name === m.volume)) {
        throw new UsageError(`--mount volume=${m.volume} (image ${a.image}): no --volume named "${m.volume}" (${volumeNames()})`, {
          suggestions: [`--volume ${m.volume},kind=empty or --volume ${m.volume},kind=host,source=/path`],
        });
      }
    }
    const app = appOf(a, image.manifest, podEnv);
    const ra: RuntimeApp = {
      name,
      image: { id: image.id, name: image.manifest.name, ...(image.manifest.labels === undefined ? {} : { labels: image.manifest.labels }) },
      app,
    };
    if (a.readOnlyRootFS !== undefined) ra.readOnlyRootFS = a.readOnlyRootFS;
    const mounts = mountsOf(name, app, a, pod, volumes, deps.warn);
    if (mounts.length > 0) ra.mounts = mounts;
    if (a.annotations.length > 0) ra.annotations = a.annotations.map((x) => ({ ...x }));
    runtimeApps.push(ra);
    images.push({ name, image });
  }

  const manifest: PodManifest = { acKind: 'PodManifest', acVersion: APPC_VERSION, apps: runtimeApps };
  if (volumes.length > 0) manifest.volumes = volumes;
  if (pod.ports.length > 0) manifest.ports = portsOf(pod.ports, runtimeApps);
  if (pod.annotations.length > 0) manifest.annotations = pod.annotations.map((x) => ({ ...x }));
  if (Object.keys(pod.userAnnotations).length > 0) manifest.userAnnotations = { ...pod.userAnnotations };
  if (Object.keys(pod.userLabels).length > 0) manifest.userLabels = { ...pod.userLabels };
  return { manifest: validatePodManifest(manifest, 'generated pod manifest'), apps: images };
}

/** rkt imageNameToAppName: the sanitized last path component of the image name. */
function appNameOf(ref: string, manifest: ImageManifest): string {
  try {
    return sanitizeACName(manifest.name);
  } catch (err) {
    throw new UsageError(`image ${ref}: cannot derive an app name from "${manifest.name}"`, {
      cause: err,
      suggestions: [`${ref} --name NAME`],
    });
  }
}

function appOf(a: AppArgs, image: ImageManifest, podEnv: EnvironmentVariable[]): App {
  if (image.app === undefined && a.exec === undefined) {
    throw new UsageError(`image ${image.name} has no app; give --exec`, { suggestions: [`${a.image} --exec /bin/sh`] });
  }
  const app: App = image.app === undefined ? { user: '0', group: '0' } : structuredClone(image.app);
  if (a.exec !== undefined) app.exec = [a.exec];
  if (a.args.length > 0) app.exec = [...(app.exec ?? []), ...a.args];
  if (app.exec === undefined || app.exec.length === 0) {
    throw new UsageError(`image ${image.name} has no exec; give --exec`, { suggestions: [`${a.image} --exec /bin/sh`] });
  }
  if (a.user !== undefined) app.user = a.user;
  if (a.group !== undefined) app.group = a.group;
  if (a.supplementaryGIDs !== undefined) app.supplementaryGIDs = a.supplementaryGIDs;
  if (a.workingDir !== undefined) app.workingDirectory = a.workingDir;
  const environment = mergeEnv(app.environment ?? [], podEnv, a.setEnv, a.environment);
  if (environment.length > 0) app.environment = environment;
  const isolators = isolatorsOf(a, app.isolators ?? []);
  if (isolators.length > 0) app.isolators = isolators;
  else delete app.isolators;
  if (Object.keys(a.userAnnotations).length > 0) app.userAnnotations = { ...app.userAnnotations, ...a.userAnnotations };
  if (Object.keys(a.userLabels).length > 0) app.userLabels = { ...app.userLabels, ...a.userLabels };
  return app;
}

/** Later lists win; a variable keeps the position of its first definition. */
function mergeEnv(...lists: readonly (readonly EnvironmentVariable[])[]): EnvironmentVariable[] {
  const merged = new Map<string, string>();
  for (const list of lists) for (const { name, value } of list) merged.set(name, value);
  return [...merged].map(([name, value]) => ({ name, value }));
}

/** The isolators given as flags, as appc values (spec/ace.md "Isolators"). */
function flagIsolators(a: AppArgs): Isolator[] {
  const out: Isolator[] = [];
  if (a.memory !== undefined) out.push({ name: 'resource/memory', value: { limit: a.memory } });
  if (a.cpu !== undefined) out.push({ name: 'resource/cpu', value: { limit: a.cpu } });
  if (a.capsRetain !== undefined) out.push({ name: ISO_CAPS_RETAIN, value: { set: a.capsRetain } });
  if (a.capsRemove !== undefined) out.push({ name: ISO_CAPS_REMOVE, value: { set: a.capsRemove } });
  if (a.seccomp !== undefined) {
    const value: { set: string[]; errno?: string } = { set: a.seccomp.set };
    if (a.seccomp.errno !== undefined) value.errno = a.seccomp.errno;
    out.push({ name: a.seccomp.mode === 'retain' ? ISO_SECCOMP_RETAIN : ISO_SECCOMP_REMOVE, value });
  }
  if (a.cpuShares !== undefined) out.push({ name: 'os/linux/cpu-shares', value: a.cpuShares });
  if (a.oomScoreAdj !== undefined) out.push({ name: 'os/linux/oom-score-adj', value: a.oomScoreAdj });
  return out;
}

/**
 * The image's isolators with the flags' merged over them: a flag replaces every image isolator
 * of its name; a capability flag replaces both capability sets, a seccomp flag both seccomp sets
 * (each pair is mutually exclusive, spec/ace.md).
 */
function isolatorsOf(a: AppArgs, imageIsolators: readonly Isolator[]): Isolator[] {
  const flags = flagIsolators(a);
  const replaced = new Set(flags.map((i) => i.name));
  if (replaced.has(ISO_CAPS_RETAIN) || replaced.has(ISO_CAPS_REMOVE)) [ISO_CAPS_RETAIN, ISO_CAPS_REMOVE].forEach((n) => replaced.add(n));
  if (replaced.has(ISO_SECCOMP_RETAIN) || replaced.has(ISO_SECCOMP_REMOVE)) [ISO_SECCOMP_RETAIN, ISO_SECCOMP_REMOVE].forEach((n) => replaced.add(n));
  return [...imageIsolators.filter((i) => !replaced.has(i.name)), ...flags];
}

/**
 * The app's mounts: its own --mount flags, then the global ones (unless the app mounts that
 * target itself), then one per mount point not yet satisfied, from the volume of the mount
 * point's name, or an implicit empty volume (rkt's behaviour, with a warning).
 */
function mountsOf(appName: string, app: App, a: AppArgs, pod: PodFlags, volumes: Volume[], warn: (m: string) => void): Mount[] {
  const mounts: Mount[] = a.mounts.map((m) => ({ volume: m.volume, path: m.target }));
  for (const m of pod.mounts) {
    if (!mounts.some((x) => x.path === m.target)) mounts.push({ volume: m.volume, path: m.target });
  }
  for (const mp of app.mountPoints ?? []) {
    if (mounts.some((m) => m.path === mp.path || m.volume === mp.name)) continue;
    if (!volumes.some((v) => v.name === mp.name)) {
      volumes.push({ name: mp.name, kind: 'empty', mode: '0755', uid: 0, gid: 0 });
      warn(
        `app "${appName}": no volume for mount point "${mp.name}" (${mp.path}); using an implicit empty volume "${mp.name}" ` +
          `(define one with --volume ${mp.name},kind=host,source=PATH or --volume ${mp.name},kind=empty)`,
      );
    }
    mounts.push({ volume: mp.name, path: mp.path });
  }
  return mounts;
}

function portsOf(ports: readonly ExposedPort[], apps: readonly RuntimeApp[]): ExposedPort[] {
  const available = [...new Set(apps.flatMap((ra) => (ra.app?.ports ?? []).map((p) => p.name)))];
  for (const p of ports) {
    if (!available.includes(p.name)) {
      throw new UsageError(
        `--port ${p.name}:${p.hostPort}: no app has a port named "${p.name}" (${available.length === 0 ? 'the images declare no ports' : `available: ${available.join(', ')}`})`,
      );
    }
  }
  return ports.map((p) => ({ ...p }));
}

// ---------------------------------------------------------------------------------------------
// Environment files and run options

/** `--set-env-file`: lines `NAME=VALUE`; blank lines and lines starting with `#` are skipped. */
export function parseEnvFile(text: string, path: string): EnvironmentVariable[] {
  const out: EnvironmentVariable[] = [];
  text.split('\n').forEach((rawLine, i) => {
    const line = rawLine.replace(/\r$/, '');
    const trimmed = line.trim();
    if (trimmed === '' || trimmed.startsWith('#')) return;
    const eq = line.indexOf('=');
    const name = eq > 0 ? line.slice(0, eq).trim() : '';
    if (!ENV_NAME_PATTERN.test(name)) {
      throw new UsageError(`--set-env-file ${path}: line ${i + 1}: expected NAME=VALUE, got ${JSON.stringify(line)}`);
    }
    out.push({ name, value: line.slice(eq + 1) });
  });
  return out;
}

function readEnvFile(path: string, deps: BuildPodManifestDeps): EnvironmentVariable[] {
  let text: string;
  try {
    text = (deps.readEnvFile ?? ((p: string) => readFileSync(p, 'utf8')))(path);
  } catch (err) {
    throw new NotFoundError(`--set-env-file ${path}: cannot read it (${(err as NodeJS.ErrnoException).code ?? String(err)})`, { cause: err });
  }
  return parseEnvFile(text, path);
}

function runOptionsOf(pod: PodFlags, deps: BuildPodManifestDeps): RunOptions {
  const options: RunOptions = {
    interfaceVersion: STAGE1_INTERFACE_VERSION,
    net: pod.net,
    interactive: pod.interactive,
    mdsRegister: pod.mdsRegister,
    stopTimeoutMs: pod.stopTimeoutMs,
    debug: false,
  };
  if (pod.hostname !== undefined) options.hostname = pod.hostname;
  if (pod.dns.length > 0 || pod.dnsSearch.length > 0 || pod.dnsOpt.length > 0 || pod.dnsDomain !== undefined) {
    options.dns = { servers: [...pod.dns], search: [...pod.dnsSearch], options: [...pod.dnsOpt] };
    if (pod.dnsDomain !== undefined) options.dns.domain = pod.dnsDomain;
  }
  if (pod.inheritEnv) {
    const env = deps.env ?? process.env;
    options.inheritedEnv = Object.fromEntries(
      Object.entries(env).filter((e): e is [string, string] => e[1] !== undefined && ENV_NAME_PATTERN.test(e[0])),
    );
  }
  return options;
}
