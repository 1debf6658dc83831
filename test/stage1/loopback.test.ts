// The pod's loopback: the ifreq bytes handed to the kernel (recording fake), and the real thing
// in a fresh network namespace (`unshare --net`, needs root): 127.0.0.1 is unreachable until
// bringInterfaceUp, then a TCP round trip works.
import { spawnSync } from 'node:child_process';
import path from 'node:path';

import { describe, expect, it } from 'vitest';

import { RecordingSyscalls } from '../../src/sys/recording.js';
import {
  AF_INET,
  CLONE_NEWIPC,
  CLONE_NEWNET,
  CLONE_NEWNS,
  IFF_LOOPBACK,
  IFF_RUNNING,
  IFF_UP,
  IFREQ_FLAGS_OFFSET,
  IFREQ_SIZE,
  SIOCGIFFLAGS,
  SIOCSIFFLAGS,
  SOCK_CLOEXEC,
  SOCK_DGRAM,
  SyscallError,
} from '../../src/sys/types.js';
import { podNamespaces } from '../../stage1/contract.js';
import { bringInterfaceUp, ifreqFor, needsLoopback } from '../../stage1/loopback.js';
import { hasCommand } from '../support/tools.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const ENODEV = 19;
const EPERM = 1;

describe('bringInterfaceUp (recording fake)', () => {
  it('reads lo flags, sets IFF_UP keeping the others, and closes its socket', () => {
    const sys = new RecordingSyscalls();
    const result = bringInterfaceUp(sys);
    expect(result).toEqual({ name: 'lo', flagsBefore: IFF_LOOPBACK, changed: true });
    expect(sys.calls.map((c) => c.syscall)).toEqual(['socket', 'ioctlIfreq', 'ioctlIfreq', 'close']);
    expect(sys.calls[0]!.args).toEqual([AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0]);
    const [get, set] = [sys.calls[1]!.args, sys.calls[2]!.args];
    expect(get[1]).toBe(SIOCGIFFLAGS);
    expect(set[1]).toBe(SIOCSIFFLAGS);
    const ifreq = set[2] as Buffer;
    expect(ifreq.length).toBe(IFREQ_SIZE);
    // struct ifreq: "lo\0" then zeros up to IFNAMSIZ, then ifr_flags.
    expect(ifreq.subarray(0, 3)).toEqual(Buffer.from('lo\0'));
    expect(ifreq.readUInt16LE(IFREQ_FLAGS_OFFSET)).toBe(IFF_LOOPBACK | IFF_UP);
    expect(sys.interfaceFlags.get('lo')).toBe(IFF_LOOPBACK | IFF_UP);
    expect(sys.openFds.size).toBe(0);
  });

  it('an interface already up is left alone (no SIOCSIFFLAGS)', () => {
    const sys = new RecordingSyscalls();
    sys.interfaceFlags.set('lo', IFF_LOOPBACK | IFF_UP | IFF_RUNNING);
    expect(bringInterfaceUp(sys).changed).toBe(false);
    expect(sys.calls.filter((c) => c.syscall === 'ioctlIfreq').map((c) => c.args[1])).toEqual([SIOCGIFFLAGS]);
    expect(sys.interfaceFlags.get('lo')).toBe(IFF_LOOPBACK | IFF_UP | IFF_RUNNING);
  });

  it('an unknown interface fails with ENODEV and the socket is still closed', () => {
    const sys = new RecordingSyscalls();
    expect(() => bringInterfaceUp(sys, 'eth9')).toThrow(expect.objectContaining({ errno: ENODEV, path: 'eth9' }));
    expect(sys.calls.filter((c) => c.syscall === 'close')).toHaveLength(1);
    expect(sys.openFds.size).toBe(0);
  });

  it('SIOCSIFFLAGS refused (EPERM: no CAP_NET_ADMIN) surfaces as a SyscallError naming the interface', () => {
    const sys = new RecordingSyscalls();
    sys.fail('ioctlIfreq', EPERM);
    const err = (() => {
      try {
        bringInterfaceUp(sys);
      } catch (e) {
        return e;
      }
    })() as SyscallError;
    expect(err).toBeInstanceOf(SyscallError);
    expect(err.code).toBe('EPERM');
    expect(err.path).toBe('lo');
    expect(sys.openFds.size).toBe(0);
  });

  it('an interface name that does not fit IFNAMSIZ is refused before any ioctl', () => {
    expect(() => ifreqFor('')).toThrow(RangeError);
    expect(() => ifreqFor('a-name-of-16-chr')).toThrow(/does not fit/);
    expect(ifreqFor('a-name-of-15-ch').subarray(0, 16).toString('latin1')).toBe('a-name-of-15-ch\0');
  });

  it('pods with their own network namespace get loopback; --net=host pods do not', () => {
    expect(needsLoopback(podNamespaces({ kind: 'none' }))).toBe(true);
    expect(needsLoopback(podNamespaces({ kind: 'default' }))).toBe(true);
    expect(needsLoopback(podNamespaces({ kind: 'host' }))).toBe(false);
    expect(needsLoopback(CLONE_NEWNS | CLONE_NEWIPC)).toBe(false);
    expect(needsLoopback(CLONE_NEWNET)).toBe(true);
  });
});

const isRoot = process.geteuid?.() === 0;
const canUnshare = isRoot && hasCommand('unshare', ['--version']);

describe.skipIf(!canUnshare)('bringInterfaceUp in a new network namespace (needs root and util-linux unshare)', () => {
  it('127.0.0.1 is unreachable (ENETUNREACH) before and reachable after, in a fresh netns', () => {
    // A child in its own network namespace, so the test process's network is never touched.
    const script = `
      import net from 'node:net';
      import { libcSyscalls } from ${JSON.stringify(path.join(ROOT, 'dist/src/sys/libc.js'))};
      import { bringInterfaceUp } from ${JSON.stringify(path.join(ROOT, 'dist/stage1/loopback.js'))};
      const server = net.createServer((c) => c.end('pong')).listen(0, '127.0.0.1');
      await new Promise((r) => server.once('listening', r));
      const ping = () => new Promise((resolve) => {
        const c = net.connect(server.address().port, '127.0.0.1');
        c.on('data', (d) => resolve(String(d)));
        c.on('error', (e) => resolve(e.code));
      });
      const before = await ping();
      const result = bringInterfaceUp(libcSyscalls);
      const after = await ping();
      const again = bringInterfaceUp(libcSyscalls);
      console.log(JSON.stringify({ before, result, after, again }));
      process.exit(0);
    `;
    const child = spawnSync('unshare', ['--net', process.execPath, '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 30_000 });
    expect(child.status, child.stderr).toBe(0);
    const out = JSON.parse(child.stdout) as { before: string; result: { changed: boolean; flagsBefore: number }; after: string; again: { changed: boolean } };
    expect(out.before).toBe('ENETUNREACH');
    expect(out.result.changed).toBe(true);
    expect(out.result.flagsBefore & IFF_UP).toBe(0);
    expect(out.result.flagsBefore & IFF_LOOPBACK).toBe(IFF_LOOPBACK);
    expect(out.after).toBe('pong');
    expect(out.again.changed).toBe(false);
  });
});
