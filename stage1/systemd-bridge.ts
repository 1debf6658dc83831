// The init's side of the systemd integration (stage1/README.md "systemd"; the handover is
// stage1/contract.ts SystemdHandover): it reports the pod's events to stage0 on the events stream
// (stage0 turns them into sd_notify(3) messages for the unit), gives each app whose image says it
// speaks sd_notify a NOTIFY_SOCKET of its own and relays what the app sends there, and adds the
// socket activation fds (sd_listen_fds(3)) to the exec step of the app they are for.
//
// An app's NOTIFY_SOCKET is an abstract AF_UNIX datagram socket, `@tspod/<uuid>/notify/<n>-<random>`:
// abstract names live in the network namespace (unix(7)), which the init shares with the apps,
// and need no file in a rootfs that may be read-only. With SO_PASSCRED every datagram carries its
// sender's pid as seen from the init's PID namespace; one from outside the pod (possible with
// --net=host, where the namespace is the host's) has pid 0 and is dropped. Waiting on the sockets
// is poll(2) on one of koffi's worker threads (Syscalls.pollAsync): libuv does not wrap AF_UNIX
// datagram sockets.
import crypto from 'node:crypto';
import fs from 'node:fs';

import { AF_UNIX, MSG_DONTWAIT, O_CLOEXEC, POLLIN, SO_PASSCRED, SOCK_CLOEXEC, SOCK_DGRAM, SOCK_NONBLOCK, SOL_SOCKET, type Syscalls } from '../src/sys/types.js';
import type { PodEvent, SystemdHandover } from './contract.js';
import type { ExecStep } from './exec-app.js';
import { STEP_LISTEN_FD } from './warm-exec.js';

/** systemd reads notification datagrams of at most this size (NOTIFY_BUFFER_MAX, src/core/manager.c). */
export const NOTIFY_MESSAGE_MAX = 4096;

interface NotifySocket {
  app: string;
  address: string;
}

export interface SystemdBridgeOptions {
  sys: Syscalls;
  uuid: string;
  handover: SystemdHandover;
  warn: (message: string) => void;
}

export class SystemdBridge {
  private readonly sockets = new Map<number, NotifySocket>();
  private readonly addresses = new Map<string, string>();
  private wake: [number, number] | undefined;
  private eventsBroken = false;
  private closed = false;

  private constructor(private readonly options: SystemdBridgeOptions) {}

  /** Opens the apps' notification sockets (when stage0 listens for events) and starts relaying. */
  static start(options: SystemdBridgeOptions): SystemdBridge {
    const bridge = new SystemdBridge(options);
    if (options.handover.eventsFd !== undefined && options.handover.notifyApps.length > 0) bridge.listen();
    return bridge;
  }

  /** The NOTIFY_SOCKET an app gets (undefined: none). */
  notifySocketOf(app: string): string | undefined {
    return this.addresses.get(app);
  }

  /** An app's main exec step with its NOTIFY_SOCKET and socket activation fds added. */
  execStep(app: string, step: ExecStep): ExecStep {
    const address = this.addresses.get(app);
    const listen = this.options.handover.listenFds[app];
    return {
      ...step,
      ...(address === undefined ? {} : { env: { ...step.env, NOTIFY_SOCKET: address } }),
      // warm-exec.ts gives the app's exec step the fds at STEP_LISTEN_FD.. (fd 3 carries the step).
      ...(listen === undefined ? {} : { listenFds: { fromFd: STEP_LISTEN_FD, count: listen.fds.length, names: listen.names.map((n) => n.replaceAll(':', '_')) } }),
    };
  }

  /** Reports an event to stage0 (one JSON line); a no-op without an events stream or once stage0 is gone. */
  emit(event: PodEvent): void {
    const fd = this.options.handover.eventsFd;
    if (fd === undefined || this.eventsBroken) return;
    try {
      // A blocking write of one short line: it is whole when it returns.
      fs.writeSync(fd, `${JSON.stringify(event)}\n`);
    } catch {
      this.eventsBroken = true; // EPIPE: stage0 has exited
    }
  }

  /** Stops relaying and closes the sockets. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    const { sys } = this.options;
    if (this.wake !== undefined) {
      try {
        fs.writeSync(this.wake[1], 'x');
      } catch {
        // the poll ends with the process anyway
      }
    }
    for (const fd of this.sockets.keys()) sys.close(fd);
    this.sockets.clear();
  }

  private listen(): void {
    const { sys, uuid, handover } = this.options;
    handover.notifyApps.forEach((app, i) => {
      const fd = sys.socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
      const address = `@tspod/${uuid}/notify/${i}-${crypto.randomBytes(4).toString('hex')}`;
      sys.bindUnix(fd, address);
      sys.setsockoptInt(fd, SOL_SOCKET, SO_PASSCRED, 1);
      this.sockets.set(fd, { app, address });
      this.addresses.set(app, address);
    });
    this.wake = sys.pipe2(O_CLOEXEC);
    void this.relay();
  }

  private async relay(): Promise<void> {
    const { sys } = this.options;
    const polled = [...this.sockets.keys(), this.wake![0]].map((fd) => ({ fd, events: POLLIN }));
    while (!this.closed) {
      let revents: number[];
      try {
        revents = await sys.pollAsync(polled, -1);
      } catch {
        await new Promise((resolve) => setTimeout(resolve, 10)); // EINTR on the worker thread
        continue;
      }
      if (this.closed) return;
      polled.forEach(({ fd }, i) => {
        if (revents[i] === 0 || !this.sockets.has(fd)) return;
        try {
          this.receive(fd);
        } catch (err) {
          this.options.warn(`app ${this.sockets.get(fd)?.app}: reading its notification socket: ${(err as Error).message}`);
        }
      });
    }
  }

  /** Reads every queued datagram of one app's socket and reports it. */
  private receive(fd: number): void {
    const { sys, warn } = this.options;
    const socket = this.sockets.get(fd)!;
    for (let message = sys.recvmsgUnix(fd, NOTIFY_MESSAGE_MAX, MSG_DONTWAIT); message !== undefined; message = sys.recvmsgUnix(fd, NOTIFY_MESSAGE_MAX, MSG_DONTWAIT)) {
      // sd_notify_barrier(3) from the app: closing the fd it sent tells it that everything it sent
      // before has been received (and passed on to stage0).
      for (const passed of message.fds) sys.close(passed);
      if (message.credentials === undefined || message.credentials.pid === 0) {
        warn(`app ${socket.app}: ignored a notification from a process outside the pod`);
        continue;
      }
      if (message.data.length === 0) continue;
      this.emit({ event: 'notify', app: socket.app, message: message.data.toString('utf8') });
    }
  }
}
