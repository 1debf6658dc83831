// Test support: a small "internet" on loopback for discovery tests. Each test host name
// (`meta.test`, ...) gets its own 127.53.N.x address from a real dnsmasq; HTTPS servers listen on
// those addresses at port 443 (and plain HTTP at 80) with a certificate from a test CA for every
// name; tspod's Resolver talks to the dnsmasq, and an undici Agent connects through
// `createLookup(resolver)`, so a request for `https://meta.test?ac-discovery=1` travels exactly as
// it would for a user: DNS, TCP to the resolved address, TLS with SNI, HTTP. Binding port 443
// needs root.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { Agent } from 'undici';

import { createLookup, Resolver } from '../../src/discovery/dns.js';
import type { HttpGet } from '../../src/discovery/http-get.js';
import { startDnsmasq, type Dnsmasq, type DnsmasqOptions } from '../support/dnsmasq.js';
import { makeTestCa, startServer, type Route, type TestCa, type TestServer } from '../support/https-server.js';
import { undiciGet } from './undici-get.js';

export const isRoot = process.getuid?.() === 0;

export interface HostSpec {
  /** HTTPS routes on <address>:443; omit for a host with an address but no HTTPS server. */
  https?: Record<string, Route>;
  /** Plain HTTP routes on <address>:80. */
  http?: Record<string, Route>;
}

export interface LoopbackNet {
  /** Address of each host name. */
  address: Record<string, string>;
  https: Record<string, TestServer>;
  http: Record<string, TestServer>;
  dns: Dnsmasq;
  resolver: Resolver;
  agent: Agent;
  /** Every URL the getter requested, redirects included. */
  requested: string[];
  get: HttpGet;
  ca: TestCa;
  close(): Promise<void>;
}

export async function startLoopbackNet(hosts: Record<string, HostSpec>, dnsExtra: Pick<DnsmasqOptions, 'txt' | 'rr'> = {}): Promise<LoopbackNet> {
  // A random /24 inside 127/8 so parallel runs (and other suites on 127.0.0.1) do not collide.
  const subnet = `127.53.${1 + Math.floor(Math.random() * 250)}`;
  const names = Object.keys(hosts);
  const address = Object.fromEntries(names.map((n, i) => [n, `${subnet}.${i + 1}`]));
  const ca = makeTestCa({ dnsNames: names });
  const dns = await startDnsmasq({
    localDomains: ['test'],
    hosts: Object.fromEntries(names.map((n) => [n, [address[n]!]])),
    ...dnsExtra,
  });
  const https: Record<string, TestServer> = {};
  const http: Record<string, TestServer> = {};
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tspod-loopnet-'));
  let agent: Agent | undefined;
  const close = async (): Promise<void> => {
    await agent?.close();
    await Promise.all([...Object.values(https), ...Object.values(http)].map((s) => s.close()));
    await dns.stop();
    ca.cleanup();
    fs.rmSync(dir, { recursive: true, force: true });
  };
  try {
    for (const [name, spec] of Object.entries(hosts)) {
      if (spec.https) https[name] = await startServer({ tls: { cert: ca.cert, key: ca.key }, routes: spec.https, host: address[name], port: 443 });
      if (spec.http) http[name] = await startServer({ routes: spec.http, host: address[name], port: 80 });
    }
    // Empty resolv.conf and hosts: only dnsmasq answers, whatever this machine's setup is.
    fs.writeFileSync(path.join(dir, 'resolv.conf'), '');
    fs.writeFileSync(path.join(dir, 'hosts'), '');
    const resolver = new Resolver({
      resolvConfPath: path.join(dir, 'resolv.conf'),
      hostsPath: path.join(dir, 'hosts'),
      env: { TSPOD_NAMESERVER: dns.nameserver },
      timeoutMs: 2000,
      attempts: 1,
    });
    agent = new Agent({ connect: { ca: ca.caCert, lookup: createLookup(resolver) } });
    const requested: string[] = [];
    return { address, https, http, dns, resolver, agent, requested, get: undiciGet(agent, requested), ca, close };
  } catch (err) {
    await close();
    throw err;
  }
}
