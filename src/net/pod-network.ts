// stage0's side of a pod's networks (`--net=default` and named networks): what to create is
// planned as data (netlink requests, sysctls, firewall rules), written to the pod's record
// (record.ts) before anything exists, then applied; the exit path and `gc` undo it from the
// record. The built-in `default` network is set up directly through rtnetlink (netlink.ts) with
// addresses from tspod's own pool (ipam.ts); other networks run their CNI plugins (cni.ts).
//
// Who does what, given that Node changes namespaces per thread (linux-from-node.md): stage0 opens
// its network and PID namespaces (`/proc/thread-self/ns/{net,pid}`) and a netlink socket in the
// host's network namespace before its main thread unshares the pod's namespaces; right after the
// unshare it opens the new network namespace and a second netlink socket there. It then starts
// the init (which thereby lives in the pod's namespaces) and setns(2)s its main thread back to
// the host's network and PID namespaces: children forked from then on (firewall tools, CNI
// plugins, the teardown's) start in the host's namespaces, as the plugins require, and still
// fork after the pod's PID 1 has exited (a dead PID namespace refuses forks with ENOMEM).
// Both sides are then configured while the init starts Node (stage0 and init overlap), and the
// init waits for `net-ready` before it starts any app (stage1/net-ready.ts, stage1/README.md).
// Each netlink socket keeps acting on its own namespace (netlink(7)), so one thread does both
// sides; the pod's namespace fd keeps the namespace alive for CNI DEL on the exit path
// (CNI_NETNS=/proc/<stage0 pid>/fd/<fd>).
import fs from 'node:fs';
import path from 'node:path';

import type { App, ImageManifest, PodManifest } from '../appc/types.js';
import { ENV_NETWORK_PENDING, NETWORK_READY_SIGNAL, POD_FILES, type NetMode } from '../../stage1/contract.js';
import { CLONE_NEWNET, CLONE_NEWPID, SyscallError, type Syscalls } from '../sys/types.js';
import { broadcastOf, formatIPv4, formatSubnet } from './addresses.js';
import { addNetwork, cniArgsOf, CniAddError, cniPath, delNetwork, pluginConfigs } from './cni.js';
import { loadNetworkConfigs, resolvePodNetworks, type ConfigLayers, type DirectNetwork, type FirewallBackendName, type PodNetworkSpec } from './config.js';
import { addPodRules, chooseBackend, needsRules, removePodRules, type ForwardedPort, type PodFirewallPlan } from './firewall.js';
import { allocateLease, releaseLease, releaseLeasesOf } from './ipam.js';
import { RtnetlinkSocket, type NetlinkRequest } from './netlink.js';
import { NetworkConfigError, NetworkSetupError } from './network-error.js';
import { NET_INFO_VERSION, netInfoPath, readNetInfo, type NetInfo, type NetInfoNetwork } from './record.js';
import { hasProgram, runCommand, type CommandRunner } from './run-command.js';

export interface PodNetworkContext {
  /** The data dir (leases live in `networks/`). */
  dataDir: string;
  sys: Syscalls;
  run?: CommandRunner;
  /** Whether a program is installed (firewall backend choice). */
  has?: (program: string) => boolean;
  /** tspod's environment (CNI_PATH, PATH for the plugins). */
  env?: NodeJS.ProcessEnv;
  /** Warnings (default: `tspod: warning: ...` on stderr). */
  warn?: (message: string) => void;
}

function warnOnStderr(message: string): void {
  process.stderr.write(`tspod: warning: ${message}\n`);
}

// -------------------------------------------------------------------------------------------------
// Planning (pure)

/** The host end of a pod's veth pair: `tsp` and 12 hex digits of the UUID (IFNAMSIZ allows 15). */
export function hostVethName(uuid: string): string {
  return `tsp${uuid.replace(/-/g, '').slice(0, 12)}`;
}

/** The app's description: the pod manifest's override, else the image's (spec/pods.md). */
function appOf(manifest: PodManifest, images: Readonly<Record<string, ImageManifest>>, name: string): App | undefined {
  return manifest.apps.find((a) => a.name === name)?.app ?? images[name]?.app;
}

/**
 * `--port NAME:HOSTPORT[:HOSTIP]` (the pod manifest's `ports`) against the apps' ports: one
 * forwarded port per pod port (`count` > 1 forwards a range, port by port).
 */
export function resolveForwardedPorts(manifest: PodManifest, images: Readonly<Record<string, ImageManifest>>): ForwardedPort[] {
  const forwarded: ForwardedPort[] = [];
  for (const exposed of manifest.ports ?? []) {
    const candidates = manifest.apps.flatMap((a) => (appOf(manifest, images, a.name)?.ports ?? []).filter((p) => p.name === exposed.name));
    const port = exposed.podPort ?? candidates[0];
    if (port === undefined) throw new NetworkConfigError(`--port ${exposed.name}:${exposed.hostPort}: no app of the pod has a port named "${exposed.name}"`);
    const protocol = port.protocol.toLowerCase();
    if (protocol !== 'tcp' && protocol !== 'udp') throw new NetworkConfigError(`--port ${exposed.name}: protocol ${port.protocol} cannot be forwarded (tcp or udp)`);
    const count = port.count ?? 1;
    if (exposed.hostPort + count - 1 > 65535) throw new NetworkConfigError(`--port ${exposed.name}:${exposed.hostPort}: the range of ${count} ports goes beyond 65535`);
    for (let i = 0; i < count; i++) {
      const entry: ForwardedPort = { name: exposed.name, protocol, hostPort: exposed.hostPort + i, podPort: port.port + i };
      if (exposed.hostIP !== undefined) entry.hostIP = exposed.hostIP;
      forwarded.push(entry);
    }
  }
  return forwarded;
}

export interface PlannedNetlink {
  /** Which socket: the host's network namespace or the pod's. */
  side: 'host' | 'pod';
  request: NetlinkRequest;
  /** The errno that means "already there" and is fine (the bridge and its address are shared). */
  tolerate?: 'EEXIST';
}

/** The rtnetlink requests of a direct network (bridge, veth pair, address, route), in order. */
export function planDirectNetwork(network: DirectNetwork, ifName: string, uuid: string, ip: number, podNetnsFd: number): PlannedNetlink[] {
  const mtu = network.mtu === undefined ? {} : { mtu: network.mtu };
  const hostVeth = hostVethName(uuid);
  const prefixLength = network.subnet.prefixLength;
  return [
    // The bridge is created by whichever pod needs it first; later pods find it there.
    { side: 'host', request: { op: 'add-bridge', name: network.bridge, ...mtu }, tolerate: 'EEXIST' },
    { side: 'host', request: { op: 'add-address', link: { name: network.bridge }, address: network.gateway, prefixLength, broadcast: broadcastOf(network.subnet) }, tolerate: 'EEXIST' },
    { side: 'host', request: { op: 'set-link', link: { name: network.bridge }, up: true } },
    // Created from the host side with its peer born in the pod's namespace (IFLA_NET_NS_FD), so
    // the pair never exists with both ends on the host.
    { side: 'host', request: { op: 'add-veth', name: hostVeth, peer: ifName, peerNetnsFd: podNetnsFd, ...mtu } },
    { side: 'host', request: { op: 'set-link', link: { name: hostVeth }, master: network.bridge, up: true } },
    { side: 'pod', request: { op: 'add-address', link: { name: ifName }, address: ip, prefixLength, broadcast: broadcastOf(network.subnet) } },
    { side: 'pod', request: { op: 'set-link', link: { name: ifName }, up: true } },
    { side: 'pod', request: { op: 'add-default-route', link: { name: ifName }, gateway: network.gateway } },
  ];
}

/** The host sysctls the pod's networks need (written in the host's network namespace). */
export function planSysctls(networks: readonly NetInfoNetwork[], ports: readonly ForwardedPort[], masquerade: boolean): { path: string; value: string }[] {
  const sysctls: { path: string; value: string }[] = [];
  // Routing between the bridge and the outside (masquerade) and DNAT to the pods need forwarding.
  if (masquerade || ports.length > 0) sysctls.push({ path: '/proc/sys/net/ipv4/ip_forward', value: '1' });
  const target = networks.find((n) => n.ip !== undefined);
  // DNAT of connections to 127.0.0.1: the kernel routes a loopback source out of an interface only
  // with route_localnet on it (Documentation/networking/ip-sysctl.rst).
  if (ports.length > 0 && target?.bridge !== undefined) sysctls.push({ path: `/proc/sys/net/ipv4/conf/${target.bridge}/route_localnet`, value: '1' });
  return sysctls;
}

/** The pod's firewall rules: masquerading on the direct network, ports to the first network's address. */
export function planFirewall(uuid: string, networks: readonly NetInfoNetwork[], directNetwork: DirectNetwork | undefined, ports: readonly ForwardedPort[]): PodFirewallPlan {
  const plan: PodFirewallPlan = { uuid };
  const direct = networks.find((n) => n.kind === 'direct' && n.ip !== undefined);
  if (direct !== undefined && directNetwork?.ipMasq === true) plan.masquerade = { podIP: direct.ip!, subnet: formatSubnet(directNetwork.subnet) };
  const target = networks.find((n) => n.ip !== undefined);
  if (ports.length > 0) {
    if (target === undefined) throw new NetworkSetupError(`forward ports of pod ${uuid}: none of its networks gave it an IPv4 address`);
    plan.forward = { podIP: target.ip!, ports: [...ports] };
  }
  return plan;
}

// -------------------------------------------------------------------------------------------------
// Apply

function readImageManifests(podDir: string, manifest: PodManifest): Record<string, ImageManifest> {
  const images: Record<string, ImageManifest> = {};
  for (const app of manifest.apps) {
    try {
      images[app.name] = JSON.parse(fs.readFileSync(path.join(podDir, POD_FILES.appsDir, app.name, 'image-manifest'), 'utf8')) as ImageManifest;
    } catch {
      // prepare validated the pod; an app without a stored image manifest has no ports to forward
    }
  }
  return images;
}

function applyNetlink(sockets: { host: RtnetlinkSocket; pod: RtnetlinkSocket }, steps: readonly PlannedNetlink[]): void {
  for (const step of steps) {
    try {
      sockets[step.side].request(step.request);
    } catch (err) {
      if (step.tolerate !== undefined && err instanceof SyscallError && err.code === step.tolerate) continue;
      throw err;
    }
  }
}

/** Writes a sysctl unless it already has the value (reading is cheaper and leaves no trace). */
function writeSysctl(file: string, value: string): void {
  if (fs.readFileSync(file, 'utf8').trim() === value) return;
  fs.writeFileSync(file, value);
}

/**
 * The networks of one `tspod run`, from before its unshare until the pod has exited. Call order:
 * `open` (host namespaces) -> the caller unshares -> `enterPod` -> the caller starts the init ->
 * `returnToHost` -> `setUp` -> ... the pod runs ... -> `tearDown`.
 */
export class PodNetworkSession {
  private podNetFd: number | undefined;
  private podSocket: RtnetlinkSocket | undefined;
  private hostSocket: RtnetlinkSocket | undefined;
  private readonly run: CommandRunner;
  private setupError: unknown;
  /** The firewall rules setUp added (the exit path deletes exactly these). */
  private firewallPlan: PodFirewallPlan | undefined;

  private constructor(
    private readonly ctx: PodNetworkContext,
    private readonly podDir: string,
    private readonly uuid: string,
    private readonly specs: PodNetworkSpec[],
    private readonly ports: ForwardedPort[],
    private info: NetInfo,
    private readonly hostNetFd: number,
    private readonly hostPidFd: number,
  ) {
    this.run = ctx.run ?? runCommand;
  }

  /**
   * Reads the network configurations, resolves the forwarded ports, picks the firewall tool (so a
   * bad request fails before anything exists) and opens the host's namespaces and netlink socket;
   * undefined for `--net=host` and `--net=none`. Must run on the main thread before it unshares
   * the pod's namespaces.
   */
  static open(ctx: PodNetworkContext & { config: ConfigLayers }, podDir: string, uuid: string, net: NetMode, manifest: PodManifest): PodNetworkSession | undefined {
    if (net.kind === 'host' || net.kind === 'none') return undefined;
    const specs = resolvePodNetworks(net, loadNetworkConfigs(ctx.config))!;
    // The image manifests are read only when there are ports to resolve: this runs before the init starts.
    const ports = (manifest.ports?.length ?? 0) > 0 ? resolveForwardedPorts(manifest, readImageManifests(podDir, manifest)) : [];
    const direct = specs.find((s): s is Extract<PodNetworkSpec, { kind: 'direct' }> => s.kind === 'direct');
    let firewall: FirewallBackendName | undefined;
    if (ports.length > 0) firewall = chooseBackend(direct?.network.firewall, ctx.has ?? hasProgram);
    else if (direct?.network.ipMasq === true) {
      try {
        firewall = chooseBackend(direct.network.firewall, ctx.has ?? hasProgram);
      } catch (err) {
        // Every pod joins the default network: without a firewall tool it still works, unmasqueraded.
        (ctx.warn ?? warnOnStderr)(`${(err as Error).message}; the pod's traffic leaves the host unmasqueraded`);
        direct.network = { ...direct.network, ipMasq: false };
      }
    }
    const env = ctx.env ?? process.env;
    const networks = specs.map((spec): NetInfoNetwork =>
      spec.kind === 'cni'
        ? { name: spec.name, kind: 'cni', ifName: spec.ifName, config: spec.config, cniPath: cniPath(env), ...(spec.args === undefined ? {} : { cniArgs: cniArgsOf(spec.args)! }) }
        : { name: spec.name, kind: 'direct', ifName: spec.ifName, bridge: spec.network.bridge, hostVeth: hostVethName(uuid) },
    );
    // Leases and the record come after the init has started (setUp), off the start's critical path.
    const info: NetInfo = { version: NET_INFO_VERSION, uuid, state: 'setting-up', networks, ports, ...(firewall === undefined ? {} : { firewall }) };
    const hostNetFd = fs.openSync('/proc/thread-self/ns/net', 'r');
    const hostPidFd = fs.openSync('/proc/thread-self/ns/pid', 'r');
    const session = new PodNetworkSession(ctx, podDir, uuid, specs, ports, info, hostNetFd, hostPidFd);
    session.hostSocket = RtnetlinkSocket.open(ctx.sys);
    return session;
  }

  /** `open` for `tspod run`/`run-prepared`: the pod manifest is read from the pod directory. */
  static forLaunch(ctx: PodNetworkContext & { config: ConfigLayers }, podDir: string, net: NetMode): PodNetworkSession | undefined {
    if (net.kind === 'host' || net.kind === 'none') return undefined;
    const manifest = JSON.parse(fs.readFileSync(path.join(podDir, POD_FILES.manifest), 'utf8')) as PodManifest;
    return PodNetworkSession.open(ctx, podDir, path.basename(podDir), net, manifest);
  }

  /** Right after the unshare: the main thread is in the pod's new network namespace. */
  enterPod(): void {
    this.podNetFd = fs.openSync('/proc/thread-self/ns/net', 'r');
    this.podSocket = RtnetlinkSocket.open(this.ctx.sys);
  }

  /** After the init has started: the main thread goes back to the host's network and PID namespaces. */
  returnToHost(): void {
    this.ctx.sys.setns(this.hostNetFd, CLONE_NEWNET);
    // setns(2): a PID namespace may be joined when it is the caller's own (active) one; this makes
    // later children be born in the host's PID namespace again instead of the pod's.
    this.ctx.sys.setns(this.hostPidFd, CLONE_NEWPID);
  }

  /** The pod's network namespace for CNI, valid while this process lives. */
  private podNetnsPath(): string {
    return this.podNetFd === undefined ? '' : `/proc/${process.pid}/fd/${this.podNetFd}`;
  }

  /** Creates everything; on failure the caller calls tearDown. */
  async setUp(): Promise<NetInfo> {
    if (this.podNetFd === undefined || this.podSocket === undefined || this.hostSocket === undefined) throw new Error('pod network: setUp before enterPod');
    const sockets = { host: this.hostSocket, pod: this.podSocket };
    const networks = this.info.networks.map((n) => ({ ...n }));
    for (const [i, spec] of this.specs.entries()) {
      if (spec.kind !== 'direct') continue;
      const lease = allocateLease(this.ctx.dataDir, spec.network, this.uuid);
      Object.assign(networks[i]!, {
        ip: formatIPv4(lease.ip),
        prefixLength: spec.network.subnet.prefixLength,
        gateway: formatIPv4(spec.network.gateway),
        lease: lease.file,
      });
    }
    // Recorded before anything is created: gc can undo a setup that a crash interrupted.
    this.write({ ...this.info, networks });
    let directNetwork: DirectNetwork | undefined;
    for (const [i, spec] of this.specs.entries()) {
      const record = networks[i]!;
      if (spec.kind === 'direct') {
        directNetwork = spec.network;
        try {
          applyNetlink(sockets, planDirectNetwork(spec.network, spec.ifName, this.uuid, parseAddress(record.ip!), this.podNetFd));
        } catch (err) {
          throw new NetworkSetupError(`set up network ${spec.name} of pod ${this.uuid}: ${(err as Error).message}`, {
            cause: err,
            suggestions: [`ip link show ${spec.network.bridge}`, 'tspod gc'],
          });
        }
      } else {
        const invocation = { containerId: this.uuid, netns: this.podNetnsPath(), ifName: spec.ifName, path: record.cniPath!, network: spec.config, ...(record.cniArgs === undefined ? {} : { args: record.cniArgs }) };
        let result;
        try {
          // Each plugin's result is recorded at once: a DEL (gc after a kill -9 in the middle of
          // the chain too) gets the latest as prevResult.
          result = await addNetwork(invocation, this.run, (raw) => {
            record.result = raw;
            this.write({ ...this.info, networks });
          });
        } catch (err) {
          if (err instanceof CniAddError && err.cleanedUp) {
            record.deleted = true;
            this.write({ ...this.info, networks });
          }
          throw err;
        }
        if (result.address !== undefined) {
          record.ip = result.address.ip;
          record.prefixLength = result.address.prefixLength;
          if (result.address.gateway !== undefined) record.gateway = result.address.gateway;
        }
        // The bridge for route_localnet (planSysctls): the first plugin of the chain that names one.
        const bridge = pluginConfigs(spec.config).find((c) => typeof c.bridge === 'string')?.bridge;
        if (typeof bridge === 'string') record.bridge = bridge;
        this.write({ ...this.info, networks });
      }
    }
    const firewallPlan = planFirewall(this.uuid, networks, directNetwork, this.ports);
    for (const sysctl of planSysctls(networks, this.ports, firewallPlan.masquerade !== undefined)) writeSysctl(sysctl.path, sysctl.value);
    if (needsRules(firewallPlan)) {
      this.firewallPlan = firewallPlan;
      await addPodRules(this.info.firewall!, firewallPlan, { run: this.run });
    }
    this.write({ ...this.info, networks, state: 'up' });
    return this.info;
  }

  /** The init's environment additions: it waits for `net-ready` before starting apps. */
  initEnvironment(): Record<string, string> {
    return { [ENV_NETWORK_PENDING]: '1' };
  }

  /**
   * After the init has started: back to the host's namespaces, set everything up, and tell the
   * init (`net-ready`, then NETWORK_READY_SIGNAL). A failure is reported to the init, which then
   * exits without starting an app, and kept for `finish` to throw once the pod is torn down.
   */
  async bringUp(initPid: number | undefined): Promise<void> {
    let outcome = 'ok';
    try {
      this.returnToHost();
      await this.setUp();
    } catch (err) {
      this.setupError = err;
      outcome = `failed: ${(err as Error).message.replace(/\n/g, ' ')}`;
    }
    replaceFile(path.join(this.podDir, POD_FILES.networkReady), `${outcome}\n`);
    if (initPid !== undefined) {
      try {
        process.kill(initPid, NETWORK_READY_SIGNAL);
      } catch {
        // ESRCH: the init has already exited (it failed on its own)
      }
    }
  }

  /** After the init has exited: tears the networks down; throws the setup error, if there was one. */
  async finish(): Promise<void> {
    let teardownError: unknown;
    try {
      await this.tearDown();
    } catch (err) {
      teardownError = err;
    }
    if (this.setupError !== undefined) throw this.setupError;
    if (teardownError !== undefined) throw teardownError;
  }

  /** Removes what setUp made (also a partial setup); idempotent. */
  async tearDown(): Promise<void> {
    try {
      await tearDownNetworks(this.info, { ...this.ctx, run: this.run }, { netns: this.podNetnsPath(), firewallPlan: this.firewallPlan, podNamespaceEnds: true });
      this.write({ ...this.info, state: 'down' });
    } finally {
      this.close();
    }
  }

  private write(info: NetInfo): void {
    this.info = info;
    replaceFile(netInfoPath(this.podDir), `${JSON.stringify(info, null, 2)}\n`);
  }

  private close(): void {
    this.podSocket?.close();
    this.hostSocket?.close();
    this.podSocket = undefined;
    this.hostSocket = undefined;
    for (const fd of [this.podNetFd, this.hostNetFd, this.hostPidFd]) {
      if (fd === undefined) continue;
      try {
        fs.closeSync(fd);
      } catch {
        // already closed
      }
    }
    this.podNetFd = undefined;
  }
}

/**
 * Atomic replacement without fsync (tmp + rename): readers see the old or the new file, never a
 * torn one. Not made durable on purpose: what the files describe (veths, firewall rules, the
 * pod's processes) does not survive a reboot either, and gc sweeps what a power loss leaves;
 * each fsync costs ~4 ms (up to 16 ms) on this machine's disk.
 */
function replaceFile(file: string, text: string): void {
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, text);
  fs.renameSync(tmp, file);
}

function parseAddress(ip: string): number {
  return ip.split('.').reduce((n, octet) => n * 256 + Number(octet), 0);
}

/**
 * Undoes a pod's networks from its record: firewall rules, CNI DEL (with the pod's namespace when
 * it still exists, '' otherwise), the host end of the veth pair (the pod end goes with it), and
 * the leases. Every step runs even when an earlier one failed; the first error is thrown at the end.
 */
async function tearDownNetworks(
  info: NetInfo,
  ctx: PodNetworkContext,
  live: { netns: string; firewallPlan?: PodFirewallPlan; podNamespaceEnds?: boolean },
): Promise<void> {
  const run = ctx.run ?? runCommand;
  const errors: unknown[] = [];
  const attempt = async (step: () => unknown): Promise<void> => {
    try {
      await step();
    } catch (err) {
      errors.push(err);
    }
  };
  if (info.firewall !== undefined) await attempt(() => removePodRules(info.firewall!, info.uuid, { run, ...(live.firewallPlan === undefined ? {} : { added: live.firewallPlan }) }));
  for (const network of [...info.networks].reverse()) {
    if (network.kind === 'cni' && network.config !== undefined && network.deleted !== true) {
      const invocation = {
        containerId: info.uuid,
        netns: live.netns,
        ifName: network.ifName,
        path: network.cniPath ?? cniPath(ctx.env),
        network: network.config,
        ...(network.cniArgs === undefined ? {} : { args: network.cniArgs }),
        ...(network.result === undefined ? {} : { prevResult: network.result }),
      };
      await attempt(() => delNetwork(invocation, run));
    }
    if (network.kind === 'direct') {
      // The exit path leaves the veth pair to the kernel: it is destroyed with the pod's network
      // namespace once the init and stage0's last references are gone, by the namespace cleanup
      // work (net/core/net_namespace.c), instead of a RTM_DELLINK that waits ~20 ms for
      // synchronize_net here. gc deletes a host end that is still there.
      if (network.hostVeth !== undefined && live.podNamespaceEnds !== true) {
        await attempt(() => {
          const socket = RtnetlinkSocket.open(ctx.sys);
          try {
            socket.request({ op: 'delete-link', link: { name: network.hostVeth! } });
          } catch (err) {
            // ENODEV: gone with the pod's network namespace (deleting either end deletes both).
            if (!(err instanceof SyscallError && err.code === 'ENODEV')) throw err;
          } finally {
            socket.close();
          }
        });
      }
      if (network.lease !== undefined) await attempt(() => releaseLease(network.lease!, info.uuid));
    }
  }
  // A CNI DEL without the pod's network namespace cannot find the plugins' iptables rules (the
  // bridge plugin needs the pod's addresses to name its ipMasq chain): remove them by container id.
  if (live.netns === '' && info.networks.some((n) => n.kind === 'cni') && (ctx.has ?? hasProgram)('iptables-save')) {
    await attempt(() => removePodRules('iptables', info.uuid, { run }));
  }
  // Leases taken before a crash kept the record from naming them.
  await attempt(() => releaseLeasesOf(ctx.dataDir, info.uuid));
  if (errors.length > 0) {
    const first = errors[0] as Error;
    throw new NetworkSetupError(`remove the networks of pod ${info.uuid}: ${first.message}${errors.length > 1 ? ` (and ${errors.length - 1} more)` : ''}`, {
      cause: first,
      suggestions: ['tspod gc'],
    });
  }
}

/**
 * gc's and rm's part for a dead pod: undoes whatever its network record lists (nothing when the
 * pod had no networks or they are already down). Runs in the caller's namespaces, the host's.
 */
export async function removePodNetworks(podDir: string, ctx: PodNetworkContext): Promise<boolean> {
  const info = readNetInfo(podDir);
  if (info === undefined) {
    // No record: the pod had no networks, or a crash came between its lease and its record.
    releaseLeasesOf(ctx.dataDir, path.basename(podDir));
    return false;
  }
  if (info.state === 'down') return false;
  await tearDownNetworks(info, ctx, { netns: '' });
  replaceFile(netInfoPath(podDir), `${JSON.stringify({ ...info, state: 'down' }, null, 2)}\n`);
  return true;
}

export { type FirewallBackendName };
