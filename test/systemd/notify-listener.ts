// A stand-in for systemd's notification socket, for tests: this machine's PID 1 is not systemd,
// and Node cannot bind AF_UNIX datagram sockets, so it is built on src/sys (bindUnix, recvmsgUnix)
// and polled from the event loop. It records every datagram with its arrival time and sender
// pid, and answers BARRIER=1 as the manager does (sd_notify_barrier(3)): it closes the passed fd,
// here after `barrierHoldMs`, recording when, so a test can check that the sender waited for it.
import crypto from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';

import { AF_UNIX, libcSyscalls as sys, MSG_DONTWAIT, SO_PASSCRED, SOCK_CLOEXEC, SOCK_DGRAM, SOCK_NONBLOCK, SOL_SOCKET } from '../../src/sys/index.js';

export interface ReceivedNotification {
  /** performance.now() at arrival. */
  at: number;
  text: string;
  /** Assignments, in order. */
  fields: Record<string, string>;
  pid: number | undefined;
  /** Number of fds that came with it (SCM_RIGHTS). */
  fdCount: number;
  /** performance.now() when the listener closed those fds (barrier answered). */
  closedAt?: number;
}

export class NotifyListener {
  readonly address = `@tspod-test-notify/${process.pid}/${crypto.randomBytes(6).toString('hex')}`;
  readonly messages: ReceivedNotification[] = [];
  private readonly fd: number;
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly barrierHoldMs = 0) {
    this.fd = sys.socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    sys.bindUnix(this.fd, this.address);
    sys.setsockoptInt(this.fd, SOL_SOCKET, SO_PASSCRED, 1);
    this.timer = setInterval(() => this.drain(), 5);
  }

  private drain(): void {
    for (let m = sys.recvmsgUnix(this.fd, 4096, MSG_DONTWAIT); m !== undefined; m = sys.recvmsgUnix(this.fd, 4096, MSG_DONTWAIT)) {
      const text = m.data.toString('utf8');
      const fields: Record<string, string> = {};
      for (const line of text.split('\n')) {
        const eq = line.indexOf('=');
        if (eq > 0) fields[line.slice(0, eq)] = line.slice(eq + 1);
      }
      const received: ReceivedNotification = { at: performance.now(), text, fields, pid: m.credentials?.pid, fdCount: m.fds.length };
      this.messages.push(received);
      if (m.fds.length > 0) {
        setTimeout(() => {
          for (const fd of m.fds) sys.close(fd);
          received.closedAt = performance.now();
        }, this.barrierHoldMs);
      }
    }
  }

  /** The first message (from index `from`) matching `predicate`, waiting up to `timeoutMs`. */
  async waitFor(predicate: (m: ReceivedNotification) => boolean, timeoutMs = 30_000, from = 0): Promise<ReceivedNotification> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      this.drain();
      const found = this.messages.slice(from).find(predicate);
      if (found !== undefined) return found;
      if (performance.now() > deadline) throw new Error(`no matching notification within ${timeoutMs} ms; got:\n${this.messages.map((m) => JSON.stringify(m.text)).join('\n')}`);
      await sleep(10);
    }
  }

  close(): void {
    clearInterval(this.timer);
    this.drain();
    sys.close(this.fd);
  }
}
