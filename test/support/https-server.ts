// Test helper: a real HTTPS (or plain HTTP) server on 127.0.0.1 and a random port, with a test CA
// and a leaf certificate (subjectAltName IP:127.0.0.1, DNS:localhost) made by `openssl` at run
// time. Routes are plain functions; every request is recorded. Reused by http, trust, discovery and
// fetch suites. Discovery tests add DNS names to the certificate (`makeTestCa({ dnsNames })`) and
// bind a chosen loopback address and port (`startServer({ host: '127.53.1.2', port: 443 })`,
// which needs root for ports below 1024), so `https://example.test?ac-discovery=1` is real.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { hasCommand } from './tools.js';

export interface TestCa {
  dir: string;
  /** PEM of the CA certificate (what a client must trust). */
  caCert: string;
  caCertPath: string;
  /** PEM of the leaf certificate and key for 127.0.0.1 / localhost. */
  cert: string;
  key: string;
  /** A self-signed certificate for the same names, issued by no CA the client knows. */
  selfSignedCert: string;
  selfSignedKey: string;
  cleanup(): void;
}

export const hasOpenssl = hasCommand('openssl', ['version']);

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
}

export interface MakeTestCaOptions {
  /** Extra DNS names for the leaf (and self-signed) certificate, e.g. `example.test`. */
  dnsNames?: string[];
  /** Extra IP addresses for them, e.g. `127.53.1.2`. */
  ips?: string[];
}

/**
 * Makes a CA, a leaf it signs (IP:127.0.0.1, DNS:localhost, plus `dnsNames`/`ips`) and an
 * unrelated self-signed cert for the same names.
 */
export function makeTestCa(opts: MakeTestCaOptions = {}): TestCa {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tspod-ca-'));
  const names = [
    'IP:127.0.0.1',
    'DNS:localhost',
    ...(opts.ips ?? []).map((ip) => `IP:${ip}`),
    ...(opts.dnsNames ?? []).map((n) => `DNS:${n}`),
  ];
  const san = `subjectAltName=${names.join(',')}`;
  openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2',
    '-subj', '/CN=tspod test CA', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], dir);
  openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'leaf.key', '-out', 'leaf.csr', '-subj', '/CN=localhost'], dir);
  fs.writeFileSync(path.join(dir, 'leaf.ext'), `${san}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n`);
  openssl(['x509', '-req', '-in', 'leaf.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'leaf.pem',
    '-days', '2', '-extfile', 'leaf.ext'], dir);
  openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'self.key', '-out', 'self.pem', '-days', '2',
    '-subj', '/CN=localhost', '-addext', san], dir);
  const read = (f: string) => fs.readFileSync(path.join(dir, f), 'utf8');
  return {
    dir,
    caCert: read('ca.pem'),
    caCertPath: path.join(dir, 'ca.pem'),
    cert: read('leaf.pem'),
    key: read('leaf.key'),
    selfSignedCert: read('self.pem'),
    selfSignedKey: read('self.key'),
    cleanup: () => fs.rmSync(dir, { recursive: true, force: true }),
  };
}

export interface RecordedRequest {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
}

export type Route = (req: http.IncomingMessage, res: http.ServerResponse) => void;

export interface TestServer {
  /** `https://127.0.0.1:<port>` (or `http://...`). */
  origin: string;
  port: number;
  requests: RecordedRequest[];
  /** Adds or replaces the handler of an exact path (query string ignored). */
  route(pathname: string, handler: Route): void;
  close(): Promise<void>;
}

export interface StartServerOptions {
  /** TLS material; omit for plain HTTP. */
  tls?: { cert: string; key: string };
  routes?: Record<string, Route>;
  /** Address to bind (default 127.0.0.1); any 127.x.y.z works on Linux without configuration. */
  host?: string;
  /** Port to bind (default 0: a random free port); 443 or 80 need root. */
  port?: number;
}

/** Starts a server on 127.0.0.1:0 (or `host`:`port`). Unknown paths get 404 Not Found. */
export async function startServer(opts: StartServerOptions = {}): Promise<TestServer> {
  const routes = new Map<string, Route>(Object.entries(opts.routes ?? {}));
  const requests: RecordedRequest[] = [];
  const handler = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    requests.push({ method: req.method ?? 'GET', url: req.url ?? '/', headers: req.headers });
    const pathname = new URL(req.url ?? '/', 'http://x').pathname;
    const route = routes.get(pathname);
    if (route) return route(req, res);
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
  };
  const server = opts.tls ? https.createServer({ cert: opts.tls.cert, key: opts.tls.key }, handler) : http.createServer(handler);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const scheme = opts.tls ? 'https' : 'http';
  // A default port (443/80) is left out of the origin, as URL.origin and browsers do.
  const origin = opts.host === undefined && opts.port === undefined ? `${scheme}://127.0.0.1:${port}` : new URL(`${scheme}://${opts.host ?? '127.0.0.1'}:${port}`).origin;
  return {
    origin,
    port,
    requests,
    route: (p, h) => void routes.set(p, h),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Route helpers. */
export const respond = {
  bytes:
    (body: Uint8Array | string, headers: http.OutgoingHttpHeaders = {}): Route =>
    (_req, res) => {
      res.writeHead(200, { 'content-length': Buffer.byteLength(body), ...headers }).end(body);
    },
  redirect:
    (location: string, status = 302): Route =>
    (_req, res) => {
      res.writeHead(status, { location }).end();
    },
  status:
    (status: number, body = ''): Route =>
    (_req, res) => {
      res.writeHead(status).end(body);
    },
};
