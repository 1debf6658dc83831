// The plan of a pod's networks as data (ports, netlink requests, sysctls, firewall), the record
// and its API shape, and gc's teardown from a record with fakes: rules, veth, leases.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import type { ImageManifest, PodManifest } from '../../src/appc/types.js';
import { parseIPv4, parseSubnet } from '../../src/net/addresses.js';
import type { DirectNetwork } from '../../src/net/config.js';
import { allocateLease } from '../../src/net/ipam.js';
import { NLMSG_ERROR, nlmsg, RTM_DELLINK } from '../../src/net/netlink.js';
import { hostVethName, planDirectNetwork, planFirewall, planSysctls, PodNetworkSession, removePodNetworks, resolveForwardedPorts } from '../../src/net/pod-network.js';
import { apiNetworks, NET_INFO_VERSION, readNetInfo, type NetInfo, type NetInfoNetwork } from '../../src/net/record.js';
import type { CommandRunner } from '../../src/net/run-command.js';
import { RecordingSyscalls } from '../../src/sys/recording.js';

const UUID = '6bc5464f-8037-456f-ac5b-6f81104e2afe';
const network: DirectNetwork = {
  name: 'default',
  bridge: 'tspod0',
  subnet: parseSubnet('172.31.0.0/16'),
  gateway: parseIPv4('172.31.0.1'),
  rangeStart: parseIPv4('172.31.0.1'),
  rangeEnd: parseIPv4('172.31.255.254'),
  ipMasq: true,
};

const image = (ports: ImageManifest['app'] extends infer A ? (A extends { ports?: infer P } ? P : never) : never): ImageManifest =>
  ({ acKind: 'ImageManifest', acVersion: '0.8.11', name: 'example.com/web', app: { exec: ['/bin/httpd'], user: '0', group: '0', ports } }) as ImageManifest;
const pod = (ports: PodManifest['ports'], appOverride?: PodManifest['apps'][number]['app']): PodManifest =>
  ({ acKind: 'PodManifest', acVersion: '0.8.11', apps: [{ name: 'web', image: { id: 'sha512-x' }, ...(appOverride ? { app: appOverride } : {}) }], ports }) as PodManifest;

describe('resolveForwardedPorts', () => {
  const images = { web: image([{ name: 'http', protocol: 'tcp', port: 80 }, { name: 'range', protocol: 'UDP', port: 6000, count: 3 }]) };

  it('maps --port NAME:HOSTPORT[:HOSTIP] to the app port of that name', () => {
    expect(resolveForwardedPorts(pod([{ name: 'http', hostPort: 8080, hostIP: '127.0.0.1' }]), images)).toEqual([
      { name: 'http', protocol: 'tcp', hostPort: 8080, hostIP: '127.0.0.1', podPort: 80 },
    ]);
  });

  it('a port with count 3 forwards three ports, one by one; the protocol is lowercased', () => {
    expect(resolveForwardedPorts(pod([{ name: 'range', hostPort: 7000 }]), images).map((p) => [p.protocol, p.hostPort, p.podPort])).toEqual([
      ['udp', 7000, 6000],
      ['udp', 7001, 6001],
      ['udp', 7002, 6002],
    ]);
  });

  it('the pod manifest\'s app replaces the image\'s (its ports too)', () => {
    const override = { exec: ['/bin/x'], user: '0', group: '0', ports: [{ name: 'http', protocol: 'tcp', port: 8000 }] };
    expect(resolveForwardedPorts(pod([{ name: 'http', hostPort: 80 }], override), images)[0]!.podPort).toBe(8000);
  });

  it('refuses an unknown port name, a protocol other than tcp/udp, and a range past 65535', () => {
    expect(() => resolveForwardedPorts(pod([{ name: 'ftp', hostPort: 21 }]), images)).toThrow(/no app of the pod has a port named "ftp"/);
    const sctp = { web: image([{ name: 's', protocol: 'sctp', port: 9 }]) };
    expect(() => resolveForwardedPorts(pod([{ name: 's', hostPort: 9 }]), sctp)).toThrow(/protocol sctp cannot be forwarded/);
    expect(() => resolveForwardedPorts(pod([{ name: 'range', hostPort: 65534 }]), images)).toThrow(/beyond 65535/);
  });
});

describe('planDirectNetwork (pure)', () => {
  it('bridge (EEXIST is fine), its gateway address, the veth born with its peer in the pod namespace, then the pod side', () => {
    const steps = planDirectNetwork(network, 'eth0', UUID, parseIPv4('172.31.0.7'), 23);
    expect(steps.map((s) => [s.side, s.request.op, s.tolerate ?? ''])).toEqual([
      ['host', 'add-bridge', 'EEXIST'],
      ['host', 'add-address', 'EEXIST'],
      ['host', 'set-link', ''],
      ['host', 'add-veth', ''],
      ['host', 'set-link', ''],
      ['pod', 'add-address', ''],
      ['pod', 'set-link', ''],
      ['pod', 'add-default-route', ''],
    ]);
    expect(steps[3]!.request).toEqual({ op: 'add-veth', name: 'tsp6bc5464f8037', peer: 'eth0', peerNetnsFd: 23 });
    expect(steps[4]!.request).toEqual({ op: 'set-link', link: { name: 'tsp6bc5464f8037' }, master: 'tspod0', up: true });
    expect(steps[5]!.request).toEqual({ op: 'add-address', link: { name: 'eth0' }, address: parseIPv4('172.31.0.7'), prefixLength: 16, broadcast: parseIPv4('172.31.255.255') });
    expect(steps[7]!.request).toEqual({ op: 'add-default-route', link: { name: 'eth0' }, gateway: parseIPv4('172.31.0.1') });
  });

  it('the host end is tsp + 12 hex digits of the uuid: 15 bytes, IFNAMSIZ - 1', () => {
    expect(hostVethName(UUID)).toBe('tsp6bc5464f8037');
    expect(hostVethName(UUID).length).toBe(15);
  });

  it('passes the MTU to the bridge and both veth ends', () => {
    const steps = planDirectNetwork({ ...network, mtu: 1400 }, 'eth0', UUID, 2, 5);
    expect(steps[0]!.request).toMatchObject({ mtu: 1400 });
    expect(steps[3]!.request).toMatchObject({ mtu: 1400 });
  });
});

const direct: NetInfoNetwork = { name: 'default', kind: 'direct', ifName: 'eth0', ip: '172.31.0.7', prefixLength: 16, gateway: '172.31.0.1', bridge: 'tspod0', hostVeth: 'tsp6bc5464f8037' };
const cni: NetInfoNetwork = { name: 'cninet', kind: 'cni', ifName: 'eth1', ip: '10.254.72.3', bridge: 'cni0' };

describe('planSysctls and planFirewall (pure)', () => {
  const ports = [{ name: 'http', protocol: 'tcp' as const, hostPort: 8080, podPort: 80 }];

  it('forwarding for masquerading or ports; route_localnet on the bridge of the first network for ports', () => {
    expect(planSysctls([direct], [], false)).toEqual([]);
    expect(planSysctls([direct], [], true)).toEqual([{ path: '/proc/sys/net/ipv4/ip_forward', value: '1' }]);
    expect(planSysctls([cni, direct], ports, true)).toEqual([
      { path: '/proc/sys/net/ipv4/ip_forward', value: '1' },
      { path: '/proc/sys/net/ipv4/conf/cni0/route_localnet', value: '1' },
    ]);
  });

  it('masquerades on the direct network, forwards ports to the first network\'s address', () => {
    expect(planFirewall(UUID, [cni, direct], network, ports)).toEqual({
      uuid: UUID,
      masquerade: { podIP: '172.31.0.7', subnet: '172.31.0.0/16' },
      forward: { podIP: '10.254.72.3', ports },
    });
    expect(planFirewall(UUID, [direct], { ...network, ipMasq: false }, [])).toEqual({ uuid: UUID });
    expect(() => planFirewall(UUID, [{ ...cni, ip: undefined }], undefined, ports)).toThrow(/none of its networks gave it an IPv4 address/);
  });
});

describe('the record', () => {
  it('shows networks (api/v1 net_name, iface_name, ip) only while they are up', () => {
    const info: NetInfo = { version: NET_INFO_VERSION, uuid: UUID, state: 'up', networks: [direct, { ...cni, ip: undefined }], ports: [] };
    expect(apiNetworks(info)).toEqual([{ net_name: 'default', iface_name: 'eth0', ip: '172.31.0.7' }]);
    expect(apiNetworks({ ...info, state: 'down' })).toEqual([]);
    expect(apiNetworks({ ...info, state: 'setting-up' })).toEqual([]);
    expect(apiNetworks(undefined)).toEqual([]);
  });
});

describe('removePodNetworks (gc, fakes)', () => {
  let base: string;
  let podDir: string;
  beforeEach(() => {
    base = fs.mkdtempSync(path.join(os.tmpdir(), 'tspod-podnet-'));
    podDir = path.join(base, 'pods', 'exited-garbage', UUID);
    fs.mkdirSync(podDir, { recursive: true });
  });
  afterEach(() => fs.rmSync(base, { recursive: true, force: true }));

  const ack = (seq: number, errno = 0): Buffer => {
    const body = Buffer.alloc(20);
    body.writeInt32LE(-errno, 0);
    return nlmsg(NLMSG_ERROR, 0, seq, body);
  };

  function runner(saved: string) {
    const calls: { program: string; input: string; env?: NodeJS.ProcessEnv }[] = [];
    const run: CommandRunner = async (program, _args, input, env) => {
      calls.push({ program, input, env });
      return { code: 0, stdout: program === 'iptables-save' ? saved : '', stderr: '' };
    };
    return { calls, run };
  }

  it('removes the rules, deletes the veth (ENODEV is fine), releases the lease and marks the record down; a second gc does nothing', async () => {
    const sys = new RecordingSyscalls();
    const lease = allocateLease(base, { ...network, rangeStart: parseIPv4('172.31.0.7') }, UUID);
    const info: NetInfo = { version: NET_INFO_VERSION, uuid: UUID, state: 'up', networks: [{ ...direct, lease: lease.file }], firewall: 'iptables', ports: [] };
    fs.writeFileSync(path.join(podDir, 'net-info.json'), JSON.stringify(info));
    sys.replies.push(ack(1, 19)); // RTM_DELLINK: ENODEV, the veth went with the namespace
    const fake = runner(`*nat\n-A POSTROUTING -s 172.31.0.7/32 -m comment --comment "tspod:${UUID}" -j MASQUERADE\nCOMMIT\n`);
    expect(await removePodNetworks(podDir, { dataDir: base, sys, run: fake.run, has: () => true })).toBe(true);
    expect(fake.calls.map((c) => c.program)).toEqual(['iptables-save', 'iptables-restore']);
    expect(sys.sent[0]!.readUInt16LE(4)).toBe(RTM_DELLINK);
    expect(fs.existsSync(lease.file)).toBe(false);
    expect(readNetInfo(podDir)?.state).toBe('down');
    expect(sys.openFds.size).toBe(0);
    expect(await removePodNetworks(podDir, { dataDir: base, sys, run: fake.run })).toBe(false);
    expect(fake.calls).toHaveLength(2);
  });

  it('CNI networks get a DEL without a namespace, then the plugins\' rules for the pod are removed by container id', async () => {
    const sys = new RecordingSyscalls();
    const pluginDir = path.join(base, 'cni');
    fs.mkdirSync(pluginDir);
    fs.writeFileSync(path.join(pluginDir, 'bridge'), '#!/bin/sh\n', { mode: 0o755 });
    const config = { cniVersion: '0.4.0', name: 'cninet', type: 'bridge' };
    const info: NetInfo = { version: NET_INFO_VERSION, uuid: UUID, state: 'up', networks: [{ ...cni, config, cniPath: [pluginDir], result: { ips: [] } }], ports: [] };
    fs.writeFileSync(path.join(podDir, 'net-info.json'), JSON.stringify(info));
    const fake = runner('*nat\nCOMMIT\n');
    await removePodNetworks(podDir, { dataDir: base, sys, run: fake.run, has: () => true });
    expect(fake.calls.map((c) => path.basename(c.program))).toEqual(['bridge', 'iptables-save']);
    expect(fake.calls[0]!.env).toMatchObject({ CNI_COMMAND: 'DEL', CNI_NETNS: '', CNI_IFNAME: 'eth1', CNI_CONTAINERID: UUID });
    expect(JSON.parse(fake.calls[0]!.input)).toEqual({ ...config, prevResult: { ips: [] } });
  });

  it('without a record, still releases leases that name the pod (a crash between lease and record)', async () => {
    const sys = new RecordingSyscalls();
    const lease = allocateLease(base, network, UUID);
    expect(await removePodNetworks(podDir, { dataDir: base, sys })).toBe(false);
    expect(fs.existsSync(lease.file)).toBe(false);
  });

  it('every step runs even when one fails; the error names the pod and suggests gc', async () => {
    const sys = new RecordingSyscalls();
    const lease = allocateLease(base, network, UUID);
    const info: NetInfo = { version: NET_INFO_VERSION, uuid: UUID, state: 'up', networks: [{ ...direct, lease: lease.file }], firewall: 'nftables', ports: [] };
    fs.writeFileSync(path.join(podDir, 'net-info.json'), JSON.stringify(info));
    sys.replies.push(ack(1));
    const run: CommandRunner = async () => ({ code: 1, stdout: '', stderr: 'Error: Could not process rule: Operation not permitted' });
    await expect(removePodNetworks(podDir, { dataDir: base, sys, run })).rejects.toThrow(`remove the networks of pod ${UUID}: remove the firewall rules of pod ${UUID}: nft -f - exited 1`);
    expect(fs.existsSync(lease.file)).toBe(false);
    expect(readNetInfo(podDir)?.state).toBe('up'); // retried by the next gc
  });
});

describe('PodNetworkSession.open without a firewall tool', () => {
  const noConfig = { localConfig: '/nonexistent/etc', systemConfig: '/nonexistent/usr' };
  const manifest = pod(undefined);

  it('the default network still works, unmasqueraded, with a warning', () => {
    const warnings: string[] = [];
    const session = PodNetworkSession.open({ dataDir: '/nonexistent', sys: new RecordingSyscalls(), config: noConfig, has: () => false, warn: (m) => warnings.push(m) }, '/nonexistent/pod', UUID, { kind: 'default' }, manifest);
    expect(session).toBeDefined();
    expect(warnings).toEqual(['set up pod network: neither iptables nor nftables is installed (needed to masquerade and forward ports); the pod\'s traffic leaves the host unmasqueraded']);
  });

  it('--port without a firewall tool is an error with the package to install', () => {
    const withPort = pod([{ name: 'http', hostPort: 8080 }], { exec: ['/bin/x'], user: '0', group: '0', ports: [{ name: 'http', protocol: 'tcp', port: 80 }] });
    expect(() => PodNetworkSession.open({ dataDir: '/nonexistent', sys: new RecordingSyscalls(), config: noConfig, has: () => false }, '/nonexistent/pod', UUID, { kind: 'default' }, withPort)).toThrow(
      /neither iptables nor nftables is installed/,
    );
  });

  it('host and none have no session', () => {
    expect(PodNetworkSession.open({ dataDir: '/x', sys: new RecordingSyscalls(), config: noConfig }, '/x', UUID, { kind: 'none' }, manifest)).toBeUndefined();
  });
});
