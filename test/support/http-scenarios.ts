// Test helper on top of https-server.ts for the HTTP layer: a file route that behaves like a real
// static file server (ETag, Last-Modified, Cache-Control, Range with If-Range, conditional GETs
// with 304) and misbehaves on demand (cut the connection or stall after N body bytes, answer with
// a sequence of error statuses first); a leaf certificate for made-up host names signed by the
// test CA (for the DNS lookup hook); a sleep that records the backoff instead of waiting.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import type http from 'node:http';
import path from 'node:path';

import type { Route, TestCa } from './https-server.js';

/** A leaf certificate for `names` (DNS subjectAltNames) issued by the test CA in `ca.dir`. */
export function makeNamedLeaf(ca: TestCa, names: string[]): { cert: string; key: string } {
  const base = `leaf-${names[0]!.replace(/[^a-z0-9.-]/gi, '_')}`;
  const run = (args: string[]) => execFileSync('openssl', args, { cwd: ca.dir, stdio: ['ignore', 'pipe', 'pipe'] });
  run(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${base}.key`, '-out', `${base}.csr`, '-subj', `/CN=${names[0]}`]);
  fs.writeFileSync(
    path.join(ca.dir, `${base}.ext`),
    `subjectAltName=${names.map((n) => `DNS:${n}`).join(',')}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n`,
  );
  run(['x509', '-req', '-in', `${base}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${base}.pem`, '-days', '2', '-extfile', `${base}.ext`]);
  return { cert: fs.readFileSync(path.join(ca.dir, `${base}.pem`), 'utf8'), key: fs.readFileSync(path.join(ca.dir, `${base}.key`), 'utf8') };
}

/**
 * Misbehaviour for one answer with a body, after N body bytes:
 * - cutAfter: close the connection cleanly (all N bytes reach the client, then end of stream);
 * - resetAfter: destroy the socket (abrupt; bytes still in flight may be lost, as on a real reset);
 * - stallAfter: send nothing more and keep the connection open.
 */
export type Fault = { cutAfter: number } | { resetAfter: number } | { stallAfter: number } | null;

export interface ServedFile {
  body: Buffer;
  etag: string | null;
  lastModified: string | null;
  cacheControl: string | null;
  contentType: string;
  /** Honour Range requests (default true). */
  ranges: boolean;
  /** Consumed in order, one per answer that carries a body (200 or 206). */
  faults: Fault[];
  /** Answers that carried a body so far, and how many were 206. */
  served: number;
  partial: number;
  /** Responses still stalled (so a test can end them). */
  stalled: http.ServerResponse[];
}

export function servedFile(body: Buffer, init: Partial<Omit<ServedFile, 'body' | 'served' | 'partial' | 'stalled'>> = {}): ServedFile {
  return {
    body,
    etag: init.etag === undefined ? '"v1"' : init.etag,
    lastModified: init.lastModified === undefined ? 'Mon, 01 Jan 2024 00:00:00 GMT' : init.lastModified,
    cacheControl: init.cacheControl ?? null,
    contentType: init.contentType ?? 'application/octet-stream',
    ranges: init.ranges ?? true,
    faults: init.faults ?? [],
    served: 0,
    partial: 0,
    stalled: [],
  };
}

function header(req: http.IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** RFC 9110 §8.8.3.2 weak comparison, for If-None-Match. */
function etagListMatches(list: string, etag: string | null): boolean {
  if (etag === null) return false;
  const bare = (t: string) => t.trim().replace(/^W\//, '');
  return list.split(',').some((t) => t.trim() === '*' || bare(t) === bare(etag));
}

/** A static-file route for `file`, with Range/If-Range, conditional GETs and the file's faults. */
export function fileRoute(file: ServedFile): Route {
  return (req, res) => {
    const validators: http.OutgoingHttpHeaders = {};
    if (file.etag !== null) validators.etag = file.etag;
    if (file.lastModified !== null) validators['last-modified'] = file.lastModified;
    if (file.cacheControl !== null) validators['cache-control'] = file.cacheControl;

    const inm = header(req, 'if-none-match');
    const ims = header(req, 'if-modified-since');
    const notModified =
      inm !== undefined
        ? etagListMatches(inm, file.etag)
        : ims !== undefined && file.lastModified !== null && Date.parse(file.lastModified) <= Date.parse(ims);
    if (notModified) {
      res.writeHead(304, validators).end();
      return;
    }

    let start = 0;
    const range = header(req, 'range');
    const ifRange = header(req, 'if-range');
    // RFC 9110 §13.1.5: If-Range holds a strong ETag (exact match) or the exact Last-Modified date.
    const ifRangeOk =
      ifRange === undefined ||
      (ifRange.startsWith('"') ? file.etag !== null && !file.etag.startsWith('W/') && ifRange === file.etag : ifRange === file.lastModified);
    const m = range === undefined ? null : /^bytes=(\d+)-$/.exec(range);
    if (file.ranges && m && ifRangeOk) {
      start = Number(m[1]);
      if (start >= file.body.length) {
        res.writeHead(416, { 'content-range': `bytes */${file.body.length}` }).end();
        return;
      }
    }
    const slice = file.body.subarray(start);
    const headers: http.OutgoingHttpHeaders = { ...validators, 'content-type': file.contentType, 'content-length': slice.length };
    if (file.ranges) headers['accept-ranges'] = 'bytes';
    if (start > 0) headers['content-range'] = `bytes ${start}-${file.body.length - 1}/${file.body.length}`;
    res.writeHead(start > 0 ? 206 : 200, headers);
    file.served += 1;
    if (start > 0) file.partial += 1;
    const fault = file.faults.shift() ?? null;
    if (fault === null) {
      res.end(slice);
    } else if ('cutAfter' in fault) {
      // end() on the socket flushes what was written, then closes (TLS close_notify + FIN).
      res.write(slice.subarray(0, fault.cutAfter), () => res.socket?.end());
    } else if ('resetAfter' in fault) {
      res.write(slice.subarray(0, fault.resetAfter), () => res.socket?.destroy());
    } else {
      res.write(slice.subarray(0, fault.stallAfter));
      file.stalled.push(res);
    }
  };
}

/** Answers the first requests with `statuses` (and their headers), then hands over to `then`. */
export function statusSequence(statuses: { status: number; headers?: http.OutgoingHttpHeaders }[], then: Route): Route & { hits: () => number } {
  let hits = 0;
  const route = ((req, res) => {
    const step = statuses[hits];
    hits += 1;
    if (step) {
      res.writeHead(step.status, { 'content-type': 'text/plain', ...step.headers }).end(`status ${step.status}\n`);
      return;
    }
    then(req, res);
  }) as Route & { hits: () => number };
  route.hits = () => hits;
  return route;
}

/** A sleep that records each requested delay and returns at once. */
export function recordingSleep(): { delays: number[]; sleep: (ms: number) => Promise<void> } {
  const delays: number[] = [];
  return {
    delays,
    sleep: async (ms: number) => {
      delays.push(ms);
    },
  };
}
