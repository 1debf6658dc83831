// bench/pod-start/net-setup.mjs: the network part of a pod start, alone, in one process (no Node
// start-up counted): tspod's direct setup of the default network (rtnetlink through koffi, plus
// the iptables-restore or nft of its masquerade rule) against the CNI plugin cycle on the same
// kind of network (Debian's bridge + host-local with ipMasq, run with CNI_COMMAND=ADD and DEL,
// as crun/runc users do), each on a fresh network namespace per iteration.
// Usage (root, after a build): node bench/pod-start/net-setup.mjs [RUNS]   Prints medians in ms.
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { invokeCni } from '../../dist/src/net/cni.js';
import { PodNetworkSession } from '../../dist/src/net/pod-network.js';
import { libcSyscalls as sys } from '../../dist/src/sys/libc.js';
import { CLONE_NEWNET } from '../../dist/src/sys/types.js';

const runs = Number(process.argv[2] ?? 30);
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'tspod-bench-net-'));
const localConfig = path.join(work, 'etc');
fs.mkdirSync(path.join(localConfig, 'net.d'), { recursive: true });
// A bench network of its own, never the user's tspod0.
const direct = { cniVersion: '0.4.0', name: 'default', type: 'bridge', bridge: 'tspbench0', isGateway: true, ipMasq: true, ipam: { type: 'host-local', subnet: '10.253.0.0/16' } };
fs.writeFileSync(path.join(localConfig, 'net.d', 'default.conf'), JSON.stringify(direct));
const cniConfig = { cniVersion: '0.4.0', name: 'benchcni', type: 'bridge', bridge: 'tspbench1', isGateway: true, ipMasq: true, ipam: { type: 'host-local', subnet: '10.252.0.0/16', dataDir: path.join(work, 'cni'), routes: [{ dst: '0.0.0.0/0' }] } };
const manifest = { acKind: 'PodManifest', acVersion: '0.8.11', apps: [] };
const hostNet = fs.openSync('/proc/thread-self/ns/net', 'r');

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const ms = (t0) => Number(process.hrtime.bigint() - t0) / 1e6;

/** A fresh network namespace for the main thread; returns an fd of it, the main thread back home. */
function freshNetns() {
  sys.unshare(CLONE_NEWNET);
  const fd = fs.openSync('/proc/thread-self/ns/net', 'r');
  sys.setns(hostNet, CLONE_NEWNET);
  return fd;
}

const results = { directUp: [], directDown: [], cniAdd: [], cniDel: [] };
for (let i = 0; i < runs + 2; i++) {
  // tspod's direct path: the session as `tspod run` drives it.
  const uuid = crypto.randomUUID();
  const podDir = path.join(work, 'pods', uuid);
  fs.mkdirSync(podDir, { recursive: true });
  fs.writeFileSync(path.join(podDir, 'pod'), JSON.stringify(manifest));
  const session = PodNetworkSession.forLaunch({ dataDir: work, sys, config: { localConfig, systemConfig: path.join(work, 'usr') } }, podDir, { kind: 'default' });
  sys.unshare(CLONE_NEWNET);
  session.enterPod();
  let t0 = process.hrtime.bigint();
  await session.bringUp(undefined);
  const up = ms(t0);
  t0 = process.hrtime.bigint();
  await session.finish();
  const down = ms(t0);

  // The CNI cycle on a fresh namespace.
  const netnsFd = freshNetns();
  const invocation = { containerId: uuid, netns: `/proc/${process.pid}/fd/${netnsFd}`, ifName: 'eth0', path: ['/usr/lib/cni'], config: cniConfig };
  t0 = process.hrtime.bigint();
  const result = await invokeCni({ ...invocation, command: 'ADD' });
  const add = ms(t0);
  t0 = process.hrtime.bigint();
  await invokeCni({ ...invocation, command: 'DEL', prevResult: result.raw });
  const del = ms(t0);
  fs.closeSync(netnsFd);
  if (i < 2) continue; // warm-up
  results.directUp.push(up);
  results.directDown.push(down);
  results.cniAdd.push(add);
  results.cniDel.push(del);
}

for (const bridge of ['tspbench0', 'tspbench1']) {
  try {
    execFileSync('ip', ['link', 'del', bridge], { stdio: 'ignore' });
  } catch {
    // not created
  }
}
fs.rmSync(work, { recursive: true, force: true });

const up = median(results.directUp);
const add = median(results.cniAdd);
console.log(`runs: ${runs} (medians)`);
console.log(`tspod direct setup (netlink + firewall rule): ${up.toFixed(1)} ms   teardown: ${median(results.directDown).toFixed(1)} ms`);
console.log(`CNI bridge+host-local ADD:                   ${add.toFixed(1)} ms   DEL: ${median(results.cniDel).toFixed(1)} ms`);
console.log(`CNI ADD / tspod direct setup: ${(add / up).toFixed(1)}x   (full cycle ${(add + median(results.cniDel)).toFixed(1)} ms vs ${(up + median(results.directDown)).toFixed(1)} ms)`);
