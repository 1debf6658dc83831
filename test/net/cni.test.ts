// Running CNI plugins: the environment and stdin of an invocation (CNI spec), results of each spec
// version, plugin lookup, and the errors a plugin reports (fake runner; the real plugins run in
// test/privileged/pod-net.test.ts).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { cniEnvironment, cniPath, cniStdin, DEFAULT_CNI_PATH, findPlugin, invokeCni, parseCniResult, type CniInvocation } from '../../src/net/cni.js';
import { NetworkSetupError } from '../../src/net/network-error.js';
import type { CommandRunner } from '../../src/net/run-command.js';

const UUID = '44b00ecd-273b-4a5d-be7b-489ef002c7c2';
const pluginDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tspod-cni-'));
fs.writeFileSync(path.join(pluginDir, 'bridge'), '#!/bin/sh\n', { mode: 0o755 });
afterAll(() => fs.rmSync(pluginDir, { recursive: true, force: true }));

const invocation = (extra: Partial<CniInvocation> = {}): CniInvocation => ({
  command: 'ADD',
  containerId: UUID,
  netns: '/proc/4242/fd/23',
  ifName: 'eth1',
  path: [pluginDir],
  config: { cniVersion: '0.4.0', name: 'cninet', type: 'bridge', bridge: 'cni0' },
  ...extra,
});

describe('invocation (pure)', () => {
  it('passes the CNI parameters and PATH only (the plugins run iptables)', () => {
    expect(cniEnvironment(invocation(), { PATH: '/usr/sbin:/usr/bin', HOME: '/root', CNI_ARGS: 'IP=1.2.3.4' })).toEqual({
      PATH: '/usr/sbin:/usr/bin',
      CNI_COMMAND: 'ADD',
      CNI_CONTAINERID: UUID,
      CNI_NETNS: '/proc/4242/fd/23',
      CNI_IFNAME: 'eth1',
      CNI_PATH: pluginDir,
    });
  });

  it('a DEL gets prevResult from spec 0.4.0 on, an ADD (a chain\'s later plugins) from 0.3.0 on, not before', () => {
    const prev = { ips: [{ address: '10.1.0.2/24' }] };
    expect(JSON.parse(cniStdin(invocation({ command: 'DEL', prevResult: prev })))).toEqual({ ...invocation().config, prevResult: prev });
    expect(JSON.parse(cniStdin(invocation({ command: 'DEL', prevResult: prev, config: { cniVersion: '0.3.1', name: 'n', type: 'bridge' } })))).not.toHaveProperty('prevResult');
    expect(JSON.parse(cniStdin(invocation({ command: 'ADD', prevResult: prev, config: { cniVersion: '0.3.1', name: 'n', type: 'bridge' } })))).toHaveProperty('prevResult', prev);
    expect(JSON.parse(cniStdin(invocation({ command: 'ADD', prevResult: prev, config: { cniVersion: '0.2.0', name: 'n', type: 'bridge' } })))).not.toHaveProperty('prevResult');
    expect(JSON.parse(cniStdin(invocation({ command: 'ADD' })))).not.toHaveProperty('prevResult');
  });

  it('CNI_PATH from the environment, else Debian\'s /usr/lib/cni then /opt/cni/bin', () => {
    expect(cniPath({ CNI_PATH: '/a:/b:' })).toEqual(['/a', '/b']);
    expect(cniPath({})).toEqual(DEFAULT_CNI_PATH);
  });

  it('finds the plugin by type in CNI_PATH and never takes a path as type', () => {
    expect(findPlugin('bridge', ['/nonexistent', pluginDir])).toBe(path.join(pluginDir, 'bridge'));
    expect(findPlugin('../bridge', [path.join(pluginDir, 'x')])).toBeUndefined();
    expect(findPlugin('ptp', [pluginDir])).toBeUndefined();
  });
});

describe('parseCniResult', () => {
  it('spec 0.3.0 and later: the IPv4 address on the pod\'s interface (sandbox set), its gateway, and DNS', () => {
    const raw = {
      cniVersion: '1.0.0',
      interfaces: [{ name: 'cni0', mac: 'aa' }, { name: 'veth1', mac: 'bb' }, { name: 'eth1', mac: 'cc', sandbox: '/proc/1/ns/net' }],
      ips: [{ address: 'fd00::2/64', interface: 2 }, { address: '10.254.72.3/24', gateway: '10.254.72.1', interface: 2 }],
      dns: { nameservers: ['10.254.72.1'] },
    };
    expect(parseCniResult(raw, 'eth1')).toEqual({ address: { ip: '10.254.72.3', prefixLength: 24, gateway: '10.254.72.1' }, nameservers: ['10.254.72.1'], raw });
  });

  it('spec 0.1.0/0.2.0: ip4', () => {
    expect(parseCniResult({ ip4: { ip: '10.1.0.9/16', gateway: '10.1.0.1' } }, 'eth0').address).toEqual({ ip: '10.1.0.9', prefixLength: 16, gateway: '10.1.0.1' });
  });

  it('no address at all is a result without address', () => {
    expect(parseCniResult({ cniVersion: '1.0.0', interfaces: [] }, 'eth0').address).toBeUndefined();
  });
});

describe('invokeCni (fake runner)', () => {
  it('runs the plugin with the configuration on stdin and reads its result', async () => {
    const calls: { program: string; input: string; env?: NodeJS.ProcessEnv }[] = [];
    const run: CommandRunner = async (program, _args, input, env) => {
      calls.push({ program, input, env });
      return { code: 0, stdout: JSON.stringify({ cniVersion: '0.4.0', ips: [{ version: '4', address: '10.2.0.5/24' }] }), stderr: '' };
    };
    const result = await invokeCni(invocation(), run);
    expect(result?.address?.ip).toBe('10.2.0.5');
    expect(calls[0]!.program).toBe(path.join(pluginDir, 'bridge'));
    expect(JSON.parse(calls[0]!.input)).toEqual(invocation().config);
    expect(calls[0]!.env?.CNI_COMMAND).toBe('ADD');
  });

  it('a plugin error is a NetworkSetupError with the plugin\'s msg, details and code', async () => {
    const run: CommandRunner = async () => ({ code: 1, stdout: '{"cniVersion":"0.4.0","code":11,"msg":"failed to allocate for range 0","details":"no IP addresses available"}', stderr: '' });
    await expect(invokeCni(invocation(), run)).rejects.toThrow(
      `CNI ADD of network cninet for pod ${UUID}: failed to allocate for range 0 (no IP addresses available) [CNI error 11]`,
    );
  });

  it('a missing plugin names CNI_PATH and the Debian package', async () => {
    const err = await invokeCni(invocation({ config: { name: 'x', type: 'macvlan' } })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NetworkSetupError);
    expect((err as NetworkSetupError).message).toMatch(/plugin "macvlan" not found in /);
    expect((err as NetworkSetupError).suggestions[0]).toBe('apt-get install containernetworking-plugins');
  });
});
