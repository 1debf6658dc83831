// Manifest and document validation: owns the one Ajv instance, the JSON Schemas in schemas/
// (compiled once, lazily), the interop normalisation of manifest keys, and the appc rules JSON
// Schema cannot express (unique names, os/arch pairing, port ranges, isolator rules, cross
// references). Every problem is reported as `<json pointer>: <rule>`.
//
// Decisions where tspod differs from the reference (actool / appc/spec 0.8.11), each on purpose:
// - AC names and identifiers follow the spec regex: `a//b`, `a--b` are rejected (code accepts).
// - acVersion is required in pod manifests and `apps` is required (spec); code accepts both missing.
// - apps[].image.id must be a full sha512 id in a (reified) pod manifest and dependencies[].imageID
//   must be full too (the code accepts `sha512-abc`).
// - exec[0] must be absolute or a bare command name searched in PATH; a relative path with a '/'
//   (`bin/app`, `./app`) depends on the cwd and is rejected (code checks nothing).
// - pathWhitelist entries must be absolute (spec; code does not check).
// - capabilities retain-set and remove-set are mutually exclusive (spec/ace.md; code does not check).
// - mounts[].volume must name a pod volume unless the mount carries appVolume (code does not check).
// - pod port names are unique and name an app port unless podPort is given (spec; code does not check).
// - os/linux/apparmor-profile is a known isolator (spec HEAD ace.md; the 0.8.11 code lacks it).
// - ports need name and protocol, mountPoints need name and path (spec; code does not check).
// - a missing acKind or isolator value is a plain problem (actool 0.8.11 panics).
// Interop with the reference (Go encoding/json semantics), on purpose:
// - keys of known fields match case-insensitively (`ACKind`, `supplementaryGids`) and are
//   rewritten to their canonical spelling before validation; when two spellings of one key are
//   present, the later one wins, as in Go. Keys of maps (userAnnotations, userLabels, sysctl)
//   and unknown keys are kept as they are, and unknown keys are allowed.
// - a known key whose value is null counts as absent (rkt writes `"volumes": null`).

import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { isIP } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import type { Ajv2020, ErrorObject, ValidateFunction } from 'ajv/dist/2020.js';

import { ValidationError } from '../errors.js';
import { checkOsArch } from './labels.js';
import type { ImageManifest, PodManifest } from './types.js';

/** The tspod documents (not appc manifests) that have a schema in schemas/. */
export const DOCUMENT_SCHEMAS = ['image-record', 'image-list', 'trust-list', 'pod-list', 'pod-status'] as const;
export type DocumentSchemaName = (typeof DOCUMENT_SCHEMAS)[number];
export type SchemaName = 'image-manifest' | 'pod-manifest' | DocumentSchemaName;

const SCHEMA_FILES = ['appc-types', 'image-manifest', 'pod-manifest', ...DOCUMENT_SCHEMAS] as const;
const SCHEMA_ID_BASE = 'https://tspod.dev/schemas/';

/** Isolators appc 0.8.11 (plus apparmor-profile from spec HEAD) defines, and how many an app may have. */
export const KNOWN_ISOLATORS: Readonly<Record<string, { single: boolean }>> = {
  'resource/cpu': { single: false },
  'resource/memory': { single: false },
  'resource/block-bandwidth': { single: false },
  'resource/block-iops': { single: false },
  'resource/network-bandwidth': { single: false },
  'os/linux/capabilities-retain-set': { single: false },
  'os/linux/capabilities-remove-set': { single: false },
  'os/linux/no-new-privileges': { single: false },
  'os/linux/seccomp-retain-set': { single: true },
  'os/linux/seccomp-remove-set': { single: true },
  'os/linux/oom-score-adj': { single: true },
  'os/linux/cpu-shares': { single: true },
  'os/linux/selinux-context': { single: true },
  'os/linux/apparmor-profile': { single: true },
  'os/unix/sysctl': { single: true },
};

/** Pairs of isolators that cannot appear together in one isolator list. */
const CONFLICTING_ISOLATORS: readonly (readonly [string, string])[] = [
  ['os/linux/seccomp-retain-set', 'os/linux/seccomp-remove-set'],
  ['os/linux/capabilities-retain-set', 'os/linux/capabilities-remove-set'],
];

// ---------------------------------------------------------------------------------------------
// Schema loading and compilation (once per process)

let validators: Map<SchemaName, ValidateFunction> | undefined;
let compileCount = 0;

/** How many schemas this process has compiled; stays at one per schema however often we validate. */
export function schemaCompileCount(): number {
  return compileCount;
}

/** The package root: the nearest directory above this module holding package.json (src/ or dist/src/). */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`no package.json above ${fileURLToPath(import.meta.url)}`);
    dir = parent;
  }
}

export function schemasDir(): string {
  return join(packageRoot(), 'schemas');
}

/** The schemas that get a validator (appc-types is only referenced by the others). */
export const VALIDATED_SCHEMAS: readonly SchemaName[] = ['image-manifest', 'pod-manifest', ...DOCUMENT_SCHEMAS];

/**
 * The one Ajv configuration, with every schema of schemas/ added. Used to compile at run time
 * and, by scripts/compile-schemas.mjs at build time, to generate the standalone validators.
 * `code` is Ajv's code-generation option (set only for the standalone build).
 */
export function createAjv(code?: Ajv2020['opts']['code']): Ajv2020 {
  // Loaded here, not at the top: with the generated validators the CLI never needs Ajv itself.
  const require = createRequire(import.meta.url);
  const { Ajv2020: AjvClass } = require('ajv/dist/2020.js') as typeof import('ajv/dist/2020.js');
  const addFormats = require('ajv-formats') as typeof import('ajv-formats').default;
  const ajv = new AjvClass({
    allErrors: true,
    verbose: true, // errors carry parentSchema, which is where our `x-message` texts live
    allowUnionTypes: true,
    strict: true,
    // exec: prefixItems constrains only exec[0], later items are any strings (an open tuple)
    strictTuples: false,
    // if/then fragments and $ref'd refinements constrain values whose type the enclosing schema checks
    strictTypes: false,
    ...(code === undefined ? {} : { code }),
  });
  addFormats(ajv);
  // `ip`: an IPv4 or IPv6 address (pod ports[].hostIP; the reference code accepts both).
  ajv.addFormat('ip', isIpAddress);
  // `x-message`: tspod's annotation holding the problem text reported when that subschema fails.
  ajv.addKeyword({ keyword: 'x-message', schemaType: 'string' });
  const dir = schemasDir();
  for (const file of SCHEMA_FILES) {
    ajv.addSchema(JSON.parse(readFileSync(join(dir, `${file}.json`), 'utf8')) as object);
  }
  return ajv;
}

export function isIpAddress(s: string): boolean {
  return isIP(s) !== 0;
}

export function schemaUri(name: SchemaName): string {
  return `${SCHEMA_ID_BASE}${name}.json`;
}

/** The file `npm run build` generates beside the compiled validate.js (see scripts/compile-schemas.mjs). */
export const STANDALONE_VALIDATORS = 'validators.generated.cjs';

/**
 * Validators: the standalone ones generated at build time when present (no schema compilation
 * at start-up: Ajv's compile costs ~100 ms, a third of a CLI command), otherwise compiled here,
 * once per process (the TypeScript sources under test have no generated module beside them).
 */
function loadValidators(): Map<SchemaName, ValidateFunction> {
  if (validators !== undefined) return validators;
  const generated = join(dirname(fileURLToPath(import.meta.url)), STANDALONE_VALIDATORS);
  if (existsSync(generated)) {
    const mod = createRequire(import.meta.url)(generated) as Record<string, ValidateFunction>;
    validators = new Map(VALIDATED_SCHEMAS.map((name) => [name, mod[name]!]));
    return validators;
  }
  const ajv = createAjv();
  validators = new Map();
  for (const name of VALIDATED_SCHEMAS) {
    const v = ajv.getSchema(schemaUri(name));
    if (v === undefined) throw new Error(`schema ${name}.json is not loaded`);
    compileCount += 1;
    validators.set(name, v);
  }
  return validators;
}

function getValidator(name: SchemaName): ValidateFunction {
  return loadValidators().get(name)!;
}

// ---------------------------------------------------------------------------------------------
// Key normalisation (Go encoding/json interop)

type Shape =
  | { kind: 'leaf' }
  | { kind: 'object'; fields: Readonly<Record<string, Shape>> }
  | { kind: 'array'; items: Shape }
  | { kind: 'isolator' };

const LEAF: Shape = { kind: 'leaf' };
const obj = (fields: Record<string, Shape>): Shape => ({ kind: 'object', fields });
const arr = (items: Shape): Shape => ({ kind: 'array', items });
const leaves = (...names: string[]): Record<string, Shape> => Object.fromEntries(names.map((n) => [n, LEAF]));

const LABELS = arr(obj(leaves('name', 'value')));
const EXEC = LEAF;
const PORT = obj(leaves('name', 'protocol', 'port', 'count', 'socketActivated'));
const ISOLATORS = arr({ kind: 'isolator' });
const APP = obj({
  ...leaves('exec', 'user', 'group', 'supplementaryGIDs', 'workingDirectory', 'userAnnotations', 'userLabels'),
  eventHandlers: arr(obj({ name: LEAF, exec: EXEC })),
  environment: arr(obj(leaves('name', 'value'))),
  isolators: ISOLATORS,
  mountPoints: arr(obj(leaves('name', 'path', 'readOnly'))),
  ports: arr(PORT),
});
const VOLUME = obj(leaves('name', 'kind', 'source', 'readOnly', 'recursive', 'mode', 'uid', 'gid'));
const IMAGE_MANIFEST = obj({
  ...leaves('acKind', 'acVersion', 'name', 'pathWhitelist'),
  labels: LABELS,
  app: APP,
  annotations: LABELS,
  dependencies: arr(obj({ ...leaves('imageName', 'imageID', 'size'), labels: LABELS })),
});
const POD_MANIFEST = obj({
  ...leaves('acKind', 'acVersion', 'userAnnotations', 'userLabels'),
  apps: arr(
    obj({
      name: LEAF,
      image: obj({ ...leaves('id', 'name'), labels: LABELS }),
      app: APP,
      readOnlyRootFS: LEAF,
      mounts: arr(obj({ ...leaves('volume', 'path'), appVolume: VOLUME })),
      annotations: LABELS,
    }),
  ),
  volumes: arr(VOLUME),
  isolators: ISOLATORS,
  annotations: LABELS,
  ports: arr(obj({ ...leaves('name', 'hostPort', 'hostIP'), podPort: PORT })),
});

const RESOURCE_VALUE = obj(leaves('default', 'request', 'limit'));
const ISOLATOR_VALUES: Readonly<Record<string, Shape>> = {
  'resource/cpu': RESOURCE_VALUE,
  'resource/memory': RESOURCE_VALUE,
  'resource/block-bandwidth': RESOURCE_VALUE,
  'resource/block-iops': RESOURCE_VALUE,
  'resource/network-bandwidth': RESOURCE_VALUE,
  'os/linux/capabilities-retain-set': obj(leaves('set')),
  'os/linux/capabilities-remove-set': obj(leaves('set')),
  'os/linux/seccomp-retain-set': obj(leaves('set', 'errno')),
  'os/linux/seccomp-remove-set': obj(leaves('set', 'errno')),
  'os/linux/selinux-context': obj(leaves('user', 'role', 'type', 'level')),
  'os/linux/apparmor-profile': obj(leaves('profile')),
};
const ISOLATOR = obj(leaves('name', 'value'));

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function setOwn(target: Record<string, unknown>, key: string, value: unknown): void {
  // defineProperty, so a `__proto__` key from JSON.parse stays data and never becomes a prototype
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

const lowerKeyCache = new WeakMap<object, Map<string, string>>();
function canonicalKeys(fields: Readonly<Record<string, Shape>>): Map<string, string> {
  let m = lowerKeyCache.get(fields);
  if (m === undefined) {
    m = new Map(Object.keys(fields).map((k) => [k.toLowerCase(), k]));
    lowerKeyCache.set(fields, m);
  }
  return m;
}

function normalize(value: unknown, shape: Shape): unknown {
  switch (shape.kind) {
    case 'leaf':
      return value;
    case 'array':
      return Array.isArray(value) ? value.map((item) => normalize(item, shape.items)) : value;
    case 'isolator': {
      const iso = normalize(value, ISOLATOR);
      if (isPlainObject(iso) && typeof iso['name'] === 'string' && 'value' in iso) {
        const valueShape = ISOLATOR_VALUES[iso['name']];
        if (valueShape !== undefined) iso['value'] = normalize(iso['value'], valueShape);
      }
      return iso;
    }
    case 'object': {
      if (!isPlainObject(value)) return value;
      const keys = canonicalKeys(shape.fields);
      const out: Record<string, unknown> = {};
      for (const [key, v] of Object.entries(value)) {
        // Go matches struct fields exactly first, then case-insensitively; a later key wins.
        const canonical = Object.hasOwn(shape.fields, key) ? key : keys.get(key.toLowerCase());
        if (canonical === undefined) {
          setOwn(out, key, v);
        } else if (v === null) {
          delete out[canonical];
        } else {
          setOwn(out, canonical, normalize(v, shape.fields[canonical] ?? LEAF));
        }
      }
      return out;
    }
  }
}

/**
 * Returns a copy of an image manifest with known keys in their canonical spelling
 * (`ACKIND` -> `acKind`, `supplementaryGids` -> `supplementaryGIDs`) and null-valued known keys
 * removed. The input is not modified.
 */
export function normalizeImageManifestKeys(doc: unknown): unknown {
  return normalize(doc, IMAGE_MANIFEST);
}

/** As normalizeImageManifestKeys, for pod manifests. */
export function normalizePodManifestKeys(doc: unknown): unknown {
  return normalize(doc, POD_MANIFEST);
}

// ---------------------------------------------------------------------------------------------
// Ajv errors -> problems

function pointer(path: readonly (string | number)[]): string {
  if (path.length === 0) return '/';
  return path.map((p) => `/${String(p).replace(/~/g, '~0').replace(/\//g, '~1')}`).join('');
}

function describeAjvError(e: ErrorObject): string | undefined {
  const custom = (e.parentSchema as Record<string, unknown> | undefined)?.['x-message'];
  switch (e.keyword) {
    case 'if':
      return undefined; // the failing `then` branch is reported on its own
    case 'required':
      return `missing required property "${String((e.params as { missingProperty: string }).missingProperty)}"`;
    case 'type':
      return `must be ${String((e.params as { type: string | string[] }).type).replace(',', ' or ')}`;
    default:
      break;
  }
  if (typeof custom === 'string') return custom;
  switch (e.keyword) {
    case 'const':
      return `must be ${JSON.stringify((e.params as { allowedValue: unknown }).allowedValue)}`;
    case 'enum':
      return `must be one of ${(e.params as { allowedValues: unknown[] }).allowedValues.map((v) => JSON.stringify(v)).join(', ')}`;
    case 'false schema':
      return 'is not allowed here';
    default:
      return (e.message ?? `fails ${e.keyword}`).replace(/NOT/g, 'not').replace(/'/g, '"');
  }
}

function schemaProblems(errors: readonly ErrorObject[] | null | undefined): string[] {
  const problems: string[] = [];
  for (const e of errors ?? []) {
    const text = describeAjvError(e);
    if (text === undefined) continue;
    const problem = `${e.instancePath === '' ? '/' : e.instancePath}: ${text}`;
    if (!problems.includes(problem)) problems.push(problem);
  }
  return problems;
}

// ---------------------------------------------------------------------------------------------
// Rules JSON Schema cannot express. These run on schema-valid documents only, so shapes hold.

type Path = readonly (string | number)[];
type Report = (path: Path, message: string) => void;

interface Named {
  name: string;
}

function checkUniqueNames(items: readonly Named[] | undefined, path: Path, what: string, report: Report): void {
  const seen = new Set<string>();
  (items ?? []).forEach((item, i) => {
    if (seen.has(item.name)) report([...path, i, 'name'], `duplicate ${what} name "${item.name}"`);
    seen.add(item.name);
  });
}

function checkLabels(labels: ImageManifest['labels'], path: Path, report: Report): void {
  if (labels === undefined) return;
  checkUniqueNames(labels, path, 'label', report);
  const problem = checkOsArch(labels);
  if (problem !== undefined) {
    const i = labels.findIndex((l) => l.name === problem.label);
    report([...path, i, 'value'], problem.message);
  }
}

function checkIsolators(isolators: readonly Named[] | undefined, path: Path, scope: 'app' | 'pod', report: Report): void {
  if (isolators === undefined) return;
  const seen = new Map<string, number>();
  isolators.forEach((iso, i) => {
    const known = Object.hasOwn(KNOWN_ISOLATORS, iso.name) ? KNOWN_ISOLATORS[iso.name] : undefined;
    // schema/types/isolator.go: an unrecognised isolator inside an app is "invalid isolator";
    // the pod-level list keeps unknown ones (the ACE reports them as ignored).
    if (known === undefined && scope === 'app') {
      report([...path, i, 'name'], `unknown isolator "${iso.name}" (known: ${Object.keys(KNOWN_ISOLATORS).join(', ')})`);
    }
    if (known?.single === true && seen.has(iso.name)) {
      report([...path, i, 'name'], `isolator "${iso.name}" may appear only once`);
    }
    for (const [a, b] of CONFLICTING_ISOLATORS) {
      const other = iso.name === a ? b : iso.name === b ? a : undefined;
      if (other !== undefined && seen.has(other)) {
        report([...path, i, 'name'], `isolator "${iso.name}" conflicts with "${other}" at index ${String(seen.get(other))}`);
      }
    }
    if (!seen.has(iso.name)) seen.set(iso.name, i);
  });
}

function checkApp(app: ImageManifest['app'], path: Path, report: Report): void {
  if (app === undefined) return;
  checkUniqueNames(app.eventHandlers, [...path, 'eventHandlers'], 'event handler', report);
  checkUniqueNames(app.environment, [...path, 'environment'], 'environment variable', report);
  checkIsolators(app.isolators, [...path, 'isolators'], 'app', report);
  (app.ports ?? []).forEach((p, i) => {
    // schema/types/port.go: the range port..port+count-1 must stay within 1-65535
    if (p.port + (p.count ?? 1) > 65536) {
      report([...path, 'ports', i, 'count'], `port range ${p.port}+${p.count ?? 1} ends past 65535`);
    }
  });
}

function checkAnnotations(annotations: readonly Named[] | undefined, path: Path, report: Report): void {
  checkUniqueNames(annotations, path, 'annotation', report);
}

function checkAcVersion(version: string, report: Report): void {
  // schema/types/semver.go: "SemVer cannot be zero" (only the exact zero version, no pre-release/build)
  if (version === '0.0.0') report(['acVersion'], 'must not be 0.0.0');
}

function imageManifestRules(m: ImageManifest, report: Report): void {
  checkAcVersion(m.acVersion, report);
  checkLabels(m.labels, ['labels'], report);
  checkAnnotations(m.annotations, ['annotations'], report);
  checkApp(m.app, ['app'], report);
  (m.dependencies ?? []).forEach((d, i) => checkLabels(d.labels, ['dependencies', i, 'labels'], report));
}

function podManifestRules(m: PodManifest, report: Report): void {
  checkAcVersion(m.acVersion, report);
  checkUniqueNames(m.apps, ['apps'], 'app', report);
  checkUniqueNames(m.volumes, ['volumes'], 'volume', report);
  checkAnnotations(m.annotations, ['annotations'], report);
  checkIsolators(m.isolators, ['isolators'], 'pod', report);
  const volumes = new Set((m.volumes ?? []).map((v) => v.name));
  m.apps.forEach((a, i) => {
    checkLabels(a.image.labels, ['apps', i, 'image', 'labels'], report);
    checkApp(a.app, ['apps', i, 'app'], report);
    checkAnnotations(a.annotations, ['apps', i, 'annotations'], report);
    (a.mounts ?? []).forEach((mount, j) => {
      if (mount.appVolume === undefined && !volumes.has(mount.volume)) {
        report(['apps', i, 'mounts', j, 'volume'], `no volume named "${mount.volume}" in /volumes (and no appVolume)`);
      }
    });
  });
  checkUniqueNames(m.ports, ['ports'], 'pod port', report);
  // A pod port without podPort must name an app port; checkable only when every app carries its
  // app section (otherwise the ports live in image manifests this function cannot see).
  if (m.apps.every((a) => a.app !== undefined)) {
    const appPorts = new Set(m.apps.flatMap((a) => (a.app?.ports ?? []).map((p) => p.name)));
    (m.ports ?? []).forEach((p, i) => {
      if (p.podPort === undefined && !appPorts.has(p.name)) {
        report(['ports', i, 'name'], `no app has a port named "${p.name}" (and no podPort)`);
      }
    });
  }
}

// ---------------------------------------------------------------------------------------------
// Public entry points

function run<T>(schema: SchemaName, doc: unknown, what: string, rules?: (doc: T, report: Report) => void): T {
  const validate = getValidator(schema);
  if (!validate(doc)) throw new ValidationError(what, schemaProblems(validate.errors));
  if (rules !== undefined) {
    const problems: string[] = [];
    rules(doc as T, (path, message) => problems.push(`${pointer(path)}: ${message}`));
    if (problems.length > 0) throw new ValidationError(what, problems);
  }
  return doc as T;
}

/**
 * Validates an image manifest (spec/aci.md) and returns a normalised copy (canonical key
 * spelling, null-valued known keys dropped). Throws ValidationError listing every problem.
 */
export function validateImageManifest(doc: unknown, what = 'image manifest'): ImageManifest {
  return run<ImageManifest>('image-manifest', normalizeImageManifestKeys(doc), what, imageManifestRules);
}

/** Validates a reified pod manifest (spec/pods.md) and returns a normalised copy. */
export function validatePodManifest(doc: unknown, what = 'pod manifest'): PodManifest {
  return run<PodManifest>('pod-manifest', normalizePodManifestKeys(doc), what, podManifestRules);
}

function parseJson(bytes: Uint8Array | string, what: string): unknown {
  let text: string;
  try {
    text = typeof bytes === 'string' ? bytes : new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new ValidationError(what, ['/: is not valid utf-8']);
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw new ValidationError(what, [`/: is not valid json (${reason.charAt(0).toLowerCase()}${reason.slice(1)})`], {
      cause: err,
    });
  }
}

/** JSON.parse with a ValidationError on bad bytes, then validateImageManifest. */
export function parseImageManifest(bytes: Uint8Array | string, what = 'image manifest'): ImageManifest {
  return validateImageManifest(parseJson(bytes, what), what);
}

/** JSON.parse with a ValidationError on bad bytes, then validatePodManifest. */
export function parsePodManifest(bytes: Uint8Array | string, what = 'pod manifest'): PodManifest {
  return validatePodManifest(parseJson(bytes, what), what);
}

/** Validates one of tspod's own documents (no key normalisation: tspod writes them itself). */
export function validateDocument(schemaName: DocumentSchemaName, doc: unknown, what: string): void {
  if (!(DOCUMENT_SCHEMAS as readonly string[]).includes(schemaName)) {
    throw new Error(`unknown document schema "${schemaName}"`);
  }
  run(schemaName, doc, what);
}
