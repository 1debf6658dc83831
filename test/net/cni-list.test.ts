// CNI configuration lists (`.conflist`) and per-network CNI_ARGS with a recording command runner:
// the chain's order, `name`/`cniVersion` injected, prevResult threaded through ADD, DEL in reverse
// with the ADD's result, the cleanup DEL after a failing plugin, CNI_ARGS on every call, and gc's
// teardown of a recorded chain. The real plugins run in test/privileged/pod-net-cni.test.ts.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';

import { addNetwork, CniAddError, cniArgsOf, delNetwork, pluginConfigs, type CniNetworkInvocation } from '../../src/net/cni.js';
import type { CniNetworkList } from '../../src/net/config.js';
import { removePodNetworks } from '../../src/net/pod-network.js';
import { NET_INFO_VERSION, readNetInfo, type NetInfo } from '../../src/net/record.js';
import type { CommandRunner } from '../../src/net/run-command.js';
import { RecordingSyscalls } from '../../src/sys/recording.js';

const UUID = '0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9';
const pluginDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tspod-cni-list-'));
for (const plugin of ['bridge', 'tuning', 'firewall']) fs.writeFileSync(path.join(pluginDir, plugin), '#!/bin/sh\n', { mode: 0o755 });
afterAll(() => fs.rmSync(pluginDir, { recursive: true, force: true }));

const list: CniNetworkList = {
  cniVersion: '1.0.0',
  name: 'chain',
  plugins: [
    { type: 'bridge', bridge: 'cni9', ipam: { type: 'host-local', subnet: '10.9.0.0/24' } },
    { type: 'tuning', sysctl: { 'net.ipv4.conf.eth0.arp_ignore': '2' } },
    { type: 'firewall', name: 'ignored', cniVersion: '0.1.0' },
  ],
};

interface Call {
  plugin: string;
  command: string;
  stdin: Record<string, unknown>;
  env: NodeJS.ProcessEnv;
}

/**
 * A fake of the plugins: ADD prints the previous result with the plugin's type appended to
 * `chain` (the bridge starts it with an address); a plugin in `failing` fails ADD or DEL.
 */
function recorder(failing: { ADD?: string; DEL?: string } = {}) {
  const calls: Call[] = [];
  const run: CommandRunner = async (program, _args, input, env) => {
    const plugin = path.basename(program);
    const stdin = JSON.parse(input) as Record<string, unknown>;
    const command = env!.CNI_COMMAND!;
    calls.push({ plugin, command, stdin, env: env! });
    if (failing[command as 'ADD' | 'DEL'] === plugin) return { code: 1, stdout: JSON.stringify({ code: 999, msg: `${plugin} says no` }), stderr: '' };
    if (command === 'DEL') return { code: 0, stdout: '', stderr: '' };
    const prev = (stdin.prevResult as { chain: string[] } | undefined) ?? { cniVersion: '1.0.0', ips: [{ address: '10.9.0.5/24', gateway: '10.9.0.1' }], chain: [] };
    return { code: 0, stdout: JSON.stringify({ ...prev, chain: [...prev.chain, plugin] }), stderr: '' };
  };
  return { calls, run };
}

const invocation = (extra: Partial<CniNetworkInvocation> = {}): CniNetworkInvocation => ({
  containerId: UUID,
  netns: '/proc/4242/fd/23',
  ifName: 'eth0',
  path: [pluginDir],
  network: list,
  ...extra,
});

describe('pluginConfigs', () => {
  it('gives every plugin of a list the list\'s name and cniVersion (replacing its own), a .conf as written', () => {
    expect(pluginConfigs(list).map((c) => [c.type, c.name, c.cniVersion])).toEqual([
      ['bridge', 'chain', '1.0.0'],
      ['tuning', 'chain', '1.0.0'],
      ['firewall', 'chain', '1.0.0'],
    ]);
    const conf = { cniVersion: '0.4.0', name: 'one', type: 'bridge', bridge: 'x' };
    expect(pluginConfigs(conf)).toEqual([conf]);
  });
});

describe('addNetwork: a chain of plugins', () => {
  it('runs the plugins in order, each with the previous result as prevResult; the last result is the network\'s', async () => {
    const fake = recorder();
    const seen: unknown[] = [];
    const result = await addNetwork(invocation(), fake.run, (raw) => seen.push(raw));
    expect(fake.calls.map((c) => [c.plugin, c.command])).toEqual([
      ['bridge', 'ADD'],
      ['tuning', 'ADD'],
      ['firewall', 'ADD'],
    ]);
    expect(fake.calls[0]!.stdin).not.toHaveProperty('prevResult');
    expect((fake.calls[1]!.stdin.prevResult as { chain: string[] }).chain).toEqual(['bridge']);
    expect((fake.calls[2]!.stdin.prevResult as { chain: string[] }).chain).toEqual(['bridge', 'tuning']);
    expect(fake.calls.map((c) => c.stdin.name)).toEqual(['chain', 'chain', 'chain']);
    expect(result.address).toEqual({ ip: '10.9.0.5', prefixLength: 24, gateway: '10.9.0.1' });
    expect((result.raw as { chain: string[] }).chain).toEqual(['bridge', 'tuning', 'firewall']);
    expect(seen.map((r) => (r as { chain: string[] }).chain.length)).toEqual([1, 2, 3]);
  });

  it('a failing middle plugin: DEL for every plugin of the list in reverse, with the last good result; the error names the plugin', async () => {
    const fake = recorder({ ADD: 'tuning' });
    const err = await addNetwork(invocation(), fake.run).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CniAddError);
    expect((err as CniAddError).message).toBe(`CNI ADD of network chain, plugin 2 of 3 (tuning), for pod ${UUID}: tuning says no [CNI error 999]`);
    expect((err as CniAddError).failedPlugin).toBe(1);
    expect((err as CniAddError).cleanedUp).toBe(true);
    // SPEC.md: "for all plugins in the list, even if some were not called during the ADD action".
    expect(fake.calls.map((c) => `${c.command} ${c.plugin}`)).toEqual(['ADD bridge', 'ADD tuning', 'DEL firewall', 'DEL tuning', 'DEL bridge']);
    for (const del of fake.calls.slice(2)) expect((del.stdin.prevResult as { chain: string[] }).chain).toEqual(['bridge']);
  });

  it('a failing first plugin cleans up without prevResult', async () => {
    const fake = recorder({ ADD: 'bridge' });
    await expect(addNetwork(invocation(), fake.run)).rejects.toThrow(/plugin 1 of 3 \(bridge\)/);
    expect(fake.calls.filter((c) => c.command === 'DEL').map((c) => [c.plugin, 'prevResult' in c.stdin])).toEqual([
      ['firewall', false],
      ['tuning', false],
      ['bridge', false],
    ]);
  });

  it('when the cleanup DEL fails too, both are reported and gc is suggested', async () => {
    const fake = recorder({ ADD: 'firewall', DEL: 'tuning' });
    const err = (await addNetwork(invocation(), fake.run).catch((e: unknown) => e)) as CniAddError;
    expect(err.cleanedUp).toBe(false);
    expect(err.message).toMatch(/plugin 3 of 3 \(firewall\), for pod .*: firewall says no .*; the cleanup DEL failed too: CNI DEL of network chain, plugin 2 of 3 \(tuning\), for pod .*: tuning says no/);
    expect(err.suggestions).toEqual(['tspod gc']);
    // Best effort: the bridge's DEL (its lease) still runs after tuning's failed.
    expect(fake.calls.filter((c) => c.command === 'DEL').map((c) => c.plugin)).toEqual(['firewall', 'tuning', 'bridge']);
  });

  it('a plugin missing from CNI_PATH fails the ADD before any plugin runs', async () => {
    const fake = recorder();
    const missing: CniNetworkList = { ...list, plugins: [...list.plugins, { type: 'bandwidth' }] };
    await expect(addNetwork(invocation({ network: missing }), fake.run)).rejects.toThrow(
      `CNI ADD of network chain, plugin 4 of 4 (bandwidth), for pod ${UUID}: plugin "bandwidth" not found in ${pluginDir}`,
    );
    expect(fake.calls).toEqual([]);
  });

  it('a .conf network is one plugin, as written, with no plugin named in errors', async () => {
    const conf = { cniVersion: '0.4.0', name: 'single', type: 'bridge', bridge: 'cni8' };
    const fake = recorder({ ADD: 'bridge' });
    await expect(addNetwork(invocation({ network: conf }), fake.run)).rejects.toThrow(`CNI ADD of network single for pod ${UUID}: bridge says no`);
    expect(fake.calls.map((c) => [c.command, c.stdin])).toEqual([
      ['ADD', conf],
      ['DEL', conf],
    ]);
  });
});

describe('delNetwork', () => {
  it('runs the plugins in reverse order, each with the ADD\'s result as prevResult', async () => {
    const fake = recorder();
    const prevResult = { cniVersion: '1.0.0', ips: [{ address: '10.9.0.5/24' }], chain: ['bridge', 'tuning', 'firewall'] };
    await delNetwork({ ...invocation(), prevResult }, fake.run);
    expect(fake.calls.map((c) => c.plugin)).toEqual(['firewall', 'tuning', 'bridge']);
    for (const call of fake.calls) {
      expect(call.stdin.prevResult).toEqual(prevResult);
      expect(call.env).toMatchObject({ CNI_COMMAND: 'DEL', CNI_CONTAINERID: UUID, CNI_IFNAME: 'eth0', CNI_NETNS: '/proc/4242/fd/23' });
    }
  });

  it('goes on past a failing plugin (best effort) and reports every failure, naming the plugins', async () => {
    const fake = recorder({ DEL: 'tuning' });
    await expect(delNetwork(invocation(), fake.run)).rejects.toThrow(`CNI DEL of network chain, plugin 2 of 3 (tuning), for pod ${UUID}: tuning says no`);
    expect(fake.calls.map((c) => c.plugin)).toEqual(['firewall', 'tuning', 'bridge']);
    const missing: CniNetworkList = { ...list, plugins: [{ type: 'bandwidth' }, ...list.plugins] };
    const err = (await delNetwork(invocation({ network: missing }), recorder({ DEL: 'firewall' }).run).catch((e: unknown) => e)) as Error;
    expect(err.message).toMatch(/plugin 4 of 4 \(firewall\), for pod .*: firewall says no.*; CNI DEL of network chain, plugin 1 of 4 \(bandwidth\), for pod .*: plugin "bandwidth" not found/);
  });
});

describe('CNI_ARGS', () => {
  it('is IgnoreUnknown=1 and the --net arguments, unless they set IgnoreUnknown themselves', () => {
    expect(cniArgsOf('IP=10.1.2.3')).toBe('IgnoreUnknown=1;IP=10.1.2.3');
    expect(cniArgsOf('IgnoreUnknown=0;IP=10.1.2.3')).toBe('IgnoreUnknown=0;IP=10.1.2.3');
    expect(cniArgsOf(undefined)).toBeUndefined();
  });

  it('every plugin of ADD, of the cleanup DEL and of DEL gets the same CNI_ARGS; none without arguments', async () => {
    const args = 'IgnoreUnknown=1;IP=10.9.0.77';
    const fake = recorder({ ADD: 'firewall' });
    await addNetwork(invocation({ args }), fake.run).catch(() => undefined);
    await delNetwork(invocation({ args }), fake.run);
    expect(fake.calls).toHaveLength(9);
    expect(new Set(fake.calls.map((c) => c.env.CNI_ARGS))).toEqual(new Set([args]));
    const plain = recorder();
    await addNetwork(invocation(), plain.run);
    expect(plain.calls.every((c) => !('CNI_ARGS' in c.env))).toBe(true);
  });
});

describe('gc of a recorded chain (removePodNetworks, fakes)', () => {
  let base: string;
  let podDir: string;
  beforeEach(() => {
    base = fs.mkdtempSync(path.join(os.tmpdir(), 'tspod-podnet-list-'));
    podDir = path.join(base, 'pods', 'exited-garbage', UUID);
    fs.mkdirSync(podDir, { recursive: true });
  });
  afterEach(() => fs.rmSync(base, { recursive: true, force: true }));

  const write = (networks: NetInfo['networks']) =>
    fs.writeFileSync(path.join(podDir, 'net-info.json'), JSON.stringify({ version: NET_INFO_VERSION, uuid: UUID, state: 'up', networks, ports: [] } satisfies NetInfo));

  it('DELs the whole chain in reverse, without a namespace, with the recorded result and CNI_ARGS', async () => {
    const result = { cniVersion: '1.0.0', ips: [{ address: '10.9.0.77/24' }], chain: ['bridge', 'tuning', 'firewall'] };
    write([{ name: 'chain', kind: 'cni', ifName: 'eth0', ip: '10.9.0.77', config: list, cniPath: [pluginDir], cniArgs: 'IgnoreUnknown=1;IP=10.9.0.77', result }]);
    const fake = recorder();
    expect(await removePodNetworks(podDir, { dataDir: base, sys: new RecordingSyscalls(), run: fake.run, has: () => false })).toBe(true);
    expect(fake.calls.map((c) => c.plugin)).toEqual(['firewall', 'tuning', 'bridge']);
    for (const call of fake.calls) {
      expect(call.env).toMatchObject({ CNI_COMMAND: 'DEL', CNI_NETNS: '', CNI_ARGS: 'IgnoreUnknown=1;IP=10.9.0.77' });
      expect(call.stdin).toMatchObject({ name: 'chain', cniVersion: '1.0.0', prevResult: result });
    }
    expect(readNetInfo(podDir)?.state).toBe('down');
  });

  it('a network whose failed ADD was already cleaned up is not DELeted again', async () => {
    write([{ name: 'chain', kind: 'cni', ifName: 'eth0', config: list, cniPath: [pluginDir], deleted: true }]);
    const fake = recorder();
    await removePodNetworks(podDir, { dataDir: base, sys: new RecordingSyscalls(), run: fake.run, has: () => false });
    expect(fake.calls).toEqual([]);
  });

  it('a failing DEL keeps the record up for the next gc and names the plugin', async () => {
    write([{ name: 'chain', kind: 'cni', ifName: 'eth0', config: list, cniPath: [pluginDir] }]);
    const fake = recorder({ DEL: 'firewall' });
    await expect(removePodNetworks(podDir, { dataDir: base, sys: new RecordingSyscalls(), run: fake.run, has: () => false })).rejects.toThrow(
      `remove the networks of pod ${UUID}: CNI DEL of network chain, plugin 3 of 3 (firewall), for pod ${UUID}: firewall says no`,
    );
    expect(readNetInfo(podDir)?.state).toBe('up');
  });
});
