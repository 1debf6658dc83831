// The init's side of sd_notify pass-through and socket activation (stage1/systemd-bridge.ts),
// against the real kernel in this test's own network namespace: no privileges needed.
import fs from 'node:fs';

import { afterEach, describe, expect, it } from 'vitest';

import { AF_UNIX, libcSyscalls as sys, O_CLOEXEC, O_NONBLOCK, SOCK_CLOEXEC, SOCK_DGRAM } from '../../src/sys/index.js';
import type { PodEvent, SystemdHandover } from '../../stage1/contract.js';
import type { ExecStep } from '../../stage1/exec-app.js';
import { SystemdBridge } from '../../stage1/systemd-bridge.js';

const UUID = '0b9e44d2-0000-4000-8000-000000000000';
const baseStep = { env: { PATH: '/bin' } } as unknown as ExecStep;

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

/** A bridge whose events go into a pipe this test reads. */
function bridgeWithEvents(handover: Omit<SystemdHandover, 'eventsFd'>) {
  const [readEnd, writeEnd] = sys.pipe2(O_CLOEXEC | O_NONBLOCK);
  const warnings: string[] = [];
  const bridge = SystemdBridge.start({ sys, uuid: UUID, handover: { ...handover, eventsFd: writeEnd }, warn: (m) => warnings.push(m) });
  cleanups.push(() => {
    bridge.close();
    fs.closeSync(readEnd);
    fs.closeSync(writeEnd);
  });
  const events = (): PodEvent[] => {
    const buffer = Buffer.alloc(65536);
    let n = 0;
    try {
      n = fs.readSync(readEnd, buffer);
    } catch {
      // EAGAIN: nothing yet
    }
    return buffer.subarray(0, n).toString().split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as PodEvent);
  };
  return { bridge, events, warnings };
}

async function until<T>(probe: () => T[], count: number): Promise<T[]> {
  const got: T[] = [];
  for (let i = 0; i < 500 && got.length < count; i++) {
    got.push(...probe());
    if (got.length < count) await new Promise((r) => setTimeout(r, 10));
  }
  return got;
}

describe('SystemdBridge', () => {
  it('writes events as JSON lines on the events stream', () => {
    const { bridge, events } = bridgeWithEvents({ prefixOutput: false, notifyApps: [], listenFds: {} });
    bridge.emit({ event: 'ready' });
    bridge.emit({ event: 'exited', app: 'web', status: 3 });
    expect(events()).toEqual([{ event: 'ready' }, { event: 'exited', app: 'web', status: 3 }]);
  });

  it('gives a notify app an abstract NOTIFY_SOCKET and relays what it sends there, closing a barrier fd it passes', async () => {
    const { bridge, events } = bridgeWithEvents({ prefixOutput: false, notifyApps: ['web'], listenFds: {} });
    const step = bridge.execStep('web', baseStep);
    const address = step.env.NOTIFY_SOCKET!;
    expect(address).toMatch(new RegExp(`^@tspod/${UUID}/notify/0-[0-9a-f]{8}$`));
    expect(bridge.execStep('db', baseStep)).toEqual(baseStep);

    const client = sys.socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    const [barrierRead, barrierWrite] = sys.pipe2(O_CLOEXEC | O_NONBLOCK);
    cleanups.push(() => [client, barrierRead].forEach((fd) => sys.close(fd)));
    sys.sendmsgUnix(client, Buffer.from('STATUS=warming up'), { address });
    sys.sendmsgUnix(client, Buffer.from('BARRIER=1'), { address, fds: [barrierWrite] });
    sys.close(barrierWrite);
    sys.sendmsgUnix(client, Buffer.from('READY=1'), { address });
    const got = await until(events, 3);
    expect(got).toEqual([
      { event: 'notify', app: 'web', message: 'STATUS=warming up' },
      { event: 'notify', app: 'web', message: 'BARRIER=1' },
      { event: 'notify', app: 'web', message: 'READY=1' },
    ]);
    // The bridge closed the passed write end: the app's sd_notify_barrier(3) returns.
    expect(fs.readSync(barrierRead, Buffer.alloc(1))).toBe(0);
  });

  it('gives no NOTIFY_SOCKET without an events stream (no NOTIFY_SOCKET of tspod run\'s)', () => {
    const bridge = SystemdBridge.start({ sys, uuid: UUID, handover: { prefixOutput: false, notifyApps: ['web'], listenFds: {} }, warn: () => undefined });
    cleanups.push(() => bridge.close());
    expect(bridge.execStep('web', baseStep).env.NOTIFY_SOCKET).toBeUndefined();
  });

  it('adds the socket activation fds to the app\'s step: from fd 4, with names (a ":" in one would split LISTEN_FDNAMES)', () => {
    const bridge = SystemdBridge.start({ sys, uuid: UUID, handover: { prefixOutput: false, notifyApps: [], listenFds: { web: { fds: [5, 6], names: ['http', 'a:b'] } } }, warn: () => undefined });
    cleanups.push(() => bridge.close());
    expect(bridge.execStep('web', baseStep).listenFds).toEqual({ fromFd: 4, count: 2, names: ['http', 'a_b'] });
    expect(bridge.execStep('db', baseStep).listenFds).toBeUndefined();
  });
});
