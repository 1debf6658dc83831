// The sd_notify(3) client of stage0: one AF_UNIX datagram socket (Node has none, so it goes
// through src/sys), messages of newline-separated VARIABLE=value assignments sent to
// NOTIFY_SOCKET, and sd_notify_barrier(3). Also the message format both ways (formatting what
// tspod sends, parsing what an app sends to its own NOTIFY_SOCKET in the pod).
//
// The socket must be created before stage0 unshares the pod's network namespace: an abstract
// address (`@...`) is looked up in the namespace the socket was created in (unix(7)), and the
// systemd manager listens in the host's.
import { O_CLOEXEC, AF_UNIX, SOCK_CLOEXEC, SOCK_DGRAM, SyscallError, type Syscalls } from '../sys/types.js';

/** sd_notify_barrier(3) callers pass a timeout; systemd's own tools use 5 s. */
export const DEFAULT_BARRIER_TIMEOUT_MS = 5000;

/** The address to send to, from NOTIFY_SOCKET; `reason` when tspod cannot use it. */
export function parseNotifySocket(value: string): { address: string } | { reason: string } {
  // sd_notify(3): an absolute path or `@` for the abstract namespace; systemd 253 added
  // `vsock:CID:PORT` for virtual machines, which a pod runtime on the host never gets.
  if (value.startsWith('/') || (value.startsWith('@') && value.length > 1)) return { address: value };
  if (value.startsWith('vsock')) return { reason: `NOTIFY_SOCKET=${value}: AF_VSOCK notification sockets are not supported` };
  return { reason: `NOTIFY_SOCKET=${value} is neither an absolute path nor an @abstract address` };
}

export type NotifyFields = Record<string, string | number>;

/** `{READY: 1, STATUS: 'x'}` -> `READY=1\nSTATUS=x`: one assignment per line, so a value loses its newlines. */
export function formatNotifyMessage(fields: NotifyFields): string {
  return Object.entries(fields)
    .map(([name, value]) => `${name}=${String(value).replace(/[\r\n]+/g, ' ')}`)
    .join('\n');
}

/** The assignments of a received message, in order; lines without `=` are ignored, as systemd does. */
export function parseNotifyMessage(message: string): [string, string][] {
  const out: [string, string][] = [];
  for (const line of message.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) out.push([line.slice(0, eq), line.slice(eq + 1)]);
  }
  return out;
}

export interface SdNotifyOptions {
  sys: Syscalls;
  /** Told once when sending fails; the client then stays quiet (sd_notify failures never fail the service). */
  warn: (message: string) => void;
}

/** A NOTIFY_SOCKET client. Sending is synchronous (a datagram); only the barrier waits. */
export class SdNotify {
  private broken = false;

  private constructor(
    private readonly options: SdNotifyOptions,
    private readonly fd: number,
    readonly address: string,
  ) {}

  /** Opens the socket now, in the calling thread's network namespace. */
  static open(address: string, options: SdNotifyOptions): SdNotify {
    return new SdNotify(options, options.sys.socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0), address);
  }

  /** Sends one message; false when it could not be sent (then nothing more is tried). */
  send(fields: NotifyFields | string, fds?: readonly number[]): boolean {
    if (this.broken) return false;
    const text = typeof fields === 'string' ? fields : formatNotifyMessage(fields);
    try {
      this.options.sys.sendmsgUnix(this.fd, Buffer.from(text), { address: this.address, ...(fds === undefined ? {} : { fds }) });
      return true;
    } catch (err) {
      this.broken = true;
      const cause = err instanceof SyscallError ? err.message : String(err);
      this.options.warn(`sd_notify to NOTIFY_SOCKET ${this.address} failed (${cause}); no more notifications are sent`);
      return false;
    }
  }

  /**
   * sd_notify_barrier(3): sends BARRIER=1 with the write end of a new pipe (SCM_RIGHTS), closes
   * ours, and waits until the read end reports POLLHUP. The manager closes its copy only after it
   * has processed every message sent before, so once this resolves true nothing sent earlier can
   * be dropped as coming from a process that has already exited (runc#3293). Resolves false on
   * timeout or when the barrier could not be sent.
   */
  async barrier(timeoutMs = DEFAULT_BARRIER_TIMEOUT_MS): Promise<boolean> {
    if (this.broken) return false;
    const { sys } = this.options;
    const [readEnd, writeEnd] = sys.pipe2(O_CLOEXEC);
    try {
      const sent = this.send('BARRIER=1', [writeEnd]);
      sys.close(writeEnd);
      if (!sent) return false;
      // Any event ends the wait: POLLHUP once every copy of the write end is closed (the manager
      // never writes to it).
      const [revents] = await sys.pollAsync([{ fd: readEnd, events: 0 }], timeoutMs);
      if (revents === 0) this.options.warn(`sd_notify barrier: NOTIFY_SOCKET ${this.address} did not answer within ${timeoutMs} ms`);
      return revents !== 0;
    } finally {
      sys.close(readEnd);
    }
  }

  close(): void {
    this.options.sys.close(this.fd);
  }
}
