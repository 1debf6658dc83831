// Test helper: drives the real GnuPG (`gpg`) in a throw-away GNUPGHOME to make the keys and
// signatures that tspod's trust code must accept or refuse. Keys and signatures in tests are
// always made by GnuPG, never by openpgp.js, so a bug shared by signer and verifier cannot hide.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { hasCommand } from './tools.js';

export interface GpgKey {
  /** Uppercase 40-hex fingerprint as gpg prints it. */
  fingerprint: string;
  /** Lowercase fingerprint: the keystore file name. */
  fp: string;
  /** 16-hex long key id of the primary key (uppercase). */
  keyId: string;
  userId: string;
}

export interface GenKeyOptions {
  /** `rsa2048`, `ed25519`, ... (gpg --quick-gen-key algo). */
  algo?: string;
  /** gpg expiry spec: `never`, `1y`, `30d`. */
  expire?: string;
  /** Pretend the clock reads this time (unix seconds) while generating: makes old or expired keys. */
  at?: number;
}

export const hasGpg = hasCommand('gpg');

/** Unix seconds `days` ago. */
export function daysAgo(days: number): number {
  return Math.floor(Date.now() / 1000) - days * 86400;
}

/** A temporary GnuPG home with helpers; call `cleanup()` in afterAll. */
export class GpgHome {
  readonly home: string;

  constructor() {
    this.home = fs.mkdtempSync(path.join(os.tmpdir(), 'tspod-gpg-'));
    fs.chmodSync(this.home, 0o700);
  }

  /** Runs gpg with this home in batch mode; `at` fakes the system time (frozen). */
  run(args: string[], opts: { at?: number; input?: string | Uint8Array } = {}): Buffer {
    const base = ['--homedir', this.home, '--batch', '--yes', '--no-tty', '--pinentry-mode', 'loopback', '--passphrase', ''];
    // --ignore-time-conflict: lets a faked clock sign with a key "created in the future".
    if (opts.at !== undefined) base.push('--faked-system-time', `${opts.at}!`, '--ignore-time-conflict');
    return execFileSync('gpg', [...base, ...args], {
      input: opts.input,
      stdio: ['pipe', 'pipe', 'pipe'],
      // A gpg waiting on its agent would block the test worker (and vitest's own timeouts).
      timeout: 60_000,
      env: { ...process.env, GNUPGHOME: this.home },
    });
  }

  genKey(userId: string, opts: GenKeyOptions = {}): GpgKey {
    this.run(['--quick-gen-key', userId, opts.algo ?? 'ed25519', 'sign', opts.expire ?? 'never'], { at: opts.at });
    const key = this.keys().find((k) => k.userId === userId);
    if (!key) throw new Error(`gpg did not create ${userId}`);
    return key;
  }

  /** Adds a signing subkey; returns its 16-hex key id (uppercase). */
  addSigningSubkey(fingerprint: string, algo = 'ed25519', at?: number): string {
    const before = new Set(this.subkeyIds(fingerprint));
    this.run(['--quick-add-key', fingerprint, algo, 'sign', 'never'], { at });
    const added = this.subkeyIds(fingerprint).filter((id) => !before.has(id));
    if (added.length !== 1) throw new Error('gpg did not add one subkey');
    return added[0]!;
  }

  subkeyIds(fingerprint: string): string[] {
    const out = this.run(['--with-colons', '--list-keys', fingerprint]).toString();
    return out
      .split('\n')
      .filter((l) => l.startsWith('sub:'))
      .map((l) => l.split(':')[4]!);
  }

  keys(): GpgKey[] {
    const out = this.run(['--with-colons', '--list-keys']).toString();
    const result: GpgKey[] = [];
    let current: Partial<GpgKey> | undefined;
    for (const line of out.split('\n')) {
      const f = line.split(':');
      if (f[0] === 'pub') {
        current = { keyId: f[4]! };
      } else if (f[0] === 'fpr' && current && current.fingerprint === undefined) {
        current.fingerprint = f[9]!;
        current.fp = f[9]!.toLowerCase();
      } else if (f[0] === 'uid' && current && current.userId === undefined) {
        current.userId = f[9]!;
        result.push(current as GpgKey);
      }
    }
    return result;
  }

  /** The armored public key (with its revocations, subkeys and current self-signatures). */
  exportPublic(fingerprint: string): Buffer {
    return this.run(['--armor', '--export', fingerprint]);
  }

  exportSecret(fingerprint: string): Buffer {
    return this.run(['--armor', '--export-secret-keys', fingerprint]);
  }

  /** An ASCII-armored detached signature of `file` by `signer` (`KEYID!` forces a subkey). */
  signDetached(file: string, signer: string, opts: { at?: number; armor?: boolean } = {}): Buffer {
    const args = ['--detach-sign', '-u', signer, '--output', '-'];
    if (opts.armor !== false) args.unshift('--armor');
    return this.run([...args, file], { at: opts.at });
  }

  /** Revokes the key with the certificate gpg stored at generation time. */
  revoke(fingerprint: string): void {
    const certPath = path.join(this.home, 'openpgp-revocs.d', `${fingerprint}.rev`);
    // gpg prefixes the armor line with ':' so an accidental import does nothing.
    const cert = fs.readFileSync(certPath, 'utf8').replace(/^:-----BEGIN/m, '-----BEGIN');
    this.run(['--import'], { input: cert });
  }

  /** Sets a new expiry for the primary key (optionally at a faked time). */
  setExpire(fingerprint: string, expire: string, at?: number): void {
    this.run(['--quick-set-expire', fingerprint, expire], { at });
  }

  cleanup(): void {
    // gpg-agent may hold sockets in the home; ask it to leave before removing the dir.
    try {
      execFileSync('gpgconf', ['--homedir', this.home, '--kill', 'gpg-agent'], { stdio: 'ignore' });
    } catch {
      // no agent running
    }
    fs.rmSync(this.home, { recursive: true, force: true });
  }
}
