// Pod networks with real pods, as root: the default network (bridge, veth, lease, route,
// masquerade; set up through netlink), port forwarding with iptables and with nftables, a named
// CNI network run by Debian's plugins, --net=none, and what the exit path and `gc` after kill -9
// leave on the host (nothing). Every network here is the test's own: the env's default network is
// a bridge and /24 of its own (TspodEnv, test/net/net-fixtures.ts), never tspod0.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { hasProgram } from '../../src/net/run-command.js';
import { claimTestOctet, buildWebImage, hostLinks, removeTestNetwork, type TestNetwork } from '../net/net-fixtures.js';
import { buildFixtures } from '../../fixtures/build-fixtures.js';
import { BackgroundPods, type BackgroundPod } from '../support/background-pods.js';
import { TspodEnv, type CliResult } from '../support/cli.js';
import { canRunPods } from '../support/pod-env.js';

interface ApiPod {
  name: string;
  state: string;
  networks: { net_name: string; iface_name: string; ip: string }[];
}

const hasCniPlugins = fs.existsSync('/usr/lib/cni/bridge') && fs.existsSync('/usr/lib/cni/host-local');
const BACKENDS = (['iptables', 'nftables'] as const).filter((b) => hasProgram(b === 'iptables' ? 'iptables-restore' : 'nft'));

/** Firewall state on the host mentioning the pod: iptables rules tagged with it, its nft table. */
function firewallTraces(uuid: string): string[] {
  const traces: string[] = [];
  if (hasProgram('iptables-save')) traces.push(...execFileSync('iptables-save', { encoding: 'utf8' }).split('\n').filter((l) => l.includes(uuid)));
  if (hasProgram('nft')) traces.push(...execFileSync('nft', ['list', 'tables'], { encoding: 'utf8' }).split('\n').filter((l) => l.includes(uuid)));
  return traces;
}

/** The host end of a pod's veth pair (src/net/pod-network.ts hostVethName). */
const vethOf = (uuid: string) => `tsp${uuid.replace(/-/g, '').slice(0, 12)}`;

/** A TCP port nothing listens on now. */
async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** GET http://host:port/ from the host. */
function httpGet(host: string, port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host, port, path: '/', timeout: 5000 }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve(body));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

/** A non-loopback IPv4 address of the host (its eth0's). */
function hostAddress(): string | undefined {
  for (const addrs of Object.values(os.networkInterfaces())) {
    for (const a of addrs ?? []) if (a.family === 'IPv4' && !a.internal && !a.address.startsWith('10.254.')) return a.address;
  }
  return undefined;
}

describe.skipIf(!canRunPods)('pod networks: real pods (needs root and actool)', () => {
  let env: TspodEnv;
  let demo: string;
  let web: string;
  let ipForwardBefore: string;
  const background = new BackgroundPods();

  const run = (args: string[]) => env.run(['run', '--insecure-options=image', ...args]);
  const busybox = (script: string, extra: string[] = []) => run([...extra, demo, '--exec', '/bin/busybox', '--', 'sh', '-c', script]);
  /** `tspod run` without blocking this process's event loop (a server of the test must answer meanwhile). */
  const runAsync = (args: string[]): Promise<CliResult> => env.runAsync(['run', '--insecure-options=image', ...args]);

  /** Starts a pod in the background; resolves once its networks are up (status shows them). */
  const startPod = (args: string[]): Promise<BackgroundPod<ApiPod>> => background.start<ApiPod>(env, args);

  beforeAll(async () => {
    ipForwardBefore = fs.readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8').trim();
    env = new TspodEnv();
    // This suite tests masquerading: the env's network gets it (other suites' pods go without).
    const conf = JSON.parse(fs.readFileSync(env.network!.file, 'utf8')) as Record<string, unknown>;
    fs.writeFileSync(env.network!.file, JSON.stringify({ ...conf, ipMasq: true }));
    const acis = path.join(env.base, 'acis');
    demo = (await buildFixtures(acis, { cases: ['demo'] })).demo!;
    web = buildWebImage(acis);
  }, 120_000);

  afterAll(async () => {
    await background.stopAll();
    env?.cleanup();
    // The test turned forwarding on for its pods; put the host back as it was.
    if (ipForwardBefore === '0') fs.writeFileSync('/proc/sys/net/ipv4/ip_forward', '0');
  });

  it('--net=default: eth0 with an address from the pool, a default route via the bridge, the host\'s name servers', () => {
    const network = env.network!;
    const result = busybox('busybox ip -4 -o addr show eth0; busybox ip route; cat /etc/resolv.conf; busybox ping -c 1 -W 5 ' + network.gateway);
    expect(result.status, result.stderr).toBe(0);
    const prefix = network.subnet.replace(/\.0\/24$/, '.');
    expect(result.stdout).toMatch(new RegExp(`eth0\\s+inet ${prefix.replace(/\./g, '\\.')}\\d+/24`));
    expect(result.stdout).toMatch(new RegExp(`^default via ${network.gateway.replace(/\./g, '\\.')} dev eth0`, 'm'));
    expect(result.stdout).toContain('1 packets received');
    expect(result.stdout).toContain("# the host's name servers, copied by tspod");
  });

  it('two pods on the default network reach each other by address; list --json shows the network', async () => {
    const server = await startPod([web]);
    const address = server.pod.networks[0]!;
    expect(address).toMatchObject({ net_name: 'default', iface_name: 'eth0' });
    const listed = env.json<ApiPod[]>(['list']).find((p) => p.name === server.uuid)!;
    expect(listed.networks).toEqual(server.pod.networks);
    expect(env.ok(['status', server.uuid])).toMatch(new RegExp(`^networks=default:ip4=${address.ip.replace(/\./g, '\\.')}$`, 'm'));
    const result = busybox(`busybox timeout 10 busybox wget -q -O- http://${address.ip}/`);
    expect(result.status, result.stderr).toBe(0);
    expect(result.stdout).toContain('hello from the tspod web pod');
    // The exit path removes the veth and the lease.
    expect(hostLinks(vethOf(server.uuid))).toHaveLength(1);
    env.ok(['stop', server.uuid]);
    expect(await server.exited).toBe(0);
    // The pair goes with the pod's network namespace, in the kernel's namespace cleanup work.
    for (let i = 0; i < 100 && hostLinks(vethOf(server.uuid)).length > 0; i++) await sleep(20);
    expect(hostLinks(vethOf(server.uuid))).toEqual([]);
    expect(fs.existsSync(path.join(env.dir, 'networks', 'default', address.ip))).toBe(false);
    expect(firewallTraces(server.uuid)).toEqual([]);
    expect(env.json<ApiPod>(['status', server.uuid]).networks).toEqual([]);
  });

  it('a pod reaches a server on the host listening on the gateway address (the bridge)', async () => {
    const network = env.network!;
    // The bridge exists once a pod has used the network.
    expect(busybox('true').status).toBe(0);
    const server = http.createServer((_req, res) => res.end('hello from the host\n'));
    await new Promise<void>((resolve) => server.listen(0, network.gateway, resolve));
    try {
      const { port } = server.address() as net.AddressInfo;
      const result = await runAsync([demo, '--exec', '/bin/busybox', '--', 'sh', '-c', `busybox timeout 10 busybox wget -q -O- http://${network.gateway}:${port}/`]);
      expect(result.status, result.stderr).toBe(0);
      expect(result.stdout).toBe('hello from the host\n');
    } finally {
      server.close();
    }
  });

  it('masquerades outbound traffic: a network namespace with no route back to the pods answers a pod', () => {
    // "Outside": a namespace behind a /30 veth of its own; it knows only the host's end.
    const octet = claimTestOctet();
    const ns = `tspo${octet}`;
    try {
      execFileSync('ip', ['netns', 'add', ns]);
      execFileSync('ip', ['link', 'add', `${ns}h`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
      execFileSync('ip', ['addr', 'add', `10.254.${octet}.1/30`, 'dev', `${ns}h`]);
      execFileSync('ip', ['link', 'set', `${ns}h`, 'up']);
      execFileSync('ip', ['-n', ns, 'addr', 'add', `10.254.${octet}.2/30`, 'dev', 'eth0']);
      execFileSync('ip', ['-n', ns, 'link', 'set', 'eth0', 'up']);
      const result = busybox(`busybox ping -c 1 -W 5 10.254.${octet}.2`);
      expect(result.status, `${result.stdout}${result.stderr}`).toBe(0);
      expect(result.stdout).toContain('1 packets received');
    } finally {
      execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
      removeTestNetwork({ bridge: `${ns}h`, subnet: '', gateway: '', file: '', octet });
    }
  });

  it('--net=none has only loopback, and no network record', () => {
    const result = busybox('busybox ip -o link; ls /proc/self >/dev/null', ['--net=none', '--uuid-file-save', path.join(env.base, 'none.uuid')]);
    expect(result.status, result.stderr).toBe(0);
    const links = result.stdout.trim().split('\n').map((l) => l.split(':')[1]!.trim());
    expect(links).toEqual(['lo']);
    expect(result.stdout).toMatch(/lo: <LOOPBACK,UP,LOWER_UP>/);
    const uuid = fs.readFileSync(path.join(env.base, 'none.uuid'), 'utf8').trim();
    expect(fs.existsSync(path.join(env.dir, 'pods', 'run', uuid, 'net-info.json'))).toBe(false);
    expect(hostLinks(vethOf(uuid))).toEqual([]);
  });

  describe.each(BACKENDS)('with %s', (backend) => {
    beforeAll(() => {
      // The same bridge and subnet, another firewall tool.
      const conf = JSON.parse(fs.readFileSync(env.network!.file, 'utf8')) as Record<string, unknown>;
      fs.writeFileSync(env.network!.file, JSON.stringify({ ...conf, tspod: { firewall: backend } }));
    });

    it('a forwarded port answers from the host, on 127.0.0.1 and on its own address; the rules go with the pod', async () => {
      const port = await freePort();
      const pod = await startPod(['--port', `http:${port}`, web]);
      expect(firewallTraces(pod.uuid).length).toBeGreaterThan(0);
      expect(await httpGet('127.0.0.1', port)).toBe('hello from the tspod web pod\n');
      const address = hostAddress();
      if (address !== undefined) expect(await httpGet(address, port)).toBe('hello from the tspod web pod\n');
      env.ok(['stop', pod.uuid]);
      expect(await pod.exited).toBe(0);
      expect(firewallTraces(pod.uuid)).toEqual([]);
      await expect(httpGet('127.0.0.1', port)).rejects.toThrow(/ECONNREFUSED/);
    });

    it('--port NAME:HOSTPORT:127.0.0.1 answers on 127.0.0.1 only', async () => {
      const port = await freePort();
      const pod = await startPod(['--port', `http:${port}:127.0.0.1`, web]);
      expect(await httpGet('127.0.0.1', port)).toBe('hello from the tspod web pod\n');
      const address = hostAddress();
      if (address !== undefined) await expect(httpGet(address, port)).rejects.toThrow(/ECONNREFUSED/);
      env.ok(['stop', pod.uuid]);
      await pod.exited;
    });

    it('gc after kill -9 of tspod run leaves no veth, no lease, no firewall rule', async () => {
      const port = await freePort();
      const pod = await startPod(['--port', `http:${port}`, web]);
      const ip = pod.pod.networks[0]!.ip;
      const lease = path.join(env.dir, 'networks', 'default', ip);
      expect(fs.readFileSync(lease, 'utf8').trim()).toBe(pod.uuid);
      pod.child.kill('SIGKILL');
      await pod.exited;
      // The init dies with stage0 (PR_SET_PDEATHSIG); wait until the pod is exited (lock free).
      for (let i = 0; i < 200 && env.json<ApiPod>(['status', pod.uuid]).state !== 'exited'; i++) await sleep(50);
      // What only gc removes: the lease and the rules (the veth went with the pod's namespace).
      expect(fs.existsSync(lease)).toBe(true);
      expect(firewallTraces(pod.uuid).length).toBeGreaterThan(0);
      env.ok(['gc', '--grace-period=0s']);
      expect(hostLinks(vethOf(pod.uuid))).toEqual([]);
      expect(fs.existsSync(lease)).toBe(false);
      expect(firewallTraces(pod.uuid)).toEqual([]);
      expect(fs.existsSync(path.join(env.dir, 'pods', 'exited-garbage', pod.uuid))).toBe(false);
    });
  });

  describe.skipIf(!hasCniPlugins)('a named CNI network (Debian containernetworking-plugins: bridge + host-local)', () => {
    let cniNet: TestNetwork;
    let ipamDir: string;

    beforeAll(() => {
      // A subnet of its own, claimed like the default network's; the plugins' leases in a temp dir.
      const octet = claimTestOctet();
      ipamDir = path.join(env.base, 'cni-ipam');
      cniNet = { bridge: `tspc${octet}`, subnet: `10.254.${octet}.0/24`, gateway: `10.254.${octet}.1`, file: path.join(env.localConfig, 'net.d', '50-cnitest.conf'), octet };
      const conf = {
        cniVersion: '0.4.0',
        name: 'cnitest',
        type: 'bridge',
        bridge: cniNet.bridge,
        isGateway: true,
        ipMasq: true,
        ipam: { type: 'host-local', subnet: cniNet.subnet, dataDir: ipamDir, routes: [{ dst: '0.0.0.0/0' }] },
      };
      fs.writeFileSync(cniNet.file, JSON.stringify(conf));
    });
    afterAll(() => removeTestNetwork(cniNet));

    it('ADD gives the pod an address on the plugin\'s bridge; DEL on exit frees the lease and the plugin\'s rules', () => {
      const uuidFile = path.join(env.base, 'cni.uuid');
      const result = busybox(`busybox ip -4 -o addr show eth0; busybox ping -c 1 -W 5 ${cniNet.gateway}`, ['--net=cnitest', `--uuid-file-save=${uuidFile}`]);
      expect(result.status, result.stderr).toBe(0);
      const prefix = cniNet.subnet.replace(/0\/24$/, '').replace(/\./g, '\\.');
      expect(result.stdout).toMatch(new RegExp(`eth0\\s+inet ${prefix}\\d+/24`));
      expect(result.stdout).toContain('1 packets received');
      const uuid = fs.readFileSync(uuidFile, 'utf8').trim();
      const leases = fs.readdirSync(path.join(ipamDir, 'cnitest')).filter((n) => /^\d+\./.test(n) && !n.startsWith('last_reserved'));
      expect(leases).toEqual([]);
      expect(firewallTraces(uuid)).toEqual([]);
    });

    it('gc after kill -9 runs DEL without the namespace and removes the plugin\'s masquerade chain', async () => {
      const pod = await startPod(['--net=cnitest', demo, '--exec', '/bin/sleep', '--', '60']);
      expect(pod.pod.networks[0]).toMatchObject({ net_name: 'cnitest', iface_name: 'eth0' });
      expect(firewallTraces(pod.uuid).length).toBeGreaterThan(0);
      pod.child.kill('SIGKILL');
      await pod.exited;
      for (let i = 0; i < 200 && env.json<ApiPod>(['status', pod.uuid]).state !== 'exited'; i++) await sleep(50);
      env.ok(['gc', '--grace-period=0s']);
      expect(firewallTraces(pod.uuid)).toEqual([]);
      expect(fs.readdirSync(path.join(ipamDir, 'cnitest')).filter((n) => n === pod.pod.networks[0]!.ip)).toEqual([]);
    });
  });

  it('an unknown --net network is refused with exit status 254, naming the network', () => {
    const result = run(['--net=nosuchnet', demo, '--exec', '/bin/true']);
    expect(result.status).toBe(254);
    expect(result.stderr).toMatch(/--net=nosuchnet: no network named "nosuchnet" in net.d/);
  });
});
