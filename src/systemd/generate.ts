// `tspod generate systemd UUID|IMAGE...`: the service unit that runs a pod under systemd. For
// images, ExecStart= is `tspod run IMAGE...` (file references made absolute, since a unit runs
// in `/`); for an existing pod, `tspod run --pod-manifest=FILE` with the flags its run options
// stand for, so each start of the unit is a new pod from the same manifest (a prepared pod can
// be run only once). The unit itself is built by unit.ts; this module finds what goes in it and
// writes the files for --files.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import type { PodManifest } from '../appc/types.js';
import { POD_FILES, type RunOptions } from '../../stage1/contract.js';
import { NotFoundError, UsageError } from '../errors.js';
import { classifyImageRef } from '../fetch/reference.js';
import { parseLayoutReference } from '../oci/layout.js';
import { DEFAULT_STOP_TIMEOUT_MS } from '../pod/run-args.js';
import { formatNetFlag } from '../pod/run-args-values.js';
import { findPod, podPath } from '../pod/state.js';
import { resolvePodUuid } from '../pod/uuid.js';
import { renderUnit, sanitizeUnitName, unitFileName, type RestartPolicy, type UnitSpec } from './unit.js';

export interface GenerateSystemdOptions {
  /** The data directory (pods are looked up there; RequiresMountsFor=). */
  dir: string;
  /** Global flags repeated in ExecStart= (`--dir X` when not the default ...). */
  globalArgs: string[];
  /** One pod UUID (or unique prefix), or image references. */
  targets: string[];
  /** Unit name is `tspod-NAME` (default: from the app or image names). */
  name?: string;
  restart: RestartPolicy;
  /** --stop-timeout for tspod run (default: the pod's own, else 10 s). */
  stopTimeoutMs?: number;
  /** --net for tspod run (images only; a pod keeps its own). */
  net?: string;
  /** Write the unit (and a pod's manifest) into outputDir instead of only returning it. */
  files: boolean;
  outputDir: string;
  /** Where relative image paths are resolved (default process.cwd()). */
  cwd?: string;
  /** The program and arguments that start tspod (default: this node and this package's bin/run.js). */
  tspod?: string[];
  warn: (message: string) => void;
}

export interface GeneratedUnit {
  /** `tspod-web.service` */
  unit: string;
  /** The unit file's text. */
  content: string;
  /** ExecStart= as argv. */
  execStart: string[];
  /** Where --files wrote it. */
  path?: string;
  /** The pod manifest ExecStart= reads (pods only); written beside the unit with --files. */
  podManifest?: string;
  /** The stop timeout tspod run uses and TimeoutStopSec= is above. */
  stopTimeoutMs: number;
}

/** This node and this package's bin/run.js, found from this module (src/ under vitest, dist/src/ once built). */
export function tspodProgram(): string[] {
  for (let dir = path.dirname(fileURLToPath(import.meta.url)); dir !== path.dirname(dir); dir = path.dirname(dir)) {
    const bin = path.join(dir, 'bin', 'run.js');
    if (fs.existsSync(bin) && fs.existsSync(path.join(dir, 'package.json'))) return [process.execPath, fs.realpathSync(bin)];
  }
  throw new NotFoundError('generate systemd: cannot find tspod\'s bin/run.js above its modules');
}

/** `--stop-timeout` spelled for tspod run. */
export function formatDuration(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}

/** tspod run flags that recreate a pod's run options (stage1/contract.ts RunOptions). Pure. */
export function runFlagsForOptions(options: Partial<RunOptions>, stopTimeoutMs: number): string[] {
  const flags: string[] = [];
  const net = options.net;
  if (net?.kind === 'host' || net?.kind === 'none') flags.push(`--net=${net.kind}`);
  if (net?.kind === 'named') flags.push(`--net=${formatNetFlag(net)}`);
  if (options.hostname !== undefined) flags.push(`--hostname=${options.hostname}`);
  for (const server of options.dns?.servers ?? []) flags.push(`--dns=${server}`);
  for (const search of options.dns?.search ?? []) flags.push(`--dns-search=${search}`);
  for (const option of options.dns?.options ?? []) flags.push(`--dns-opt=${option}`);
  if (options.dns?.domain !== undefined) flags.push(`--dns-domain=${options.dns.domain}`);
  if (options.mdsRegister === true) flags.push('--mds-register');
  if (options.inheritedEnv !== undefined) flags.push('--inherit-env');
  flags.push(`--stop-timeout=${formatDuration(stopTimeoutMs)}`);
  return flags;
}

/** A short name for an image reference: `/srv/web.aci` -> `web`, `example.com/app:1.0` -> `app`. */
export function imageShortName(ref: string): string {
  const kind = classifyImageRef(ref);
  if (kind.kind === 'file') return path.basename(kind.path).replace(/\.aci$/, '');
  if (kind.kind === 'id') return kind.id.slice(0, 19);
  const base = ref.split(',')[0]!.replace(/^[a-z]+:\/\//i, '');
  return base.split('/').filter((p) => p !== '').at(-1)?.replace(/:.*$/, '') ?? 'pod';
}

/** Whether a lone argument names a pod: hex digits and dashes, and a pod matches it. */
function podOf(dir: string, target: string): string | undefined {
  if (!/^[0-9a-f-]{8,36}$/i.test(target)) return undefined;
  try {
    return resolvePodUuid(dir, target);
  } catch (err) {
    if (err instanceof NotFoundError) return undefined;
    throw err;
  }
}

export function generateSystemdUnit(options: GenerateSystemdOptions): GeneratedUnit {
  const { targets } = options;
  if (targets.length === 0) throw new UsageError('generate systemd: give a pod UUID or one or more images', { suggestions: ['tspod generate systemd example.com/web:1.0', 'tspod generate systemd 5f3a2b1c --files'] });
  const uuid = targets.length === 1 ? podOf(options.dir, targets[0]!) : undefined;
  const tspod = options.tspod ?? tspodProgram();
  let runArgs: string[];
  let label: string;
  let description: string;
  let stopTimeoutMs: number;
  let podManifest: string | undefined;
  let manifestToCopy: string | undefined;
  let mayFetch = false;
  const comments: string[] = [];

  if (uuid !== undefined) {
    const location = findPod(options.dir, uuid);
    const podDir = podPath(options.dir, location!, uuid);
    const manifestPath = path.join(podDir, POD_FILES.manifest);
    if (!fs.existsSync(manifestPath)) throw new NotFoundError(`generate systemd: pod ${uuid} has no pod manifest yet (state ${location})`);
    const manifest = JSON.parse(fs.readFileSync(manifestPath, 'utf8')) as PodManifest;
    let runOptions: Partial<RunOptions> = {};
    try {
      runOptions = JSON.parse(fs.readFileSync(path.join(podDir, POD_FILES.runOptions), 'utf8')) as RunOptions;
    } catch {
      options.warn(`pod ${uuid} has no run options: tspod run's defaults apply`);
    }
    if (runOptions.interactive === true) options.warn(`pod ${uuid} ran with --interactive, which a service has no terminal for: left out`);
    const apps = manifest.apps.map((a) => a.name);
    label = options.name ?? apps.join('-');
    stopTimeoutMs = options.stopTimeoutMs ?? runOptions.stopTimeoutMs ?? DEFAULT_STOP_TIMEOUT_MS;
    description = `tspod pod ${label}: ${apps.join(', ')} (from pod ${uuid})`;
    if (options.files) {
      manifestToCopy = manifestPath;
    } else {
      podManifest = manifestPath;
      options.warn(`the unit reads the manifest of pod ${uuid} from its directory, which tspod gc removes once the pod has exited; --files keeps a copy beside the unit`);
    }
    runArgs = ['run', ...runFlagsForOptions(runOptions, stopTimeoutMs)];
    comments.push(`Each start runs a new pod from the manifest of pod ${uuid}.`);
  } else {
    const cwd = options.cwd ?? process.cwd();
    const images = targets.map((ref) => {
      const kind = classifyImageRef(ref);
      if (kind.kind === 'unsupported') throw new UsageError(`generate systemd: image reference ${ref}: ${kind.scheme}:// images are not supported`);
      if (kind.kind === 'name' || kind.kind === 'url' || (kind.kind === 'oci' && kind.scheme === 'docker')) mayFetch = true;
      if (kind.kind === 'oci' && kind.scheme !== 'docker') {
        // The unit runs from another working directory: the layout's path is made absolute.
        const layout = parseLayoutReference(ref);
        return `${layout.transport}:${path.resolve(cwd, layout.path)}${layout.tag === undefined ? '' : `:${layout.tag}`}`;
      }
      if (kind.kind !== 'file') return ref;
      const absolute = path.resolve(cwd, kind.path);
      if (!fs.existsSync(absolute)) options.warn(`image file ${absolute} does not exist (yet)`);
      return absolute;
    });
    label = options.name ?? targets.map(imageShortName).join('-');
    stopTimeoutMs = options.stopTimeoutMs ?? DEFAULT_STOP_TIMEOUT_MS;
    description = `tspod pod ${label}: ${images.join(' ')}`;
    runArgs = ['run', ...(options.net === undefined ? [] : [`--net=${options.net}`]), `--stop-timeout=${formatDuration(stopTimeoutMs)}`, ...images];
  }

  const name = `tspod-${sanitizeUnitName(label)}`;
  const unit = unitFileName(name);
  if (manifestToCopy !== undefined) podManifest = path.resolve(options.outputDir, `${name}.pod-manifest.json`);
  if (podManifest !== undefined) runArgs.splice(1, 0, `--pod-manifest=${podManifest}`);
  comments.unshift(`${unit}: written by \`tspod generate systemd\`.`);
  comments.push(`Install: cp ${unit} /etc/systemd/system/ && systemctl daemon-reload && systemctl start ${unit}`);
  const spec: UnitSpec = {
    name,
    description,
    execStart: [...tspod, ...options.globalArgs, ...runArgs],
    stopTimeoutMs,
    restart: options.restart,
    dataDir: path.resolve(options.dir),
    mayFetch,
    comments,
  };
  const content = renderUnit(spec);
  const result: GeneratedUnit = { unit, content, execStart: spec.execStart, stopTimeoutMs, ...(podManifest === undefined ? {} : { podManifest }) };
  if (options.files) {
    fs.mkdirSync(options.outputDir, { recursive: true });
    if (manifestToCopy !== undefined) fs.copyFileSync(manifestToCopy, podManifest!);
    result.path = path.resolve(options.outputDir, unit);
    fs.writeFileSync(result.path, content, { mode: 0o644 });
  }
  return result;
}
