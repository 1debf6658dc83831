// Test support for pod networking: the `web` image (fixtures/net/web: the demo image's busybox
// with a manifest that has ports), and a throw-away default network for a TspodEnv (its own bridge
// and subnet in the env's local config `net.d/default.conf`, so tests never touch a real tspod0),
// removed again by `removeTestNetwork`. No vitest import: usable from the bench scripts too.
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { assembleCase } from '../../fixtures/build-fixtures.js';
import { iptablesDeletions, nftDeletion } from '../../src/net/firewall.js';
import { readNetInfo } from '../../src/net/record.js';
import { findProgram, hasProgram } from '../../src/net/run-command.js';

const NET_FIXTURES = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../fixtures/net');

/** Builds `outDir/web.aci`: the demo case with fixtures/net/web's manifest and files on top. */
export function buildWebImage(outDir: string): string {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'tspod-net-fixture-'));
  try {
    const dir = assembleCase('demo', path.join(work, 'web'));
    fs.cpSync(path.join(NET_FIXTURES, 'web'), dir, { recursive: true });
    fs.mkdirSync(outDir, { recursive: true });
    const out = path.join(outDir, 'web.aci');
    execFileSync('actool', ['build', '--overwrite', '--owner-root', dir, out], { stdio: ['ignore', 'pipe', 'pipe'] });
    return out;
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

export interface TestNetwork {
  bridge: string;
  /** e.g. 10.254.123.0/24 */
  subnet: string;
  /** The bridge's address (the pods' gateway). */
  gateway: string;
  /** `net.d/default.conf` written. */
  file: string;
  /** The claimed third octet (released by removeTestNetwork). */
  octet: number;
}

const CLAIMS = path.join(os.tmpdir(), 'tspod-test-networks');

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Claims a third octet for a test network (10.254.N.0/24) among the test processes of this
 * machine: `$TMPDIR/tspod-test-networks/N` made with O_EXCL holds the claimer's pid; a claim whose
 * process is gone is taken over. Test files run in parallel, each with its own networks.
 */
export function claimTestOctet(): number {
  fs.mkdirSync(CLAIMS, { recursive: true });
  const start = crypto.randomInt(224);
  for (let i = 0; i < 224; i++) {
    const octet = 16 + ((start + i) % 224);
    const file = path.join(CLAIMS, String(octet));
    try {
      fs.writeFileSync(file, `${process.pid}\n`, { flag: 'wx' });
      return octet;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const owner = Number(fs.readFileSync(file, 'utf8').trim());
      if (Number.isInteger(owner) && owner > 0 && isAlive(owner)) continue;
      fs.rmSync(file, { force: true }); // a crashed test run's claim
      i--;
    }
  }
  throw new Error('no free test network octet in 10.254.16-239.0/24');
}

/**
 * A default network of its own for a test environment: bridge `tsptN...` and 10.254.N.0/24 (N
 * claimed by claimTestOctet), written to `<localConfig>/net.d/default.conf`, so a test never
 * touches a real `tspod0`. Without masquerading, so the pods of suites that do not test
 * networking add no firewall rules and do not turn on the host's ip_forward; `extra` merges into
 * the configuration (`{ ipMasq: true, tspod: { firewall: 'nftables' } }`).
 */
export function writeTestNetwork(localConfig: string, extra: Record<string, unknown> = {}): TestNetwork {
  const octet = claimTestOctet();
  const bridge = `tspt${octet}${crypto.randomBytes(2).toString('hex')}`;
  const subnet = `10.254.${octet}.0/24`;
  const config = { cniVersion: '0.4.0', name: 'default', type: 'bridge', bridge, isGateway: true, ipMasq: false, ipam: { type: 'host-local', subnet }, ...extra };
  const dir = path.join(localConfig, 'net.d');
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, 'default.conf');
  fs.writeFileSync(file, `${JSON.stringify(config, null, 2)}\n`);
  return { bridge, subnet, gateway: `10.254.${octet}.1`, file, octet };
}

/** Deletes the test bridge (when it exists) and releases its octet. */
export function removeTestNetwork(network: TestNetwork | undefined): void {
  if (network === undefined) return;
  if (fs.existsSync(`/sys/class/net/${network.bridge}`)) {
    try {
      execFileSync('ip', ['link', 'del', network.bridge], { stdio: 'ignore' });
    } catch {
      // already gone
    }
  }
  fs.rmSync(path.join(CLAIMS, String(network.octet)), { force: true });
}

/** The host's links whose names start with `prefix` (veth host ends are `tsp` + 12 hex digits of the pod UUID). */
export function hostLinks(prefix: string): string[] {
  return fs.readdirSync('/sys/class/net').filter((n) => n.startsWith(prefix));
}

/**
 * What pods of a test data dir left on the host after a SIGKILL without `tspod gc`: their
 * iptables rules and nftables tables, found through the pods' `net-info.json`. Synchronous, for
 * TspodEnv.cleanup(). Veths go with the pods' namespaces and leases with the data dir.
 */
export function purgeTestNetworkState(dataDir: string): void {
  const uuids: string[] = [];
  const podsDir = path.join(dataDir, 'pods');
  for (const state of fs.existsSync(podsDir) ? fs.readdirSync(podsDir) : []) {
    const stateDir = path.join(podsDir, state);
    if (!fs.statSync(stateDir).isDirectory()) continue;
    for (const uuid of fs.readdirSync(stateDir)) {
      const info = readNetInfo(path.join(stateDir, uuid));
      if (info !== undefined && info.state !== 'down') uuids.push(info.uuid);
    }
  }
  if (uuids.length === 0) return;
  if (hasProgram('iptables-save')) {
    const saved = execFileSync(findProgram('iptables-save')!, { encoding: 'utf8' });
    const deletions = uuids.map((uuid) => iptablesDeletions(saved, uuid)).join('');
    if (deletions !== '') execFileSync(findProgram('iptables-restore')!, ['-w', '--noflush'], { input: deletions, stdio: ['pipe', 'ignore', 'ignore'] });
  }
  if (hasProgram('nft')) execFileSync(findProgram('nft')!, ['-f', '-'], { input: uuids.map(nftDeletion).join(''), stdio: ['pipe', 'ignore', 'ignore'] });
}
