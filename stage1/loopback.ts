// The loopback interface of a pod's own network namespace. A new network namespace has `lo`
// with 127.0.0.1/8 and ::1 configured but administratively down (network_namespaces(7)), so
// nothing in the pod can reach 127.0.0.1 until it is brought up; rkt's `--net=none` gives a pod
// a working loopback, and so does tspod for every pod that does not share the host's network
// (the metadata service listens there). Pod networks (issue 7) are set up elsewhere; this module
// only owns `lo`. Kernel calls go through src/sys: netdevice(7) SIOCGIFFLAGS/SIOCSIFFLAGS on a
// throw-away AF_INET datagram socket, which acts on the calling thread's network namespace.
import { AF_INET, CLONE_NEWNET, IFF_UP, IFNAMSIZ, IFREQ_FLAGS_OFFSET, IFREQ_SIZE, SIOCGIFFLAGS, SIOCSIFFLAGS, SOCK_CLOEXEC, SOCK_DGRAM, type Syscalls } from '../src/sys/types.js';

export const LOOPBACK_INTERFACE = 'lo';

/** Whether a pod created with these namespace flags needs its own loopback brought up. */
export function needsLoopback(namespaceFlags: number): boolean {
  return (namespaceFlags & CLONE_NEWNET) !== 0;
}

/** A `struct ifreq` naming `name`, the rest zero. */
export function ifreqFor(name: string): Buffer {
  // netdevice(7): ifr_name is NUL-terminated within IFNAMSIZ bytes.
  if (name === '' || Buffer.byteLength(name, 'latin1') >= IFNAMSIZ || name.includes('\0')) {
    throw new RangeError(`interface name "${name}" does not fit struct ifreq (1 to ${IFNAMSIZ - 1} bytes)`);
  }
  const ifreq = Buffer.alloc(IFREQ_SIZE);
  ifreq.write(name, 0, 'latin1');
  return ifreq;
}

export interface InterfaceUpResult {
  name: string;
  /** Flags before (SIOCGIFFLAGS). */
  flagsBefore: number;
  /** False when the interface was already up and nothing was set. */
  changed: boolean;
}

/**
 * Sets IFF_UP on `name` (default `lo`) in the calling thread's network namespace, keeping its
 * other flags. Needs CAP_NET_ADMIN in that namespace. A no-op when it is already up.
 */
export function bringInterfaceUp(sys: Syscalls, name = LOOPBACK_INTERFACE): InterfaceUpResult {
  const fd = sys.socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  try {
    const ifreq = ifreqFor(name);
    sys.ioctlIfreq(fd, SIOCGIFFLAGS, ifreq);
    // ifr_flags is a native-endian short; tspod's architectures (x86_64, aarch64) are little-endian.
    const flagsBefore = ifreq.readUInt16LE(IFREQ_FLAGS_OFFSET);
    if ((flagsBefore & IFF_UP) !== 0) return { name, flagsBefore, changed: false };
    ifreq.writeUInt16LE(flagsBefore | IFF_UP, IFREQ_FLAGS_OFFSET);
    sys.ioctlIfreq(fd, SIOCSIFFLAGS, ifreq);
    return { name, flagsBefore, changed: true };
  } finally {
    sys.close(fd);
  }
}
