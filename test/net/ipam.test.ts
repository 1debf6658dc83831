// The host-local pool of tspod's own networks: the search order as data, leases on disk published
// with link(2) (a taken address is skipped, never overwritten), exhaustion, and releases that only
// ever remove the releasing pod's own leases.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { formatIPv4, parseIPv4, parseSubnet } from '../../src/net/addresses.js';
import type { DirectNetwork } from '../../src/net/config.js';
import { allocateLease, leaseCandidates, listLeases, poolDir, releaseLease, releaseLeasesOf, sweepStaleLeases } from '../../src/net/ipam.js';
import { NetworkSetupError } from '../../src/net/network-error.js';

const ip = parseIPv4;
const UUID_A = '11111111-1111-4111-8111-111111111111';
const UUID_B = '22222222-2222-4222-8222-222222222222';

function network(start = '10.9.0.1', end = '10.9.0.6'): DirectNetwork {
  return { name: 'default', bridge: 'br', subnet: parseSubnet('10.9.0.0/29'), gateway: ip('10.9.0.1'), rangeStart: ip(start), rangeEnd: ip(end), ipMasq: true };
}

describe('leaseCandidates (pure)', () => {
  const order = (last: string | undefined, used: string[] = []) => [...leaseCandidates(network(), last === undefined ? undefined : ip(last), new Set(used.map((s) => ip(s))))].map(formatIPv4);

  it('starts at the range start without a previous search and never offers the gateway', () => {
    expect(order(undefined)).toEqual(['10.9.0.2', '10.9.0.3', '10.9.0.4', '10.9.0.5', '10.9.0.6']);
  });

  it('goes round robin after the last reserved address (host-local), wrapping once, skipping used ones', () => {
    expect(order('10.9.0.4', ['10.9.0.6', '10.9.0.2'])).toEqual(['10.9.0.5', '10.9.0.3', '10.9.0.4']);
  });

  it('a last address outside the range restarts at the beginning', () => {
    expect(order('10.8.0.1')[0]).toBe('10.9.0.2');
  });
});

describe('leases on disk', () => {
  let dataDir: string;
  beforeEach(() => {
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tspod-ipam-'));
  });
  afterEach(() => fs.rmSync(dataDir, { recursive: true, force: true }));

  it('writes networks/<name>/<ip> holding the pod uuid, remembers the last address, leaves no temp file', () => {
    const lease = allocateLease(dataDir, network(), UUID_A);
    expect(formatIPv4(lease.ip)).toBe('10.9.0.2');
    expect(lease.file).toBe(path.join(poolDir(dataDir, 'default'), '10.9.0.2'));
    expect(fs.readFileSync(lease.file, 'utf8')).toBe(`${UUID_A}\n`);
    expect(fs.readdirSync(poolDir(dataDir, 'default')).sort()).toEqual(['10.9.0.2', 'last-reserved-ip']);
    const second = allocateLease(dataDir, network(), UUID_B);
    expect(formatIPv4(second.ip)).toBe('10.9.0.3');
    expect(listLeases(dataDir, 'default')).toEqual(new Map([['10.9.0.2', UUID_A], ['10.9.0.3', UUID_B]]));
  });

  it('skips an address whose lease file exists (EEXIST from link), whatever last-reserved-ip says', () => {
    const dir = poolDir(dataDir, 'default');
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, '10.9.0.2'), `${UUID_B}\n`);
    fs.writeFileSync(path.join(dir, 'last-reserved-ip'), 'garbage');
    expect(formatIPv4(allocateLease(dataDir, network(), UUID_A).ip)).toBe('10.9.0.3');
    expect(fs.readFileSync(path.join(dir, '10.9.0.2'), 'utf8')).toBe(`${UUID_B}\n`);
  });

  it('an exhausted pool is an error naming the range, with tspod gc as the fix', () => {
    const small = network('10.9.0.2', '10.9.0.3');
    allocateLease(dataDir, small, UUID_A);
    allocateLease(dataDir, small, UUID_A);
    try {
      allocateLease(dataDir, small, UUID_B);
      expect.fail('allocated');
    } catch (err) {
      expect(err).toBeInstanceOf(NetworkSetupError);
      expect((err as Error).message).toBe('allocate an address on network default: all 2 addresses of 10.9.0.2-10.9.0.3 are leased');
      expect((err as NetworkSetupError).suggestions[0]).toBe('tspod gc');
    }
    expect(fs.readdirSync(poolDir(dataDir, 'default')).filter((n) => n.includes('tmp'))).toEqual([]);
  });

  it('releaseLease removes only a lease of the releasing pod', () => {
    const lease = allocateLease(dataDir, network(), UUID_A);
    expect(releaseLease(lease.file, UUID_B)).toBe(false);
    expect(fs.existsSync(lease.file)).toBe(true);
    expect(releaseLease(lease.file, UUID_A)).toBe(true);
    expect(fs.existsSync(lease.file)).toBe(false);
    expect(releaseLease(lease.file, UUID_A)).toBe(false);
  });

  it('gc\'s sweep removes leases of pods that no longer exist and empty ones (a power loss), keeps the others', () => {
    const live = allocateLease(dataDir, network(), UUID_A);
    const gone = allocateLease(dataDir, network(), UUID_B);
    const empty = path.join(poolDir(dataDir, 'default'), '10.9.0.6');
    fs.writeFileSync(empty, '');
    expect(sweepStaleLeases(dataDir, (uuid) => uuid === UUID_A).sort()).toEqual([gone.file, empty].sort());
    expect(fs.existsSync(live.file)).toBe(true);
  });

  it('releaseLeasesOf finds a pod\'s leases in every pool (a crash before the record named them)', () => {
    const a = allocateLease(dataDir, network(), UUID_A);
    const b = allocateLease(dataDir, { ...network(), name: 'other' }, UUID_A);
    const keep = allocateLease(dataDir, network(), UUID_B);
    expect(releaseLeasesOf(dataDir, UUID_A).sort()).toEqual([a.file, b.file].sort());
    expect(fs.existsSync(keep.file)).toBe(true);
    expect(releaseLeasesOf(path.join(dataDir, 'nonexistent'), UUID_A)).toEqual([]);
  });
});
