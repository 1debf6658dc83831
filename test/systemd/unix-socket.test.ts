// The AF_UNIX datagram calls of src/sys that sd_notify and socket activation are built on, against
// the real kernel (no privileges needed): abstract and path addresses, SCM_RIGHTS both ways,
// SCM_CREDENTIALS, pipe2/dup2, poll and pollAsync.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { afterEach, describe, expect, it } from 'vitest';

import {
  AF_UNIX,
  libcSyscalls as sys,
  MSG_DONTWAIT,
  O_CLOEXEC,
  POLLHUP,
  POLLIN,
  SO_PASSCRED,
  SOCK_CLOEXEC,
  SOCK_DGRAM,
  SOCK_NONBLOCK,
  SOL_SOCKET,
  SyscallError,
} from '../../src/sys/index.js';

const opened: number[] = [];
const track = <T extends number | number[]>(fds: T): T => {
  opened.push(...(Array.isArray(fds) ? fds : [fds]));
  return fds;
};
afterEach(() => {
  for (const fd of opened.splice(0)) {
    try {
      sys.close(fd);
    } catch {
      // already closed by the test
    }
  }
});

const dgram = () => track(sys.socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
const abstractName = () => `@tspod-test/${process.pid}/${crypto.randomBytes(6).toString('hex')}`;

describe('AF_UNIX datagram sockets through src/sys', () => {
  it('sends a datagram to an abstract @address and receives it with the sender credentials (SO_PASSCRED)', () => {
    const server = dgram();
    const address = abstractName();
    sys.bindUnix(server, address);
    sys.setsockoptInt(server, SOL_SOCKET, SO_PASSCRED, 1);
    const client = dgram();
    expect(sys.sendmsgUnix(client, Buffer.from('READY=1\nSTATUS=up'), { address })).toBe(17);
    const message = sys.recvmsgUnix(server, 4096, MSG_DONTWAIT)!;
    expect(message.data.toString()).toBe('READY=1\nSTATUS=up');
    expect(message.credentials).toEqual({ pid: process.pid, uid: process.getuid!(), gid: process.getgid!() });
    expect(message.fds).toEqual([]);
    expect(message.truncated).toBe(false);
    // Nothing more queued: EAGAIN is undefined, not an error.
    expect(sys.recvmsgUnix(server, 4096, MSG_DONTWAIT)).toBeUndefined();
  });

  it('binds a filesystem path and reports a long datagram as truncated', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tspod-unix-'));
    try {
      const server = dgram();
      const address = path.join(dir, 'notify');
      sys.bindUnix(server, address);
      expect(fs.statSync(address).isSocket()).toBe(true);
      sys.sendmsgUnix(dgram(), Buffer.alloc(100, 'x'), { address });
      const message = sys.recvmsgUnix(server, 10, MSG_DONTWAIT)!;
      expect(message.data.length).toBe(10);
      expect(message.truncated).toBe(true);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('sending to an address nobody bound fails with ECONNREFUSED (abstract) or ENOENT (path)', () => {
    const client = dgram();
    expect(() => sys.sendmsgUnix(client, Buffer.from('x'), { address: abstractName() })).toThrow(expect.objectContaining({ code: 'ECONNREFUSED' }));
    expect(() => sys.sendmsgUnix(client, Buffer.from('x'), { address: '/nonexistent/tspod/notify' })).toThrow(expect.objectContaining({ code: 'ENOENT' }));
  });

  it('refuses an address longer than sun_path before calling the kernel', () => {
    expect(() => sys.bindUnix(dgram(), `/${'x'.repeat(120)}`)).toThrow(RangeError);
  });

  it('passes a pipe write end with SCM_RIGHTS: the pipe sees EOF (POLLHUP) only once every copy is closed', () => {
    const server = dgram();
    const address = abstractName();
    sys.bindUnix(server, address);
    const [readEnd, writeEnd] = track(sys.pipe2(O_CLOEXEC));
    sys.sendmsgUnix(dgram(), Buffer.from('BARRIER=1'), { address, fds: [writeEnd] });
    sys.close(writeEnd);
    const message = sys.recvmsgUnix(server, 4096, MSG_DONTWAIT)!;
    expect(message.data.toString()).toBe('BARRIER=1');
    expect(message.fds).toHaveLength(1);
    const received = track(message.fds[0]!);
    expect(fs.readlinkSync(`/proc/self/fd/${received}`)).toBe(fs.readlinkSync(`/proc/self/fd/${readEnd}`));
    // The received copy keeps the pipe open.
    expect(sys.poll([{ fd: readEnd, events: POLLIN }], 0)).toEqual([0]);
    sys.close(received);
    expect(sys.poll([{ fd: readEnd, events: POLLIN }], 0)[0]! & POLLHUP).toBe(POLLHUP);
  });

  it('pollAsync waits on a worker thread while the event loop runs, and wakes when a datagram arrives', async () => {
    const server = dgram();
    const address = abstractName();
    sys.bindUnix(server, address);
    const waiting = sys.pollAsync([{ fd: server, events: POLLIN }], 10_000);
    let loopRan = false;
    await new Promise<void>((resolve) =>
      setTimeout(() => {
        loopRan = true;
        sys.sendmsgUnix(dgram(), Buffer.from('WATCHDOG=1'), { address });
        resolve();
      }, 20),
    );
    expect(await waiting).toEqual([POLLIN]);
    expect(loopRan).toBe(true);
    expect(sys.recvmsgUnix(server, 64, MSG_DONTWAIT)?.data.toString()).toBe('WATCHDOG=1');
  });

  it('dup2 puts a copy at a chosen fd with FD_CLOEXEC clear', () => {
    const [readEnd, writeEnd] = track(sys.pipe2(O_CLOEXEC));
    const target = track(sys.socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    sys.dup2(readEnd, target);
    expect(fs.readlinkSync(`/proc/self/fd/${target}`)).toBe(fs.readlinkSync(`/proc/self/fd/${readEnd}`));
    const flags = fs.readFileSync(`/proc/self/fdinfo/${target}`, 'utf8');
    // fdinfo flags are octal; O_CLOEXEC (02000000) is clear on a dup2 copy.
    expect(Number.parseInt(/^flags:\s*(\d+)/m.exec(flags)![1]!, 8) & O_CLOEXEC).toBe(0);
    expect(() => sys.dup2(writeEnd, -1)).toThrow(SyscallError);
  });
});
