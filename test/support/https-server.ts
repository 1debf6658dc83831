// Test helper: a real HTTPS (or plain HTTP) server on 127.0.0.1 and a random port, with a test CA
// and a leaf certificate (subjectAltName IP:127.0.0.1, DNS:localhost) made by `openssl` at run
// time. Routes are plain functions; every request is recorded. Reused by http, trust, discovery and
// fetch suites.
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

/** Makes a CA, a leaf it signs (IP:127.0.0.1, DNS:localhost) and an unrelated self-signed cert. */
export function makeTestCa(): TestCa {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tspod-ca-'));
  const san = 'subjectAltName=IP:127.0.0.1,DNS:localhost';
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
}

/** Starts a server on 127.0.0.1:0. Unknown paths get 404 Not Found. */
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
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    origin: `${opts.tls ? 'https' : 'http'}://127.0.0.1:${port}`,
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
