// net.d configurations (rkt's format, both layers) and which networks a pod joins: parsing as
// data, the direct-setup recognition of bridge + host-local, and the errors with their fixes.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { afterEach, describe, expect, it } from 'vitest';

import { formatIPv4, formatSubnet, parseIPv4, parseSubnet } from '../../src/net/addresses.js';
import { BUILT_IN_DEFAULT, directNetworkOf, loadNetworkConfigs, parseCniConfig, resolvePodNetworks, type CniNetworkConfig } from '../../src/net/config.js';
import { NetworkConfigError } from '../../src/net/network-error.js';

const bridgeConf = (extra: Record<string, unknown> = {}, ipam: Record<string, unknown> = {}): CniNetworkConfig => ({
  cniVersion: '0.4.0',
  name: 'default',
  type: 'bridge',
  bridge: 'br-test',
  ipam: { type: 'host-local', subnet: '10.88.0.0/16', ...ipam },
  ...extra,
});

describe('IPv4 addresses and subnets', () => {
  it('round-trips addresses and subnets as unsigned numbers', () => {
    expect(formatIPv4(parseIPv4('172.31.255.254'))).toBe('172.31.255.254');
    expect(parseIPv4('255.255.255.255')).toBe(0xffffffff);
    expect(formatSubnet(parseSubnet('172.31.0.0/16'))).toBe('172.31.0.0/16');
  });

  it('refuses a subnet with host bits set and suggests the network address', () => {
    try {
      parseSubnet('172.31.0.1/16');
      expect.fail('accepted');
    } catch (err) {
      expect(err).toBeInstanceOf(NetworkConfigError);
      expect((err as NetworkConfigError).message).toMatch(/has host bits set/);
      expect((err as NetworkConfigError).suggestions).toEqual(['use 172.31.0.0/16']);
    }
  });

  it('refuses /31, /32, /7, IPv6 and garbage', () => {
    for (const bad of ['10.0.0.0/31', '10.0.0.0/32', '10.0.0.0/7', 'fd00::/64', '10.0.0/24', '10.0.0.0']) expect(() => parseSubnet(bad)).toThrow(NetworkConfigError);
  });
});

describe('parseCniConfig', () => {
  it('reads a plugin configuration', () => {
    expect(parseCniConfig(JSON.stringify(bridgeConf()), 'f.conf').name).toBe('default');
  });

  it.each([
    ['not JSON', '{', /not JSON/],
    ['an array', '[]', /not a JSON object/],
    ['a configuration list in a .conf file', JSON.stringify({ name: 'x', plugins: [] }), /a configuration list \("plugins"\) in a \.conf file/],
    ['no type', JSON.stringify({ name: 'x' }), /"type" must be a non-empty string/],
    ['a name with a slash', JSON.stringify({ name: '../x', type: 'bridge' }), /network name .* is not valid/],
    ['a numeric cniVersion', JSON.stringify({ name: 'x', type: 'bridge', cniVersion: 4 }), /"cniVersion" must be a string/],
  ])('refuses %s', (_case, text, message) => {
    expect(() => parseCniConfig(text, '/etc/tspod/net.d/x.conf')).toThrow(message);
  });
});

describe('directNetworkOf', () => {
  it('takes host-local defaults: the gateway is the first address, the pool the rest; masquerade unless ipMasq is false', () => {
    const n = directNetworkOf(bridgeConf(), 'f')!;
    expect(n.bridge).toBe('br-test');
    expect(formatIPv4(n.gateway)).toBe('10.88.0.1');
    expect(formatIPv4(n.rangeStart)).toBe('10.88.0.1');
    expect(formatIPv4(n.rangeEnd)).toBe('10.88.255.254');
    expect(n.ipMasq).toBe(true);
    expect(directNetworkOf(bridgeConf({ ipMasq: false }), 'f')!.ipMasq).toBe(false);
  });

  it('the built-in default is 172.31.0.0/16 on tspod0 with masquerading', () => {
    const n = directNetworkOf(BUILT_IN_DEFAULT, 'built-in')!;
    expect(n.bridge).toBe('tspod0');
    expect(formatSubnet(n.subnet)).toBe('172.31.0.0/16');
    expect(formatIPv4(n.gateway)).toBe('172.31.0.1');
  });

  it('honours gateway, rangeStart, rangeEnd, mtu and tspod.firewall', () => {
    const n = directNetworkOf(bridgeConf({ mtu: 1400, tspod: { firewall: 'nftables' } }, { gateway: '10.88.0.254', rangeStart: '10.88.1.0', rangeEnd: '10.88.1.9' }), 'f')!;
    expect([formatIPv4(n.gateway), formatIPv4(n.rangeStart), formatIPv4(n.rangeEnd)]).toEqual(['10.88.0.254', '10.88.1.0', '10.88.1.9']);
    expect(n.mtu).toBe(1400);
    expect(n.firewall).toBe('nftables');
  });

  it('leaves other plugins, other IPAM and multi-range host-local to CNI (undefined)', () => {
    expect(directNetworkOf({ ...bridgeConf(), type: 'ptp' }, 'f')).toBeUndefined();
    expect(directNetworkOf(bridgeConf({ ipam: { type: 'dhcp' } }), 'f')).toBeUndefined();
    expect(directNetworkOf(bridgeConf({ ipam: { type: 'host-local', ranges: [[{ subnet: '10.1.0.0/24' }]] } }), 'f')).toBeUndefined();
  });

  it.each([
    ['a gateway outside the subnet', bridgeConf({}, { gateway: '10.99.0.1' }), /ipam.gateway 10.99.0.1 is not a host address of 10.88.0.0\/16/],
    ['the broadcast address as rangeEnd', bridgeConf({}, { rangeEnd: '10.88.255.255' }), /not a host address/],
    ['rangeStart after rangeEnd', bridgeConf({}, { rangeStart: '10.88.0.9', rangeEnd: '10.88.0.2' }), /is after ipam.rangeEnd/],
    ['a bridge name of 16 bytes', bridgeConf({ bridge: 'a-very-long-name' }), /"bridge" "a-very-long-name" is not a valid interface name/],
    ['an mtu of 100', bridgeConf({ mtu: 100 }), /"mtu" must be an integer/],
    ['an unknown firewall', bridgeConf({ tspod: { firewall: 'pf' } }), /"tspod.firewall" must be one of iptables, nftables/],
    ['ipMasq "yes"', bridgeConf({ ipMasq: 'yes' }), /"ipMasq" must be true or false/],
  ])('refuses %s', (_case, config, message) => {
    expect(() => directNetworkOf(config, '/etc/tspod/net.d/default.conf')).toThrow(message);
  });
});

describe('resolvePodNetworks', () => {
  const configs = new Map([
    ['blue', { name: 'blue', source: '/etc/tspod/net.d/10-blue.conf', config: { name: 'blue', type: 'bridge', ipam: { type: 'host-local', subnet: '10.1.0.0/24' } } }],
    ['red', { name: 'red', source: '/etc/tspod/net.d/20-red.conf', config: { name: 'red', type: 'macvlan', master: 'eth0' } }],
  ]);

  it('host and none have no pod network', () => {
    expect(resolvePodNetworks({ kind: 'host' }, configs)).toBeUndefined();
    expect(resolvePodNetworks({ kind: 'none' }, configs)).toBeUndefined();
  });

  it('default without a net.d file is the built-in bridge, set up directly on eth0', () => {
    const [net] = resolvePodNetworks({ kind: 'default' }, new Map())!;
    expect(net).toMatchObject({ kind: 'direct', name: 'default', ifName: 'eth0', source: 'built-in' });
  });

  it('named networks run through CNI, even a bridge + host-local one; interfaces follow the --net order', () => {
    const nets = resolvePodNetworks({ kind: 'named', names: ['red', 'default', 'blue'] }, configs)!;
    expect(nets.map((n) => [n.name, n.kind, n.ifName])).toEqual([
      ['red', 'cni', 'eth0'],
      ['default', 'direct', 'eth1'],
      ['blue', 'cni', 'eth2'],
    ]);
  });

  it('a net.d "default" that is not bridge + host-local runs through CNI', () => {
    const withDefault = new Map([['default', { name: 'default', source: 'f', config: { name: 'default', type: 'ptp', ipam: { type: 'host-local', subnet: '10.2.0.0/24' } } }]]);
    expect(resolvePodNetworks({ kind: 'default' }, withDefault)![0]!.kind).toBe('cni');
  });

  it('an unknown network is an error that lists the known ones', () => {
    try {
      resolvePodNetworks({ kind: 'named', names: ['green'] }, configs);
      expect.fail('accepted');
    } catch (err) {
      expect((err as NetworkConfigError).message).toBe('--net=green: no network named "green" in net.d');
      expect((err as NetworkConfigError).suggestions).toEqual(['known networks: blue, red']);
    }
  });
});

describe('loadNetworkConfigs (both config layers)', () => {
  let base: string | undefined;
  afterEach(() => base !== undefined && fs.rmSync(base, { recursive: true, force: true }));
  const layer = (name: string, files: Record<string, object | string>): string => {
    base ??= fs.mkdtempSync(path.join(os.tmpdir(), 'tspod-netd-'));
    const dir = path.join(base, name, 'net.d');
    fs.mkdirSync(dir, { recursive: true });
    for (const [file, content] of Object.entries(files)) fs.writeFileSync(path.join(dir, file), typeof content === 'string' ? content : JSON.stringify(content));
    return path.join(base, name);
  };

  it('reads *.conf of both layers; a local file replaces the system one of the same network name', () => {
    const systemConfig = layer('usr-lib', { '10-a.conf': { name: 'a', type: 'bridge', bridge: 'sys' }, '20-b.conf': { name: 'b', type: 'ptp' }, 'README': 'ignored' });
    const localConfig = layer('etc', { '99-override.conf': { name: 'a', type: 'bridge', bridge: 'local' } });
    const configs = loadNetworkConfigs({ systemConfig, localConfig });
    expect([...configs.keys()].sort()).toEqual(['a', 'b']);
    expect((configs.get('a')!.config as CniNetworkConfig).bridge).toBe('local');
    expect(configs.get('a')!.source).toBe(path.join(localConfig, 'net.d', '99-override.conf'));
  });

  it('missing net.d directories are no networks', () => {
    expect(loadNetworkConfigs({ systemConfig: '/nonexistent/a', localConfig: '/nonexistent/b' }).size).toBe(0);
  });

  it('two files of one layer defining one name are an error naming both', () => {
    const localConfig = layer('etc', { '1.conf': { name: 'x', type: 'ptp' }, '2.conf': { name: 'x', type: 'ptp' } });
    expect(() => loadNetworkConfigs({ systemConfig: '/nonexistent', localConfig })).toThrow(/network x is defined twice: .*1\.conf and .*2\.conf/);
  });
});
