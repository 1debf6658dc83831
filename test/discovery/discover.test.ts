// appc meta discovery end to end: real dnsmasq, real HTTPS servers on 127.53.N.x:443 with a test
// CA, tspod's resolver as the connections' lookup, and the pages of fixtures/discovery.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { DiscoveryError, discoverEndpoints, discoverPublicKeys, discoveryLevels, discoveryUrl } from '../../src/discovery/discover.js';
import { Resolver } from '../../src/discovery/dns.js';
import type { HttpGet } from '../../src/discovery/http-get.js';
import { parseDiscoveryApp } from '../../src/discovery/name.js';
import { UsageError } from '../../src/errors.js';
import { HttpError } from '../../src/http/client.js';
import { DNSMASQ_MISSING, hasDnsmasq } from '../support/dnsmasq.js';
import { hasOpenssl, respond } from '../support/https-server.js';
import { isRoot, startLoopbackNet, type LoopbackNet } from './loopback-net.js';

const fixtures = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../fixtures/discovery');
const fixture = (name: string): Buffer => fs.readFileSync(path.join(fixtures, name));

const html = (...tags: string[]): string => `<!DOCTYPE html>\n<html><head><title>t</title>\n${tags.join('\n')}\n</head><body></body></html>\n`;
const tag = (kind: 'ac-discovery' | 'ac-discovery-pubkeys', prefix: string, url: string): string => `<meta name="${kind}" content="${prefix} ${url}">`;
const page = (...tags: string[]) => respond.bytes(html(...tags), { 'content-type': 'text/html; charset=utf-8' });

const app = (ref: string, labels: string[] = []) => parseDiscoveryApp(ref, { labels, os: 'linux', arch: 'amd64' });

async function discoveryError(p: Promise<unknown>): Promise<DiscoveryError> {
  const err = await p.then(
    () => new Error('expected a DiscoveryError'),
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(DiscoveryError);
  return err as DiscoveryError;
}

describe('discovery URLs and levels', () => {
  it('walks from the full name up to the host', () => {
    expect(discoveryLevels('a.com/p/s')).toEqual(['a.com/p/s', 'a.com/p', 'a.com']);
    expect(discoveryLevels('a.com')).toEqual(['a.com']);
  });

  it('builds https://{prefix}?ac-discovery=1 (http only when asked)', () => {
    expect(discoveryUrl('a.com/p')).toBe('https://a.com/p?ac-discovery=1');
    expect(discoveryUrl('a.com', 'http')).toBe('http://a.com?ac-discovery=1');
  });

  it('stops at a configuration error (bad TSPOD_NAMESERVER) instead of listing it as a step', async () => {
    const notFound: HttpGet = async (url) => {
      throw new HttpError(url, '404 Not Found', { status: 404 });
    };
    const resolver = new Resolver({ resolvConfPath: '/nonexistent/resolv.conf', env: { TSPOD_NAMESERVER: 'dns.example' } });
    const err = await discoverEndpoints(app('a.test/app'), { get: notFound, dns: resolver }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UsageError);
    expect((err as UsageError).message).toBe('read TSPOD_NAMESERVER: "dns.example" is not an IP address (host[:port], IPv6 as [addr]:port)');
  });
});

const NEEDS = `needs root for port 443, openssl and ${DNSMASQ_MISSING}`;

describe.skipIf(!isRoot || !hasOpenssl || !hasDnsmasq)(`discovery over real DNS and HTTPS (${NEEDS})`, () => {
  let net: LoopbackNet;
  let dnsName: string;

  beforeAll(async () => {
    net = await startLoopbackNet(
      {
        'meta.test': {
          https: {
            '/app': page(
              tag('ac-discovery', 'other.test', 'https://other.test/{name}.{ext}'),
              tag('ac-discovery', 'meta.test/app', 'https://meta.test/images/{name}/{channel}.{ext}'),
              tag('ac-discovery', 'meta.test/app', 'https://meta.test/images/{os}/{arch}/{name}-{version}.{ext}'),
              tag('ac-discovery', 'meta.test', 'https://mirror.meta.test/{name}_{version}_{os}_{arch}.{ext}'),
              tag('ac-discovery-pubkeys', 'meta.test', 'https://meta.test/pubkeys.gpg'),
            ),
          },
        },
        'parent.test': {
          https: {
            '/team/app': respond.status(404, 'not found'),
            '/team': page(tag('ac-discovery', 'parent.test/team', 'https://dl.parent.test/team/{name}-{version}.{ext}')),
            '/other/app': respond.bytes(fixture('no-meta-tags.html')),
            '/other': respond.status(500, 'oops'),
            '/': page(
              tag('ac-discovery', 'parent.test', 'https://dl.parent.test/{name}-{version}.{ext}'),
              tag('ac-discovery-pubkeys', 'parent.test', 'https://parent.test/keys.gpg'),
            ),
          },
        },
        'redirect.test': {
          https: {
            '/app': respond.redirect('https://redirect.test/moved/app', 302),
            '/moved/app': respond.redirect('https://www.redirect-target.test/discovery/app', 301),
            '/insecure': respond.redirect('http://plain.test/app', 302),
          },
        },
        'www.redirect-target.test': {
          https: { '/discovery/app': page(tag('ac-discovery', 'redirect.test/app', 'https://dl.redirect-target.test/{name}-{version}.{ext}')) },
        },
        'plain.test': { http: { '/app': page(tag('ac-discovery', 'plain.test/app', 'http://plain.test/{name}-{version}.{ext}')) } },
        'registry.test': { https: { '/coreos/etcd': respond.bytes(fixture('quay-like-page.html')) } },
        // An address but no server at all: connections are refused, so the TXT fallback runs.
        'txt.test': {},
      },
      {
        txt: [
          { name: '_appc-discovery.txt.test', strings: ['v=appc1 prefix=txt.test aci=https://dl.txt.test/{name}-{version}-{os}-{arch}.{ext} pubkeys=https://txt.test/keys.gpg'] },
          { name: '_appc-discovery.txt.test', strings: ['v=appc1 prefix=txt.test/app aci=https://dl2.txt.test/', '{name}/{version}.{ext}'] },
          { name: '_appc-discovery.txt.test', strings: ['v=spf1 -all'] },
        ],
      },
    );
    dnsName = net.dns.nameserver;
  });

  afterAll(async () => {
    await net?.close();
  });

  it('finds the templates on the name\'s own page, in document order, skipping one with an unfilled variable', async () => {
    const result = await discoverEndpoints(app('meta.test/app:1.0.0'), { get: net.get, dns: net.resolver });
    expect(result).toEqual({
      name: 'meta.test/app',
      endpoints: [
        { aci: 'https://meta.test/images/linux/amd64/meta.test/app-1.0.0.aci', asc: 'https://meta.test/images/linux/amd64/meta.test/app-1.0.0.aci.asc' },
        { aci: 'https://mirror.meta.test/meta.test/app_1.0.0_linux_amd64.aci', asc: 'https://mirror.meta.test/meta.test/app_1.0.0_linux_amd64.aci.asc' },
      ],
      publicKeys: ['https://meta.test/pubkeys.gpg'],
      source: 'https://meta.test/app?ac-discovery=1',
      tried: [],
      skipped: ['template https://meta.test/images/{name}/{channel}.{ext} skipped: no value for {channel}'],
    });
    // The server saw the request by name (Host header, SNI) on the address dnsmasq gave.
    const seen = net.https['meta.test']!.requests.at(-1)!;
    expect(seen).toMatchObject({ method: 'GET', url: '/app?ac-discovery=1' });
    expect(seen.headers.host).toBe('meta.test');
  });

  it('fills any label into the templates: --label channel=beta enables the third template, and no version means latest', async () => {
    const result = await discoverEndpoints(app('meta.test/app', ['channel=beta']), { get: net.get });
    expect(result.endpoints.map((e) => e.aci)).toEqual([
      'https://meta.test/images/meta.test/app/beta.aci',
      'https://meta.test/images/linux/amd64/meta.test/app-latest.aci',
      'https://mirror.meta.test/meta.test/app_latest_linux_amd64.aci',
    ]);
    expect(result.skipped).toEqual([]);
  });

  it('walks up to the parent path after a 404 and reports the failed step', async () => {
    const result = await discoverEndpoints(app('parent.test/team/app:2.1'), { get: net.get });
    expect(result.endpoints).toEqual([{ aci: 'https://dl.parent.test/team/parent.test/team/app-2.1.aci', asc: 'https://dl.parent.test/team/parent.test/team/app-2.1.aci.asc' }]);
    expect(result.source).toBe('https://parent.test/team?ac-discovery=1');
    expect(result.tried).toEqual(['tried https://parent.test/team/app?ac-discovery=1: 404 Not Found']);
  });

  it('walks past a page without tags and a 500 up to the host', async () => {
    const result = await discoverEndpoints(app('parent.test/other/app:3'), { get: net.get });
    expect(result.endpoints.map((e) => e.aci)).toEqual(['https://dl.parent.test/parent.test/other/app-3.aci']);
    expect(result.publicKeys).toEqual(['https://parent.test/keys.gpg']);
    expect(result.source).toBe('https://parent.test/?ac-discovery=1');
    expect(result.tried).toEqual([
      'tried https://parent.test/other/app?ac-discovery=1: no ac-discovery meta tag for parent.test/other/app',
      'tried https://parent.test/other?ac-discovery=1: 500 Internal Server Error',
    ]);
  });

  it('follows a redirect chain across hosts and reports the final URL as the source', async () => {
    net.requested.length = 0;
    const result = await discoverEndpoints(app('redirect.test/app:1'), { get: net.get });
    expect(result.endpoints.map((e) => e.aci)).toEqual(['https://dl.redirect-target.test/redirect.test/app-1.aci']);
    expect(result.source).toBe('https://www.redirect-target.test/discovery/app');
    expect(net.requested).toEqual([
      'https://redirect.test/app?ac-discovery=1',
      'https://redirect.test/moved/app',
      'https://www.redirect-target.test/discovery/app',
    ]);
  });

  it('reads the tags of a real-world registry landing page (quay.io shapes)', async () => {
    const result = await discoverEndpoints(app('registry.test/coreos/etcd:v3.5.0'), { get: net.get });
    expect(result.endpoints).toEqual([
      {
        aci: 'https://registry.test/c1/aci/registry.test/coreos/etcd/v3.5.0/aci/linux/amd64/',
        asc: 'https://registry.test/c1/aci/registry.test/coreos/etcd/v3.5.0/aci.asc/linux/amd64/',
      },
    ]);
    expect(result.publicKeys).toEqual(['https://registry.test/aci-signing-key']);
  });

  it('refuses plain HTTP without the insecure option, without sending a request to it', async () => {
    const before = net.http['plain.test']!.requests.length;
    const err = await discoveryError(discoverEndpoints(app('plain.test/app:1'), { get: net.get }));
    const addr = net.address['plain.test'];
    expect(err.tried).toEqual([
      `tried https://plain.test/app?ac-discovery=1: connect ECONNREFUSED ${addr}:443`,
      `tried https://plain.test?ac-discovery=1: connect ECONNREFUSED ${addr}:443`,
    ]);
    expect(err.suggestions).toContain('if the server only speaks plain http: --insecure-options=http (unsafe)');
    expect(net.http['plain.test']!.requests.length).toBe(before);
  });

  it('falls back to http:// with the insecure option, after trying https://', async () => {
    const result = await discoverEndpoints(app('plain.test/app:1'), { get: net.get, allowHttp: true });
    expect(result.endpoints.map((e) => e.aci)).toEqual(['http://plain.test/plain.test/app-1.aci']);
    expect(result.source).toBe('http://plain.test/app?ac-discovery=1');
    expect(result.tried).toEqual([`tried https://plain.test/app?ac-discovery=1: connect ECONNREFUSED ${net.address['plain.test']}:443`]);
  });

  it('refuses a redirect from https to http without the insecure option and says so', async () => {
    const err = await discoveryError(discoverEndpoints(app('redirect.test/insecure'), { get: net.get }));
    expect(err.tried).toEqual([
      'tried https://redirect.test/insecure?ac-discovery=1: redirected to http://plain.test/app: plain http is not allowed',
      'tried https://redirect.test?ac-discovery=1: 404 Not Found',
    ]);
  });

  it('falls back to the _appc-discovery TXT records when no page answers, longest prefix first', async () => {
    const result = await discoverEndpoints(app('txt.test/app:2.0'), { get: net.get, dns: net.resolver });
    const addr = net.address['txt.test'];
    expect(result).toEqual({
      name: 'txt.test/app',
      endpoints: [
        { aci: 'https://dl2.txt.test/txt.test/app/2.0.aci', asc: 'https://dl2.txt.test/txt.test/app/2.0.aci.asc' },
        { aci: 'https://dl.txt.test/txt.test/app-2.0-linux-amd64.aci', asc: 'https://dl.txt.test/txt.test/app-2.0-linux-amd64.aci.asc' },
      ],
      publicKeys: ['https://txt.test/keys.gpg'],
      source: 'dns TXT _appc-discovery.txt.test',
      tried: [`tried https://txt.test/app?ac-discovery=1: connect ECONNREFUSED ${addr}:443`, `tried https://txt.test?ac-discovery=1: connect ECONNREFUSED ${addr}:443`],
      skipped: [],
    });
  });

  it('does not query DNS TXT records when no resolver is given', async () => {
    const err = await discoveryError(discoverEndpoints(app('txt.test/app:2.0'), { get: net.get }));
    expect(err.tried).toHaveLength(2);
    expect(err.message).not.toContain('dns TXT');
  });

  it('reports every failed step, DNS included, when a name exists nowhere', async () => {
    const err = await discoveryError(discoverEndpoints(app('nowhere.test/app'), { get: net.get, dns: net.resolver }));
    const nx = (type: string, name: string) => `resolve ${type} ${name}: no such domain (NXDOMAIN from ${dnsName})`;
    expect(err.message).toBe(
      'discover nowhere.test/app: ' +
        [
          `tried https://nowhere.test/app?ac-discovery=1: ${nx('A', 'nowhere.test')}`,
          `tried https://nowhere.test?ac-discovery=1: ${nx('A', 'nowhere.test')}`,
          `tried dns TXT _appc-discovery.nowhere.test: no such domain (NXDOMAIN from ${dnsName})`,
        ].join('; '),
    );
    expect(err.suggestions[0]).toBe('check the image name "nowhere.test/app" and its labels (version=latest, os=linux, arch=amd64)');
  });

  it('finds public keys for a prefix by walking up to the first page that has ac-discovery-pubkeys', async () => {
    const result = await discoverPublicKeys('parent.test/team', { get: net.get });
    expect(result).toEqual({
      prefix: 'parent.test/team',
      publicKeys: ['https://parent.test/keys.gpg'],
      source: 'https://parent.test/?ac-discovery=1',
      tried: ['tried https://parent.test/team?ac-discovery=1: no ac-discovery-pubkeys meta tag for parent.test/team'],
    });
  });

  it('finds public keys in the TXT fallback and reports a prefix without any', async () => {
    expect((await discoverPublicKeys('txt.test', { get: net.get, dns: net.resolver })).publicKeys).toEqual(['https://txt.test/keys.gpg']);
    const err = await discoveryError(discoverPublicKeys('redirect.test', { get: net.get, dns: net.resolver }));
    expect(err.message).toBe(
      `discover public keys for prefix redirect.test: tried https://redirect.test?ac-discovery=1: 404 Not Found; ` +
        `tried dns TXT _appc-discovery.redirect.test: no such domain (NXDOMAIN from ${dnsName})`,
    );
    expect(err.suggestions[0]).toBe('give the key yourself: tspod trust --prefix redirect.test ./key.asc (or an https:// URL)');
  });
});
