// The trusted-key store: rkt's on-disk layout and semantics (pkg/keystore/keystore.go), so an
// existing rkt config dir works unchanged when pointed at by --system-config/--local-config.
//
//   <configDir>/trustedkeys/root.d/<fingerprint>                   trusted for every image name
//   <configDir>/trustedkeys/prefix.d/<ACIdentifier>/<fingerprint>  trusted for names under it
//
// - Two layers: system (vendor, default /usr/lib/tspod) and local (admin, default /etc/tspod).
//   A local entry overrides the system one at the same place; a zero-length local file named like
//   a system key's fingerprint at the same place (root.d, or the same prefix dir) masks it.
//   (rkt deletes any already-loaded key of that fingerprint; we mask only the same place, which
//   is what `remove` writes and what an admin means.)
// - File names are the lowercase hex fingerprint of the primary key; the file holds the armored
//   public key. A name that does not match the key inside is an error naming the file.
// - Prefix matching follows rkt's walk (`strings.HasPrefix(fullPath, dir)`): a prefix dir covers
//   every name of which it is a STRING prefix, so a key for `coreos.com/ace-validator` also covers
//   `coreos.com/ace-validator-main` (and `example.co` covers `example.com/app`).
// - `docker://` prefixes: an appc identifier cannot hold `://`, so `docker://<rest>` is stored under
//   `prefix.d/docker/<rest>` and read back as `docker://<rest>`; `<rest>` may hold a registry
//   port's `:` (`docker://127.0.0.1:5000/team`). (The appc name `docker/<rest>`
//   maps to the same directory; appc names start with a DNS domain, which `docker` is not.)
// - Hidden files (`.<name>`, e.g. the atomic-write temporaries) and files directly in prefix.d
//   are ignored.
import fs from 'node:fs';
import path from 'node:path';

import * as openpgp from 'openpgp';

import { AmbiguousError, NotFoundError, TrustError, UsageError } from '../errors.js';
import { ensureDir, writeFileAtomic } from '../store/atomic.js';
import type { Syscalls } from '../sys/types.js';

export type KeyScope = 'root' | 'prefix';
export type KeyLayer = 'system' | 'local';

/** One effective trusted key, as `tspod trust list --json` prints it. */
export interface TrustedKeyInfo {
  fingerprint: string;
  scope: KeyScope;
  prefix: string | null;
  layer: KeyLayer;
  path: string;
  userIds: string[];
  created: string;
  expires: string | null;
}

export interface TrustedKey extends TrustedKeyInfo {
  key: openpgp.PublicKey;
}

/** What `remove` did for one entry: deleted the local file, or masked a system key. */
export interface RemovedKeyInfo extends TrustedKeyInfo {
  action: 'deleted' | 'masked';
  /** The local file deleted or the empty masking file written. */
  changedPath: string;
}

export type TrustTarget = { root: true } | { prefix: string };

export interface KeystoreOptions {
  systemDir: string;
  localDir: string;
  sys: Syscalls;
}

export const DEFAULT_SYSTEM_CONFIG_DIR = '/usr/lib/tspod';
export const DEFAULT_LOCAL_CONFIG_DIR = '/etc/tspod';

const DOCKER_SCHEME = 'docker://';
const DOCKER_DIR = 'docker';
const FINGERPRINT_RE = /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/;
const IDENTIFIER_CHARS_RE = /^[a-z0-9\-._~/]+$/;
const SEPARATORS = '-._~/';

/** A place in one layer: root.d, or a prefix dir. `rel` is the path under trustedkeys/. */
interface Entry {
  layer: KeyLayer;
  scope: KeyScope;
  prefix: string | null;
  fingerprint: string;
  path: string;
  size: number;
}

/**
 * Validates an appc ACIdentifier used as a key prefix (or image name) and returns its relative
 * directory under prefix.d. `docker://x/y` maps to `docker/x/y`.
 */
export function prefixToRelDir(prefix: string, what = 'prefix'): string {
  let rest = prefix;
  let base = '';
  if (prefix.startsWith(DOCKER_SCHEME)) {
    rest = prefix.slice(DOCKER_SCHEME.length);
    base = `${DOCKER_DIR}/`;
  } else if (/^[a-z][a-z0-9+.-]*:\/\//i.test(prefix)) {
    throw new UsageError(`${what} ${JSON.stringify(prefix)}: a URL is not a prefix; give an image name prefix`, {
      suggestions: [`tspod trust --prefix ${prefix.replace(/^[a-z][a-z0-9+.-]*:\/\//i, '').replace(/\/+$/, '')} <key file or URL>`],
    });
  }
  const bad = (cause: string): never => {
    throw new UsageError(`${what} ${JSON.stringify(prefix)}: not a valid app container identifier: ${cause}`);
  };
  if (rest === '') bad('empty');
  // A docker:// prefix may name a registry port (`docker://127.0.0.1:5000/team`): `:` is allowed there.
  if (base !== '' ? !/^[a-z0-9\-._~/:]+$/.test(rest) : !IDENTIFIER_CHARS_RE.test(rest)) bad(`only lowercase a-z, 0-9 and -._~/${base !== '' ? ':' : ''} are allowed`);
  if (SEPARATORS.includes(rest[0]!) || SEPARATORS.includes(rest[rest.length - 1]!)) {
    bad('must not begin or end with one of -._~/');
  }
  // The identifier becomes nested directories: no empty, `.` or `..` components (path traversal).
  for (const part of rest.split('/')) {
    if (part === '' || part === '.' || part === '..' || part.includes('..')) bad('empty, "." or ".." path component');
  }
  return base + rest;
}

/** The inverse of prefixToRelDir for directories found on disk. */
function relDirToPrefix(rel: string): string {
  return rel === DOCKER_DIR || rel.startsWith(`${DOCKER_DIR}/`) ? DOCKER_SCHEME + rel.slice(DOCKER_DIR.length + 1) : rel;
}

/** Normalises a fingerprint argument: lowercase hex, spaces removed. */
export function normaliseFingerprint(text: string): string {
  return text.replace(/\s+/g, '').replace(/^0x/i, '').toLowerCase();
}

/** `ABCD 1234 ...`: the fingerprint grouped in fours, as gpg shows it. */
export function formatFingerprint(fp: string): string {
  return fp.toUpperCase().replace(/(.{4})(?=.)/g, '$1 ');
}

/**
 * Parses one or more public keys, armored or binary. Refuses private keys. `what` names the
 * source in errors (a file path or URL).
 */
export async function readPublicKeys(bytes: Uint8Array, what: string): Promise<openpgp.PublicKey[]> {
  let keys: openpgp.Key[];
  try {
    const text = Buffer.from(bytes).toString('latin1');
    keys = text.trimStart().startsWith('-----BEGIN PGP')
      ? await openpgp.readKeys({ armoredKeys: text })
      : await openpgp.readKeys({ binaryKeys: bytes });
  } catch (err) {
    throw new TrustError(`${what}: not an OpenPGP public key: ${causeText(err)}`, { cause: err });
  }
  if (keys.length === 0) throw new TrustError(`${what}: no OpenPGP public key found`);
  for (const key of keys) {
    if (key.isPrivate()) {
      const fp = key.getFingerprint().toUpperCase();
      throw new TrustError(`${what}: refusing a private key (${fp}); only public keys are trusted`, {
        suggestions: [`gpg --armor --export ${fp} > ./key.asc`],
      });
    }
  }
  return keys as openpgp.PublicKey[];
}

/** The message of an openpgp error, lowercased first letter, without openpgp's wrapper prefixes. */
export function causeText(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err);
  return msg.charAt(0).toLowerCase() + msg.slice(1);
}

async function describeKey(key: openpgp.PublicKey): Promise<{ userIds: string[]; created: string; expires: string | null }> {
  let expires: string | null = null;
  try {
    const exp = await key.getExpirationTime();
    if (exp instanceof Date) expires = exp.toISOString();
  } catch {
    // a revoked or invalid key has no computable expiry
  }
  return { userIds: key.getUserIDs(), created: key.getCreationTime().toISOString(), expires };
}

export class Keystore {
  readonly systemDir: string;
  readonly localDir: string;
  private readonly sys: Syscalls;

  constructor(opts: KeystoreOptions) {
    this.systemDir = opts.systemDir;
    this.localDir = opts.localDir;
    this.sys = opts.sys;
  }

  private layerDir(layer: KeyLayer): string {
    return path.join(layer === 'system' ? this.systemDir : this.localDir, 'trustedkeys');
  }

  /** The file for a key at a target in a layer. */
  pathFor(layer: KeyLayer, target: TrustTarget, fingerprint: string): string {
    const base = this.layerDir(layer);
    return 'root' in target
      ? path.join(base, 'root.d', fingerprint)
      : path.join(base, 'prefix.d', prefixToRelDir(target.prefix), fingerprint);
  }

  /** Trusted keys for an image name: root keys, plus prefix keys whose prefix dir covers the name. */
  async keysForName(name: string): Promise<TrustedKey[]> {
    const rel = prefixToRelDir(name, 'image name');
    const entries = this.effective([
      ...this.scan('system', (dirRel) => rel.startsWith(dirRel)),
      ...this.scan('local', (dirRel) => rel.startsWith(dirRel)),
    ]);
    const keys = await Promise.all(entries.map((e) => this.load(e)));
    const seen = new Set<string>();
    return keys.filter((k) => (seen.has(k.fingerprint) ? false : (seen.add(k.fingerprint), true)));
  }

  /** Every effective key of both layers (local overrides and masks applied). */
  async list(): Promise<TrustedKeyInfo[]> {
    const entries = this.effective([...this.scan('system', () => true), ...this.scan('local', () => true)]);
    const keys = await Promise.all(entries.map((e) => this.load(e)));
    return keys.map(({ key: _key, ...info }) => info);
  }

  /** Adds one public key to the local layer, atomically, in armored form. */
  async add(armoredOrBinary: Uint8Array, target: TrustTarget): Promise<TrustedKeyInfo> {
    if ('prefix' in target) prefixToRelDir(target.prefix);
    const keys = await readPublicKeys(armoredOrBinary, 'key');
    if (keys.length !== 1) {
      throw new UsageError(`key: holds ${keys.length} keys; add them one at a time`);
    }
    const key = keys[0]!;
    const fingerprint = key.getFingerprint().toLowerCase();
    const file = this.pathFor('local', target, fingerprint);
    ensureDir(path.dirname(file));
    writeFileAtomic(this.sys, file, key.armor());
    return {
      fingerprint,
      scope: 'root' in target ? 'root' : 'prefix',
      prefix: 'root' in target ? null : target.prefix,
      layer: 'local',
      path: file,
      ...(await describeKey(key)),
    };
  }

  /**
   * Removes a key (any scope) by fingerprint or a unique fingerprint prefix of >= 8 hex digits.
   * Local files are deleted; a key that lives in the system layer is masked by an empty local file.
   */
  async remove(fingerprint: string): Promise<RemovedKeyInfo[]> {
    const wanted = normaliseFingerprint(fingerprint);
    if (!/^[0-9a-f]{8,64}$/.test(wanted)) {
      throw new UsageError(`remove key ${JSON.stringify(fingerprint)}: give a fingerprint or at least 8 of its hex digits`);
    }
    const all = await this.list();
    const matching = all.filter((k) => k.fingerprint.startsWith(wanted));
    const fingerprints = [...new Set(matching.map((k) => k.fingerprint))];
    if (fingerprints.length === 0) {
      throw new NotFoundError(`remove key ${wanted}: no trusted key has this fingerprint`, {
        suggestions: ['tspod trust list'],
      });
    }
    if (fingerprints.length > 1) {
      throw new AmbiguousError(`remove key ${wanted}: matches ${fingerprints.join(', ')}; give more digits`);
    }
    const removed: RemovedKeyInfo[] = [];
    for (const info of matching) {
      const target: TrustTarget = info.scope === 'root' ? { root: true } : { prefix: info.prefix! };
      const localPath = this.pathFor('local', target, info.fingerprint);
      if (info.layer === 'local') {
        fs.rmSync(info.path);
        this.sys.fsyncPath(path.dirname(info.path));
        // The local copy may have been hiding a system copy at the same place: mask that too.
        if (fs.existsSync(this.pathFor('system', target, info.fingerprint))) {
          writeFileAtomic(this.sys, localPath, '');
          removed.push({ ...info, action: 'masked', changedPath: localPath });
        } else {
          removed.push({ ...info, action: 'deleted', changedPath: info.path });
        }
      } else {
        ensureDir(path.dirname(localPath));
        // keystore.go: a zero-length local file named like a system key masks it.
        writeFileAtomic(this.sys, localPath, '');
        removed.push({ ...info, action: 'masked', changedPath: localPath });
      }
    }
    return removed;
  }

  /**
   * Lists key files of one layer. `enter(dirRel)` decides which prefix dirs to descend into
   * (rel path under prefix.d, '' for prefix.d itself), as rkt's filepath.Walk does.
   */
  private scan(layer: KeyLayer, enter: (dirRel: string) => boolean): Entry[] {
    const base = this.layerDir(layer);
    const out: Entry[] = [];
    const rootDir = path.join(base, 'root.d');
    for (const f of listFiles(rootDir)) {
      out.push({ layer, scope: 'root', prefix: null, fingerprint: f.name, path: f.path, size: f.size });
    }
    const prefixBase = path.join(base, 'prefix.d');
    const walk = (dirRel: string): void => {
      const dir = path.join(prefixBase, dirRel);
      let dirents: fs.Dirent[];
      try {
        dirents = fs.readdirSync(dir, { withFileTypes: true });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
        throw new TrustError(`read keystore ${dir}: ${causeText(err)}`, { cause: err });
      }
      for (const d of dirents.sort((a, b) => (a.name < b.name ? -1 : 1))) {
        if (d.name.startsWith('.')) continue;
        const childRel = dirRel === '' ? d.name : `${dirRel}/${d.name}`;
        const full = path.join(dir, d.name);
        const st = statOrUndefined(full);
        if (!st) continue;
        if (st.isDirectory()) {
          if (enter(childRel)) walk(childRel);
        } else if (st.isFile() && dirRel !== '') {
          out.push({ layer, scope: 'prefix', prefix: relDirToPrefix(dirRel), fingerprint: d.name, path: full, size: st.size });
        }
      }
    };
    walk('');
    return out;
  }

  /** Applies local-over-system overrides and masks; keeps a stable order (root first, then by prefix). */
  private effective(entries: Entry[]): Entry[] {
    const byPlace = new Map<string, Entry>();
    for (const layer of ['system', 'local'] as const) {
      for (const e of entries.filter((x) => x.layer === layer)) {
        const place = `${e.scope}\0${e.prefix ?? ''}\0${e.fingerprint}`;
        if (e.size === 0) {
          // Only a local empty file masks; an empty system file is nothing.
          byPlace.delete(place);
        } else {
          byPlace.set(place, e);
        }
      }
    }
    return [...byPlace.values()].sort((a, b) =>
      a.scope !== b.scope ? (a.scope === 'root' ? -1 : 1) : (a.prefix ?? '').localeCompare(b.prefix ?? '') || a.fingerprint.localeCompare(b.fingerprint),
    );
  }

  private async load(e: Entry): Promise<TrustedKey> {
    if (!FINGERPRINT_RE.test(e.fingerprint)) {
      throw new TrustError(`keystore file ${e.path}: the name is not a lowercase hex key fingerprint`, {
        suggestions: [`rm ${e.path}`],
      });
    }
    let bytes: Buffer;
    try {
      bytes = fs.readFileSync(e.path);
    } catch (err) {
      throw new TrustError(`read keystore file ${e.path}: ${causeText(err)}`, { cause: err });
    }
    const keys = await readPublicKeys(bytes, `keystore file ${e.path}`);
    if (keys.length !== 1) throw new TrustError(`keystore file ${e.path}: holds ${keys.length} keys, expected one`);
    const key = keys[0]!;
    const actual = key.getFingerprint().toLowerCase();
    if (actual !== e.fingerprint) {
      throw new TrustError(
        `keystore file ${e.path}: fingerprint mismatch: the file is named ${e.fingerprint} but holds key ${actual}`,
        { suggestions: [`mv ${e.path} ${path.join(path.dirname(e.path), actual)}`] },
      );
    }
    return {
      fingerprint: actual,
      scope: e.scope,
      prefix: e.prefix,
      layer: e.layer,
      path: e.path,
      ...(await describeKey(key)),
      key,
    };
  }
}

function statOrUndefined(p: string): fs.Stats | undefined {
  try {
    return fs.statSync(p);
  } catch {
    return undefined; // dangling symlink or raced removal
  }
}

function listFiles(dir: string): { name: string; path: string; size: number }[] {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new TrustError(`read keystore ${dir}: ${causeText(err)}`, { cause: err });
  }
  const out: { name: string; path: string; size: number }[] = [];
  for (const name of names.sort()) {
    if (name.startsWith('.')) continue;
    const full = path.join(dir, name);
    const st = statOrUndefined(full);
    if (st?.isFile()) out.push({ name, path: full, size: st.size });
  }
  return out;
}
