// The address pool of tspod's own networks: host-local leases on disk, in CNI host-local's layout
// (plugins/ipam/host-local/backend/disk): `<data dir>/networks/<network>/<ip>` holds the UUID of
// the pod that owns the address, and `last-reserved-ip` where the last search ended, so an
// address just freed is not handed out again at once (round robin, as host-local does).
// A lease is published with link(2) of a complete temporary file: link fails with EEXIST when the
// address is taken, so two `tspod run` racing for one address cannot both get it, and a crash of
// tspod never leaves a half-written lease. Leases outlive the process: the pod's exit path or `gc`
// releases them, and only a lease holding the releasing pod's UUID is removed. Leases are not
// fsynced: the veths and rules they go with do not survive a reboot either, and `gc` sweeps leases
// whose pod no longer exists (also one a power loss left empty).
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

import { formatIPv4, parseIPv4 } from './addresses.js';
import type { DirectNetwork } from './config.js';
import { NetworkSetupError } from './network-error.js';

export const NETWORKS_DIR = 'networks';
const LAST_RESERVED = 'last-reserved-ip';

export function poolDir(dataDir: string, network: string): string {
  return path.join(dataDir, NETWORKS_DIR, network);
}

/**
 * The order in which addresses are tried (pure): after `last`, wrapping around the range once,
 * without the gateway and the addresses in `used`.
 */
export function* leaseCandidates(network: Pick<DirectNetwork, 'rangeStart' | 'rangeEnd' | 'gateway'>, last: number | undefined, used: ReadonlySet<number>): Generator<number> {
  const { rangeStart, rangeEnd, gateway } = network;
  const size = rangeEnd - rangeStart + 1;
  const first = last === undefined || last < rangeStart || last >= rangeEnd ? rangeStart : last + 1;
  for (let i = 0; i < size; i++) {
    const candidate = rangeStart + ((first - rangeStart + i) % size);
    if (candidate !== gateway && !used.has(candidate)) yield candidate;
  }
}

export interface Lease {
  network: string;
  ip: number;
  /** The lease file. */
  file: string;
}

function readLast(dir: string): number | undefined {
  try {
    return parseIPv4(fs.readFileSync(path.join(dir, LAST_RESERVED), 'utf8').trim());
  } catch {
    return undefined; // absent or damaged: start at the beginning of the range
  }
}

function isIPv4Name(name: string): boolean {
  return /^\d{1,3}(\.\d{1,3}){3}$/.test(name);
}

/** Takes a free address of `network` for pod `uuid`; durable before it returns. */
export function allocateLease(dataDir: string, network: DirectNetwork, uuid: string): Lease {
  const dir = poolDir(dataDir, network.name);
  fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
  const used = new Set(fs.readdirSync(dir).filter(isIPv4Name).map((n) => parseIPv4(n)));
  const tmp = path.join(dir, `.lease-${crypto.randomBytes(6).toString('hex')}.tmp`);
  const fd = fs.openSync(tmp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o644);
  try {
    fs.writeFileSync(fd, `${uuid}\n`);
  } finally {
    fs.closeSync(fd);
  }
  try {
    for (const ip of leaseCandidates(network, readLast(dir), used)) {
      const file = path.join(dir, formatIPv4(ip));
      try {
        // link(2) fails with EEXIST when another pod holds the address: the lease is ours only if it succeeds.
        fs.linkSync(tmp, file);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EEXIST') continue;
        throw err;
      }
      try {
        fs.writeFileSync(path.join(dir, LAST_RESERVED), `${formatIPv4(ip)}\n`);
      } catch {
        // Only a hint for the next search.
      }
      return { network: network.name, ip, file };
    }
  } finally {
    fs.rmSync(tmp, { force: true });
  }
  throw new NetworkSetupError(`allocate an address on network ${network.name}: all ${network.rangeEnd - network.rangeStart + 1} addresses of ${formatIPv4(network.rangeStart)}-${formatIPv4(network.rangeEnd)} are leased`, {
    suggestions: ['tspod gc', `ls ${dir}`],
  });
}

/** Removes `file` when it is a lease of `uuid`; false when it is absent or another pod's. */
export function releaseLease(file: string, uuid: string): boolean {
  let owner: string;
  try {
    owner = fs.readFileSync(file, 'utf8').trim();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
  if (owner !== uuid) return false;
  fs.rmSync(file, { force: true });
  return true;
}

/**
 * Every lease of pod `uuid` in every pool of the data dir, also those a crash left before the
 * pod's network record was written; returns the files removed.
 */
export function releaseLeasesOf(dataDir: string, uuid: string): string[] {
  const root = path.join(dataDir, NETWORKS_DIR);
  let pools: string[];
  try {
    pools = fs.readdirSync(root);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const removed: string[] = [];
  for (const pool of pools) {
    let names: string[];
    try {
      names = fs.readdirSync(path.join(root, pool)).filter(isIPv4Name);
    } catch {
      continue; // not a pool directory
    }
    for (const name of names) {
      const file = path.join(root, pool, name);
      if (releaseLease(file, uuid)) removed.push(file);
    }
  }
  return removed;
}

/**
 * Removes the leases whose owner is not a pod any more (`podExists` false) or that name no pod at
 * all (empty after a power loss); returns the files removed. For `tspod gc`.
 */
export function sweepStaleLeases(dataDir: string, podExists: (uuid: string) => boolean): string[] {
  const root = path.join(dataDir, NETWORKS_DIR);
  const removed: string[] = [];
  let pools: string[];
  try {
    pools = fs.readdirSync(root);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return removed;
    throw err;
  }
  for (const pool of pools) {
    for (const [ip, owner] of listLeases(dataDir, pool)) {
      if (/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(owner) && podExists(owner)) continue;
      const file = path.join(root, pool, ip);
      // Only what was read: a lease released and re-taken meanwhile holds another owner.
      if (releaseLease(file, owner)) removed.push(file);
    }
  }
  return removed;
}

/** The leases of one pool: address -> owner UUID. */
export function listLeases(dataDir: string, network: string): Map<string, string> {
  const dir = poolDir(dataDir, network);
  const leases = new Map<string, string>();
  let names: string[];
  try {
    names = fs.readdirSync(dir).filter(isIPv4Name);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return leases;
    throw err;
  }
  for (const name of names) {
    try {
      leases.set(name, fs.readFileSync(path.join(dir, name), 'utf8').trim());
    } catch {
      // released meanwhile
    }
  }
  return leases;
}
