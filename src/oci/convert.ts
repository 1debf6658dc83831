// OCI image config (plus manifest annotations) to an appc image manifest, the way rkt's
// docker2aci did (appc/docker2aci lib/internal/internal.go GenerateManifest): name from the
// reference, version/os/arch labels, exec = Entrypoint + Cmd, env, user/group, working
// directory, exposed ports, volumes as mount points, and what has no appc field kept as
// annotations (the OCI manifest digest among them, for `image list`). Pure data, no I/O.
import { APPC_VERSION, type Annotation, type App, type EnvironmentVariable, type ImageManifest, type Label, type MountPoint, type Port } from '../appc/types.js';
import { VALID_OS_ARCH } from '../appc/labels.js';
import { ImageFormatError } from '../errors.js';

/** The parts of an OCI image config this module reads (image-spec config.md). */
export interface OciImageConfig {
  architecture?: string;
  os?: string;
  variant?: string;
  created?: string;
  author?: string;
  config?: {
    User?: string;
    ExposedPorts?: Record<string, unknown>;
    Env?: string[] | null;
    Entrypoint?: string[] | null;
    Cmd?: string[] | null;
    Volumes?: Record<string, unknown> | null;
    WorkingDir?: string;
    Labels?: Record<string, string> | null;
    StopSignal?: string;
  } | null;
}

export interface ConvertInput {
  /** Repository name as the reference spells it after normalisation: `docker.io/library/nginx`. */
  name: string;
  tag?: string;
  config: OciImageConfig;
  /** `sha256:...` of the OCI/Docker manifest the config came from. */
  manifestDigest: string;
  configDigest?: string;
  manifestAnnotations?: Record<string, string>;
}

export interface ConvertResult {
  manifest: ImageManifest;
  /** Things dropped or changed on the way (an env entry without '=', an unknown arch). */
  warnings: string[];
}

/** tspod's own annotation names; `appc.io/docker/*` are the ones docker2aci wrote. */
export const ANNOTATIONS = {
  manifestDigest: 'appc.io/oci/manifest-digest',
  configDigest: 'appc.io/oci/config-digest',
  registry: 'appc.io/docker/registryurl',
  repository: 'appc.io/docker/repository',
  tag: 'appc.io/docker/tag',
  entrypoint: 'appc.io/docker/entrypoint',
  cmd: 'appc.io/docker/cmd',
  stopSignal: 'appc.io/docker/stopsignal',
  // appc spec/aci.md "annotations": well-known names.
  created: 'created',
  authors: 'authors',
} as const;

/** GOARCH (+ variant) to appc arch label (docker2aci ConvertArch / appc labels.go ValidOSArch). */
export function appcArch(architecture: string, variant?: string): string | undefined {
  switch (architecture) {
    case 'amd64':
    case 'ppc64':
    case 'ppc64le':
    case 's390x':
      return architecture;
    case '386':
      return 'i386';
    case 'arm64':
      return 'aarch64';
    case 'arm':
      // image-spec image-index.md: arm variants v6, v7, v8; appc knows armv6l and armv7l.
      return variant === 'v6' ? 'armv6l' : 'armv7l';
    default:
      return undefined;
  }
}

/** Lowercases and replaces what an AC identifier cannot hold (the registry's `:port`) with '-'. */
export function sanitizeACIdentifier(s: string): string {
  return s
    .toLowerCase()
    .replace(/[^a-z0-9._~/-]/g, '-')
    .replace(/([-._~/])[-._~/]+/g, '$1')
    .replace(/^[-._~/]+|[-._~/]+$/g, '');
}

/**
 * docker2aci parseDockerUser: empty means root; `a:b` is user a, group b; a lone user (number or
 * name) gets the same value as group, to avoid reading /etc/passwd from the image.
 */
export function parseUser(user: string | undefined): { user: string; group: string } {
  if (user === undefined || user === '') return { user: '0', group: '0' };
  const colon = user.indexOf(':');
  if (colon === -1) return { user, group: user };
  const u = user.slice(0, colon) || '0';
  const g = user.slice(colon + 1) || '0';
  return { user: u, group: g };
}

/** `80/tcp`, `53/udp`, `8000-8010/tcp`, `80` (tcp, per config.md ExposedPorts). */
export function parseExposedPort(key: string): Port | undefined {
  const m = /^([0-9]+)(?:-([0-9]+))?(?:\/([a-zA-Z]+))?$/.exec(key);
  if (m === null) return undefined;
  const port = Number(m[1]);
  const last = m[2] === undefined ? port : Number(m[2]);
  const protocol = (m[3] ?? 'tcp').toLowerCase();
  if (port < 1 || last > 65535 || last < port) return undefined;
  const range = last === port ? `${port}` : `${port}-${last}`;
  const result: Port = { name: `${range}-${protocol}`, protocol, port };
  if (last !== port) result.count = last - port + 1;
  return result;
}

/** `/var/lib/data` -> `volume-var-lib-data` (docker2aci's mount point names), `/` -> `volume-root`. */
export function volumeName(volumePath: string): string {
  const rest = volumePath.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '');
  return `volume-${rest === '' ? 'root' : rest}`;
}

function absolute(p: string): string {
  return p.startsWith('/') ? p : `/${p}`;
}

export function convertConfig(input: ConvertInput): ConvertResult {
  const warnings: string[] = [];
  const { config } = input;
  const name = sanitizeACIdentifier(input.name);
  if (name === '') throw new ImageFormatError(`convert ${input.name}: cannot derive an image name`);

  const labels: Label[] = [];
  if (input.tag !== undefined && input.tag !== '') labels.push({ name: 'version', value: input.tag });
  const os = config.os ?? 'linux';
  if (VALID_OS_ARCH[os] === undefined) {
    throw new ImageFormatError(`convert ${input.name}: image is for os "${os}", tspod runs linux images`);
  }
  labels.push({ name: 'os', value: os });
  if (config.architecture !== undefined) {
    const arch = appcArch(config.architecture, config.variant);
    if (arch !== undefined && VALID_OS_ARCH[os]!.includes(arch)) labels.push({ name: 'arch', value: arch });
    else warnings.push(`architecture "${config.architecture}${config.variant ? `/${config.variant}` : ''}" has no appc arch label; left out`);
  }

  const c = config.config ?? {};
  const { user, group } = parseUser(c.User);
  const app: App = { user, group };

  // config.md: Entrypoint + Cmd form the command; OCI stores only the exec (JSON array) form,
  // the shell form is already expanded to ["/bin/sh","-c",...] by the builder.
  const exec = [...(c.Entrypoint ?? []), ...(c.Cmd ?? [])];
  const workingDirectory = c.WorkingDir ? absolute(c.WorkingDir) : undefined;
  if (exec.length > 0) {
    const first = exec[0]!;
    // appc validation accepts an absolute path or a bare PATH name; Docker resolves `./x` and
    // `bin/x` against WorkingDir, so make that explicit.
    if (!first.startsWith('/') && first.includes('/')) {
      const base = workingDirectory ?? '/';
      exec[0] = `${base.endsWith('/') ? base : `${base}/`}${first.replace(/^(\.\/)+/, '')}`;
    }
    app.exec = exec;
  } else {
    warnings.push('image has neither Entrypoint nor Cmd; the app has no exec');
  }
  if (workingDirectory !== undefined) app.workingDirectory = workingDirectory;

  const env = new Map<string, string>();
  for (const entry of c.Env ?? []) {
    const eq = entry.indexOf('=');
    if (eq <= 0) {
      warnings.push(`environment entry "${entry}" has no name=value form; left out`);
      continue;
    }
    env.set(entry.slice(0, eq), entry.slice(eq + 1)); // later duplicates win, as in docker
  }
  if (env.size > 0) app.environment = [...env].map(([n, value]): EnvironmentVariable => ({ name: n, value }));

  const ports: Port[] = [];
  for (const key of Object.keys(c.ExposedPorts ?? {}).sort()) {
    const port = parseExposedPort(key);
    if (port === undefined) warnings.push(`exposed port "${key}" is not port[-port][/proto]; left out`);
    else ports.push(port);
  }
  if (ports.length > 0) app.ports = ports;

  const mountPoints: MountPoint[] = [];
  const used = new Set<string>();
  for (const key of Object.keys(c.Volumes ?? {}).sort()) {
    let mpName = volumeName(key);
    for (let i = 2; used.has(mpName); i += 1) mpName = `${volumeName(key)}-${i}`;
    used.add(mpName);
    mountPoints.push({ name: mpName, path: absolute(key) });
  }
  if (mountPoints.length > 0) app.mountPoints = mountPoints;

  const annotations: Annotation[] = [];
  const seen = new Set<string>();
  const annotate = (rawName: string, value: string | undefined): void => {
    if (value === undefined) return;
    const n = sanitizeACIdentifier(rawName);
    if (n === '') {
      warnings.push(`annotation "${rawName}" has no usable name; left out`);
      return;
    }
    if (seen.has(n)) {
      if (n !== rawName) warnings.push(`annotation "${rawName}" collides with "${n}"; left out`);
      return;
    }
    seen.add(n);
    annotations.push({ name: n, value });
  };
  annotate(ANNOTATIONS.manifestDigest, input.manifestDigest);
  annotate(ANNOTATIONS.configDigest, input.configDigest);
  const slash = input.name.indexOf('/');
  if (slash > 0) {
    annotate(ANNOTATIONS.registry, input.name.slice(0, slash));
    annotate(ANNOTATIONS.repository, input.name.slice(slash + 1));
  }
  annotate(ANNOTATIONS.tag, input.tag || undefined);
  if (c.Entrypoint) annotate(ANNOTATIONS.entrypoint, JSON.stringify(c.Entrypoint));
  if (c.Cmd) annotate(ANNOTATIONS.cmd, JSON.stringify(c.Cmd));
  annotate(ANNOTATIONS.stopSignal, c.StopSignal || undefined);
  // appc's `created` must be an RFC 3339 timestamp (spec/aci.md); OCI's may be anything.
  if (config.created !== undefined && /^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})$/.test(config.created)) {
    annotate(ANNOTATIONS.created, config.created);
  }
  annotate(ANNOTATIONS.authors, config.author || undefined);
  // Image labels first (they are part of the config digest), then the manifest's annotations.
  for (const [k, v] of Object.entries(c.Labels ?? {})) annotate(k, v);
  for (const [k, v] of Object.entries(input.manifestAnnotations ?? {})) annotate(k, v);

  const manifest: ImageManifest = { acKind: 'ImageManifest', acVersion: APPC_VERSION, name, labels, app };
  if (annotations.length > 0) manifest.annotations = annotations;
  return { manifest, warnings };
}
