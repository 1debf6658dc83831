// getBytes against a real HTTPS server on 127.0.0.1 with a CA and certificates made by openssl.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { closeAgents, getBytes, HttpError } from '../../src/http/client.js';
import { hasOpenssl, makeTestCa, respond, startServer, type TestCa, type TestServer } from '../support/https-server.js';
import { rejection } from '../support/rejection.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** The HttpError a request rejects with. */
const httpRejection = (p: Promise<unknown>): Promise<HttpError> => rejection(p, HttpError);

/**
 * Transpiles the client (with errors.ts and the http modules it imports) to plain ESM in a temp dir, so a child `node` process with
 * its own environment (NODE_EXTRA_CA_CERTS is read at process start) can run the real code.
 */
function buildChildCopy(): string {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'tspod-http-child-'));
  for (const rel of ['src/errors.ts', 'src/http/client.ts', 'src/http/agent.ts', 'src/http/auth.ts', 'src/http/exchange.ts', 'src/http/http-error.ts', 'src/http/retry.ts', 'src/http/undici.ts']) {
    const source = fs.readFileSync(path.join(repoRoot, rel), 'utf8');
    const js = ts.transpileModule(source, {
      compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
    }).outputText;
    const dest = path.join(out, rel.replace(/\.ts$/, '.js'));
    fs.mkdirSync(path.dirname(dest), { recursive: true });
    fs.writeFileSync(dest, js);
  }
  fs.writeFileSync(path.join(out, 'package.json'), '{"type":"module"}');
  fs.symlinkSync(path.join(repoRoot, 'node_modules'), path.join(out, 'node_modules'));
  return out;
}

describe.skipIf(!hasOpenssl)('getBytes over HTTPS (needs openssl)', () => {
  let ca: TestCa;
  let server: TestServer;
  let selfSigned: TestServer;
  let plain: TestServer;
  const key = Buffer.from('-----BEGIN PGP PUBLIC KEY BLOCK-----\n...\n');

  beforeAll(async () => {
    ca = makeTestCa();
    server = await startServer({
      tls: { cert: ca.cert, key: ca.key },
      routes: {
        '/key.asc': respond.bytes(key),
        '/moved': respond.redirect('/key.asc', 301),
        '/loop': respond.redirect('/loop'),
        '/big': respond.bytes(Buffer.alloc(2048, 1)),
        '/big-chunked': (_req, res) => {
          res.writeHead(200); // no content-length: the cap applies while reading
          for (let i = 0; i < 8; i++) res.write(Buffer.alloc(512, 2));
          res.end();
        },
        '/gone': respond.status(500, 'boom'),
      },
    });
    selfSigned = await startServer({ tls: { cert: ca.selfSignedCert, key: ca.selfSignedKey }, routes: { '/key.asc': respond.bytes(key) } });
    plain = await startServer({ routes: { '/key.asc': respond.bytes(key) } });
    server.route('/to-http', respond.redirect(`${plain.origin}/key.asc`));
  });

  afterAll(async () => {
    await closeAgents();
    await Promise.all([server?.close(), selfSigned?.close(), plain?.close()]);
    ca?.cleanup();
  });

  it('fetches over HTTPS from a server whose CA is passed as an option', async () => {
    const { bytes, finalUrl } = await getBytes(`${server.origin}/key.asc`, { ca: ca.caCert });
    expect(Buffer.from(bytes)).toEqual(key);
    expect(finalUrl).toBe(`${server.origin}/key.asc`);
    expect(server.requests.at(-1)).toMatchObject({ method: 'GET', url: '/key.asc' });
  });

  it('refuses a server whose CA is unknown (default store) with a TLS error and a suggestion', async () => {
    const err = await httpRejection(getBytes(`${server.origin}/key.asc`));
    expect(err.message).toMatch(/^get https:\/\/127\.0\.0\.1:\d+\/key\.asc: TLS certificate not trusted: .*\(UNABLE_TO_VERIFY_LEAF_SIGNATURE\)/);
    expect(err.suggestions.join(' ')).toContain('--insecure-options=tls');
  });

  it('refuses a self-signed certificate without insecureTls and accepts it with', async () => {
    const err = await httpRejection(getBytes(`${selfSigned.origin}/key.asc`, { ca: ca.caCert }));
    expect(err.message).toMatch(/TLS certificate not trusted: .*SELF_SIGNED/);
    const { bytes } = await getBytes(`${selfSigned.origin}/key.asc`, { insecureTls: true });
    expect(Buffer.from(bytes)).toEqual(key);
  });

  it('refuses plain http without allowHttp, also after a redirect, and allows it when asked', async () => {
    const err = await httpRejection(getBytes(`${plain.origin}/key.asc`));
    expect(err.message).toBe(`get ${plain.origin}/key.asc: plain http is not allowed`);
    expect(err.suggestions).toEqual(['use an https:// URL, or pass --insecure-options=http']);
    const viaRedirect = await httpRejection(getBytes(`${server.origin}/to-http`, { ca: ca.caCert }));
    expect(viaRedirect.message).toContain('(redirected to http://');
    const { bytes } = await getBytes(`${plain.origin}/key.asc`, { allowHttp: true });
    expect(Buffer.from(bytes)).toEqual(key);
  });

  it('follows a redirect and reports the final URL', async () => {
    const { bytes, finalUrl } = await getBytes(`${server.origin}/moved`, { ca: ca.caCert });
    expect(Buffer.from(bytes)).toEqual(key);
    expect(finalUrl).toBe(`${server.origin}/key.asc`);
  });

  it('gives up after 10 redirects', async () => {
    const err = await httpRejection(getBytes(`${server.origin}/loop`, { ca: ca.caCert }));
    expect(err.message).toBe(`get ${server.origin}/loop: more than 10 redirects`);
  });

  it('reports 404 as "get <url>: 404 Not Found" and 500 likewise', async () => {
    const err = await httpRejection(getBytes(`${server.origin}/missing.asc`, { ca: ca.caCert }));
    expect(err.message).toBe(`get ${server.origin}/missing.asc: 404 Not Found`);
    expect(err.status).toBe(404);
    const err500 = await httpRejection(getBytes(`${server.origin}/gone`, { ca: ca.caCert }));
    expect(err500.message).toBe(`get ${server.origin}/gone: 500 Internal Server Error`);
  });

  it('enforces the size cap by Content-Length and while reading a chunked body', async () => {
    const err = await httpRejection(getBytes(`${server.origin}/big`, { ca: ca.caCert, maxBytes: 1024 }));
    expect(err.message).toBe(`get ${server.origin}/big: response of 2048 bytes exceeds the limit of 1024 bytes`);
    const chunked = await httpRejection(getBytes(`${server.origin}/big-chunked`, { ca: ca.caCert, maxBytes: 1024 }));
    expect(chunked.message).toBe(`get ${server.origin}/big-chunked: response exceeds the limit of 1024 bytes`);
    const ok = await getBytes(`${server.origin}/big`, { ca: ca.caCert, maxBytes: 2048 });
    expect(ok.bytes.length).toBe(2048);
  });

  it('rejects unsupported schemes and times out on a silent server', async () => {
    expect((await httpRejection(getBytes('ftp://example.com/key.asc'))).message).toMatch(/unsupported URL scheme ftp/);
    server.route('/silent', () => undefined); // never answers
    const err = await httpRejection(getBytes(`${server.origin}/silent`, { ca: ca.caCert, timeoutMs: 300 }));
    expect(err.message).toBe(`get ${server.origin}/silent: timed out`);
  });

  it('trusts the CA from NODE_EXTRA_CA_CERTS (Node default store) in a child process', async () => {
    const childDir = buildChildCopy();
    try {
      const script = `
        import { getBytes, closeAgents } from './src/http/client.js';
        const r = await getBytes(process.argv[1]);
        process.stdout.write(Buffer.from(r.bytes).toString());
        await closeAgents();`;
      const run = (env: NodeJS.ProcessEnv) =>
        promisify(execFile)(process.execPath, ['--input-type=module', '-e', script, `${server.origin}/key.asc`], {
          cwd: childDir,
          env: { PATH: process.env.PATH, ...env },
        });
      const { stdout } = await run({ NODE_EXTRA_CA_CERTS: ca.caCertPath });
      expect(stdout).toBe(key.toString());
      await expect(run({})).rejects.toThrow(/TLS certificate not trusted/);
    } finally {
      fs.rmSync(childDir, { recursive: true, force: true });
    }
  });
});
