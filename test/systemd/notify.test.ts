import { describe, expect, it } from 'vitest';

import { RecordingSyscalls } from '../../src/sys/recording.js';
import { AF_UNIX, O_CLOEXEC, POLLHUP, SOCK_CLOEXEC, SOCK_DGRAM } from '../../src/sys/types.js';
import { formatNotifyMessage, parseNotifyMessage, parseNotifySocket, SdNotify } from '../../src/systemd/notify.js';

describe('sd_notify message format', () => {
  it('formats one assignment per line; a newline in a value becomes a space', () => {
    expect(formatNotifyMessage({ READY: 1, STATUS: 'two\nlines' })).toBe('READY=1\nSTATUS=two lines');
  });

  it('parses assignments in order and skips lines without "="', () => {
    expect(parseNotifyMessage('READY=1\ngarbage\nSTATUS=a=b\n')).toEqual([
      ['READY', '1'],
      ['STATUS', 'a=b'],
    ]);
  });

  it('accepts an absolute path or an @abstract NOTIFY_SOCKET, and refuses vsock: and relative ones with a reason', () => {
    expect(parseNotifySocket('/run/systemd/notify')).toEqual({ address: '/run/systemd/notify' });
    expect(parseNotifySocket('@/org/freedesktop/systemd1/notify/123')).toEqual({ address: '@/org/freedesktop/systemd1/notify/123' });
    expect(parseNotifySocket('vsock:2:1234')).toEqual({ reason: 'NOTIFY_SOCKET=vsock:2:1234: AF_VSOCK notification sockets are not supported' });
    expect(parseNotifySocket('run/notify')).toHaveProperty('reason');
    expect(parseNotifySocket('@')).toHaveProperty('reason');
  });
});

describe('SdNotify over the syscall layer (recording fake)', () => {
  const open = (fake: RecordingSyscalls, warnings: string[] = []) => SdNotify.open('@notify', { sys: fake, warn: (m) => warnings.push(m) });

  it('opens an AF_UNIX SOCK_DGRAM|SOCK_CLOEXEC socket and sends each message as one datagram to the address', () => {
    const fake = new RecordingSyscalls();
    const notify = open(fake);
    expect(fake.calls[0]).toEqual({ syscall: 'socket', args: [AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0] });
    expect(notify.send({ READY: 1 })).toBe(true);
    expect(fake.unixSent.map((m) => [m.data.toString(), m.address, m.fds])).toEqual([['READY=1', '@notify', []]]);
  });

  it('barrier: sends BARRIER=1 with the pipe write end, closes it before waiting, and waits for POLLHUP on the read end', async () => {
    const fake = new RecordingSyscalls();
    const notify = open(fake);
    fake.pollResults.push([POLLHUP]);
    await expect(notify.barrier(1234)).resolves.toBe(true);
    // The fake hands out fds from 100: the socket, then the pipe's read and write ends.
    const [readEnd, writeEnd] = [101, 102];
    expect(fake.calls.find((c) => c.syscall === 'pipe2')!.args).toEqual([O_CLOEXEC]);
    expect(fake.unixSent).toEqual([{ fd: 100, data: Buffer.from('BARRIER=1'), address: '@notify', fds: [writeEnd] }]);
    const names = fake.calls.map((c) => `${c.syscall}${c.syscall === 'close' ? ` ${c.args[0]}` : ''}`);
    // Our copy of the write end is closed before the wait, or the pipe would never hang up.
    expect(names.slice(1)).toEqual(['pipe2', 'sendmsgUnix', `close ${writeEnd}`, 'pollAsync', `close ${readEnd}`]);
    expect(fake.calls.find((c) => c.syscall === 'pollAsync')!.args).toEqual([[{ fd: readEnd, events: 0 }], 1234]);
  });

  it('barrier: a timeout (no event) resolves false with a warning and still closes the read end', async () => {
    const fake = new RecordingSyscalls();
    const warnings: string[] = [];
    const notify = open(fake, warnings);
    await expect(notify.barrier(50)).resolves.toBe(false);
    expect(warnings).toEqual(['sd_notify barrier: NOTIFY_SOCKET @notify did not answer within 50 ms']);
    expect(fake.openFds).toEqual(new Set([100]));
  });

  it('after a failed send (ECONNREFUSED) it warns once and sends nothing more, barriers included', async () => {
    const fake = new RecordingSyscalls();
    const warnings: string[] = [];
    const notify = open(fake, warnings);
    fake.fail('sendmsgUnix', 111);
    expect(notify.send('READY=1')).toBe(false);
    expect(notify.send('STATUS=x')).toBe(false);
    await expect(notify.barrier()).resolves.toBe(false);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/^sd_notify to NOTIFY_SOCKET @notify failed \(sendmsg(Unix)? @notify: ECONNREFUSED/);
    expect(fake.calls.filter((c) => c.syscall === 'sendmsgUnix')).toHaveLength(1);
  });
});
