// Test helper: a real dnsmasq (Debian `dnsmasq-base`) answering on 127.0.0.1 and a random port,
// over UDP and TCP, with host records, TXT records and raw records (`--dns-rr`, e.g. OPENPGPKEY
// type 61) given by the test. It reads no config file, no /etc/hosts and no upstream servers; a
// `--local=/<domain>/` zone makes other names under it NXDOMAIN. Tests skip when it is missing.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

export const DNSMASQ = ['/usr/sbin/dnsmasq', '/usr/bin/dnsmasq'].find((p) => fs.existsSync(p)) ?? 'dnsmasq';

export const hasDnsmasq = ((): boolean => {
  try {
    execFileSync(DNSMASQ, ['--version'], { stdio: 'ignore', timeout: 10_000 });
    return true;
  } catch {
    return false;
  }
})();

export const DNSMASQ_MISSING = 'needs dnsmasq (apt-get install dnsmasq-base)';

export interface DnsmasqOptions {
  /** Exact-name address records: name -> IPv4/IPv6 addresses (`--host-record`). */
  hosts?: Record<string, string[]>;
  /** TXT records: each entry is one record of one or more strings (`--txt-record`). */
  txt?: { name: string; strings: string[] }[];
  /** Raw records: `--dns-rr=name,type,hex` (e.g. type 61 for OPENPGPKEY). */
  rr?: { name: string; type: number; data: Uint8Array }[];
  /** Domains answered locally only: unknown names under them get NXDOMAIN (`--local=/d/`). */
  localDomains?: string[];
  /** More dnsmasq arguments. */
  args?: string[];
}

export interface Dnsmasq {
  host: string;
  port: number;
  /** `127.0.0.1:<port>`, the TSPOD_NAMESERVER value. */
  nameserver: string;
  /** What dnsmasq printed (startup lines, errors); with `--log-queries`, the queries. */
  log(): string;
  stop(): Promise<void>;
}

/** A port free for both UDP and TCP on 127.0.0.1 right now (dnsmasq binds both). */
async function freePort(): Promise<number> {
  for (let i = 0; i < 20; i++) {
    const udp = dgram.createSocket('udp4');
    const port = await new Promise<number>((resolve, reject) => {
      udp.once('error', reject);
      udp.bind(0, '127.0.0.1', () => resolve(udp.address().port));
    });
    const tcpFree = await new Promise<boolean>((resolve) => {
      const srv = net.createServer();
      srv.once('error', () => resolve(false));
      srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
    });
    udp.close();
    if (tcpFree) return port;
  }
  throw new Error('no free port for dnsmasq');
}

/** Waits until dnsmasq answers a UDP query (any answer will do). */
async function waitReady(port: number, child: ChildProcess, log: () => string): Promise<void> {
  // A minimal query for "." type SOA, id 0x7470; any response means the socket is up.
  const query = Buffer.from('747001000001000000000000000006' + '0001', 'hex');
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`dnsmasq exited with ${child.exitCode}: ${log()}`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = dgram.createSocket('udp4');
      const t = setTimeout(() => {
        s.close();
        resolve(false);
      }, 200);
      s.on('error', () => {
        clearTimeout(t);
        s.close();
        resolve(false);
      });
      s.on('message', () => {
        clearTimeout(t);
        s.close();
        resolve(true);
      });
      s.send(query, port, '127.0.0.1');
    });
    if (ok) return;
  }
  throw new Error(`dnsmasq did not answer on 127.0.0.1:${port}: ${log()}`);
}

export async function startDnsmasq(opts: DnsmasqOptions = {}): Promise<Dnsmasq> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tspod-dnsmasq-'));
  for (let tries = 0; ; tries++) {
    const port = await freePort();
    const args = [
      '--no-daemon',
      '--conf-file=/dev/null', // not /etc/dnsmasq.conf
      `--pid-file=${path.join(dir, 'pid')}`,
      '--no-resolv',
      '--no-hosts',
      '--no-poll',
      `--port=${port}`,
      '--listen-address=127.0.0.1',
      '--bind-interfaces',
      '--log-facility=-',
      ...(process.getuid?.() === 0 ? ['--user=root'] : []),
    ];
    for (const domain of opts.localDomains ?? []) args.push(`--local=/${domain}/`);
    for (const [name, addresses] of Object.entries(opts.hosts ?? {})) args.push(`--host-record=${name},${addresses.join(',')}`);
    for (const { name, strings } of opts.txt ?? []) {
      // dnsmasq splits the value at commas into strings; a comma inside a string needs quoting.
      args.push(`--txt-record=${name},${strings.map((s) => (s.includes(',') ? `"${s}"` : s)).join(',')}`);
    }
    for (const { name, type, data } of opts.rr ?? []) args.push(`--dns-rr=${name},${type},${Buffer.from(data).toString('hex')}`);
    args.push(...(opts.args ?? []));
    const child = spawn(DNSMASQ, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
    const log = (): string => output;
    try {
      await waitReady(port, child, log);
    } catch (err) {
      child.kill('SIGKILL');
      // Someone took the port between freePort() and dnsmasq's bind: try another.
      if (tries < 3 && /address already in use/i.test(output)) continue;
      fs.rmSync(dir, { recursive: true, force: true });
      throw err;
    }
    return {
      host: '127.0.0.1',
      port,
      nameserver: `127.0.0.1:${port}`,
      log,
      stop: async () => {
        if (child.exitCode === null) {
          const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
          child.kill('SIGTERM');
          await exited;
        }
        fs.rmSync(dir, { recursive: true, force: true });
      },
    };
  }
}
