// `--net=NAME:KEY=VALUE;...` (rkt's per-network CNI arguments): parsing, the refusals with their
// bad input in the title, the arguments reaching the resolved network, and the flag spelled back.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { describe, expect, it } from 'vitest';

import { UsageError } from '../../src/errors.js';
import { loadNetworkConfigs, parseCniConfigList, parseNetworkFile, resolvePodNetworks, type LoadedNetwork } from '../../src/net/config.js';
import { NetworkConfigError } from '../../src/net/network-error.js';
import { parseRunArgs } from '../../src/pod/run-args.js';
import { formatNetFlag, parseNetFlag } from '../../src/pod/run-args-values.js';

const usageError = (value: string): UsageError => {
  try {
    parseNetFlag(value);
  } catch (err) {
    expect(err).toBeInstanceOf(UsageError);
    return err as UsageError;
  }
  throw new Error(`--net=${value} was accepted`);
};

describe('--net=NAME:ARGS', () => {
  it('keeps the arguments per network, as written; networks without them have none', () => {
    expect(parseNetFlag('mynet:IP=10.1.2.3')).toEqual({ kind: 'named', names: ['mynet'], cniArgs: { mynet: 'IP=10.1.2.3' } });
    expect(parseNetFlag('a:IP=10.1.2.3;K8S_POD_NAME=web,b')).toEqual({ kind: 'named', names: ['a', 'b'], cniArgs: { a: 'IP=10.1.2.3;K8S_POD_NAME=web' } });
    expect(parseNetFlag('default,b:IP=10.0.0.9')).toEqual({ kind: 'named', names: ['default', 'b'], cniArgs: { b: 'IP=10.0.0.9' } });
    expect(parseNetFlag('a,b')).toEqual({ kind: 'named', names: ['a', 'b'] });
    expect(parseRunArgs(['--net=mynet:IP=10.1.2.3', 'x.aci']).pod.net).toEqual({ kind: 'named', names: ['mynet'], cniArgs: { mynet: 'IP=10.1.2.3' } });
  });

  it.each([
    ['default:IP=10.1.2.3', /network "default" takes no CNI arguments \(the built-in default network is not run by CNI plugins\)/],
    ['host:IP=10.1.2.3', /network "host" takes no CNI arguments \(it is not a CNI network\)/],
    ['none:X=1', /network "none" takes no CNI arguments/],
    ['mynet:', /network "mynet": no CNI arguments after ":"/],
    ['mynet:IP', /CNI argument "IP" must be one KEY=VALUE/],
    ['mynet:IP=1=2', /CNI argument "IP=1=2" must be one KEY=VALUE \(no "=" or ";" inside a key or value\)/],
    ['mynet:IP=10.1.2.3;', /an empty CNI argument/],
    ['mynet:A=1;;B=2', /an empty CNI argument/],
    ['mynet:=10.1.2.3', /CNI argument key "" must be letters, digits and '_'/],
    ['mynet:I-P=10.1.2.3', /CNI argument key "I-P" must be letters/],
    ['mynet:IP=', /CNI argument "IP" has an empty value/],
    ['mynet:IP=1;IP=2', /CNI argument "IP" is given twice/],
    ['bad/name:IP=1', /"bad\/name" is not a valid network name/],
    ['mynet:IP=1,mynet', /a network is named twice/],
  ])('refuses --net=%s', (value, message) => {
    const err = usageError(value);
    expect(err.message).toMatch(message);
    expect(err.message.startsWith(`--net ${JSON.stringify(value)}: `)).toBe(true);
  });

  it('suggests how to pass arguments when they were given to default', () => {
    expect(usageError('default:IP=10.1.2.3').suggestions[0]).toMatch(/--net=NAME:IP=10\.1\.2\.3/);
  });

  it('is spelled back as given (generate systemd)', () => {
    for (const value of ['a:IP=10.1.2.3;X=y,b', 'host', 'none', 'default', 'a,b']) expect(formatNetFlag(parseNetFlag(value))).toBe(value);
  });
});

describe('the arguments reach the resolved network', () => {
  const configs = new Map<string, LoadedNetwork>([['mynet', { name: 'mynet', source: '/etc/tspod/net.d/mynet.conf', config: { cniVersion: '0.4.0', name: 'mynet', type: 'bridge' } }]]);

  it('a CNI network gets its --net arguments; the others none', () => {
    const specs = resolvePodNetworks(parseNetFlag('default,mynet:IP=10.1.2.3'), configs)!;
    expect(specs.map((s) => [s.kind, s.name, s.kind === 'cni' ? s.args : undefined])).toEqual([
      ['direct', 'default', undefined],
      ['cni', 'mynet', 'IP=10.1.2.3'],
    ]);
  });

  it('arguments for the directly set up default network (a record not written by run-args) are refused', () => {
    expect(() => resolvePodNetworks({ kind: 'named', names: ['default'], cniArgs: { default: 'IP=1.2.3.4' } }, configs)).toThrow(NetworkConfigError);
  });
});

describe('.conflist files', () => {
  const list = { cniVersion: '1.0.0', name: 'chain', plugins: [{ type: 'bridge' }, { type: 'tuning' }] };

  it('reads a list; the extension decides', () => {
    expect(parseNetworkFile(JSON.stringify(list), 'x.conflist')).toEqual(list);
    expect(() => parseNetworkFile(JSON.stringify(list), '/etc/tspod/net.d/x.conf')).toThrow(/a configuration list \("plugins"\) in a \.conf file/);
  });

  it.each([
    ['no plugins', { cniVersion: '1.0.0', name: 'x' }, /"plugins" must be a non-empty array/],
    ['an empty plugins array', { cniVersion: '1.0.0', name: 'x', plugins: [] }, /"plugins" must be a non-empty array/],
    ['a plugin without type', { cniVersion: '1.0.0', name: 'x', plugins: [{ type: 'bridge' }, { mtu: 1400 }] }, /plugins\[1\]: "type" must be a non-empty string/],
    ['a plugin that is not an object', { cniVersion: '1.0.0', name: 'x', plugins: ['bridge'] }, /plugins\[0\] is not a JSON object/],
    ['no cniVersion', { name: 'x', plugins: [{ type: 'bridge' }] }, /a configuration list needs "cniVersion"/],
    ['no name', { cniVersion: '1.0.0', plugins: [{ type: 'bridge' }] }, /"name" must be a non-empty string/],
    ['a disableCheck of 1', { cniVersion: '1.0.0', name: 'x', disableCheck: 1, plugins: [{ type: 'bridge' }] }, /"disableCheck" must be true or false/],
  ])('refuses %s', (_case, doc, message) => {
    expect(() => parseCniConfigList(JSON.stringify(doc), '/etc/tspod/net.d/x.conflist')).toThrow(message);
  });

  it('are loaded beside .conf files: a list defining a name a .conf of the same layer defines is an error; the local layer wins over the system one', () => {
    const base = fs.mkdtempSync(path.join(os.tmpdir(), 'tspod-netd-list-'));
    try {
      const write = (layer: string, file: string, doc: object) => {
        fs.mkdirSync(path.join(base, layer, 'net.d'), { recursive: true });
        fs.writeFileSync(path.join(base, layer, 'net.d', file), JSON.stringify(doc));
      };
      write('usr', '10-chain.conf', { cniVersion: '0.4.0', name: 'chain', type: 'ptp' });
      write('usr', '20-other.conflist', { ...list, name: 'other' });
      write('etc', '50-chain.conflist', list);
      const configs = loadNetworkConfigs({ systemConfig: path.join(base, 'usr'), localConfig: path.join(base, 'etc') });
      expect(configs.get('chain')!.config).toEqual(list);
      expect(configs.get('chain')!.source).toBe(path.join(base, 'etc', 'net.d', '50-chain.conflist'));
      expect(configs.get('other')!.source).toMatch(/20-other\.conflist$/);
      write('etc', '40-chain.conf', { cniVersion: '0.4.0', name: 'chain', type: 'ptp' });
      expect(() => loadNetworkConfigs({ systemConfig: path.join(base, 'usr'), localConfig: path.join(base, 'etc') })).toThrow(/network chain is defined twice: .*40-chain\.conf and .*50-chain\.conflist/);
    } finally {
      fs.rmSync(base, { recursive: true, force: true });
    }
  });

  it('a "default" list runs through the plugins, not directly', () => {
    const specs = resolvePodNetworks({ kind: 'default' }, new Map([['default', { name: 'default', source: 'd.conflist', config: { ...list, name: 'default', plugins: [{ type: 'bridge', ipam: { type: 'host-local', subnet: '10.3.0.0/24' } }] } }]]))!;
    expect(specs[0]!.kind).toBe('cni');
  });
});
