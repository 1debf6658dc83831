// rtnetlink(7) for tspod's own networks: the requests a pod network needs (a bridge, a veth pair
// whose peer is created in another network namespace, addresses, a default route, link state),
// described as data, encoded to bytes by pure functions (tested against the layouts of
// linux/netlink.h, linux/rtnetlink.h, linux/if_link.h and linux/if_addr.h), and sent on a
// NETLINK_ROUTE socket through src/sys. A netlink socket acts on the network namespace it was
// created in, whatever thread later uses it (netlink(7), net/netlink/af_netlink.c: sk_net is
// fixed at socket(2)), which is how stage0 configures the host and the pod side from one thread.
import { AF_INET, AF_NETLINK, NETLINK_ROUTE, SOCK_CLOEXEC, SOCK_RAW, SyscallError, type Syscalls } from '../sys/types.js';

// linux/netlink.h
export const NLMSG_HDRLEN = 16;
export const NLMSG_ERROR = 2;
export const NLM_F_REQUEST = 0x1;
export const NLM_F_ACK = 0x4;
export const NLM_F_EXCL = 0x200;
export const NLM_F_CREATE = 0x400;
// linux/rtnetlink.h
export const RTM_NEWLINK = 16;
export const RTM_DELLINK = 17;
export const RTM_GETLINK = 18;
export const RTM_NEWADDR = 20;
export const RTM_NEWROUTE = 24;
export const RT_TABLE_MAIN = 254;
export const RTPROT_BOOT = 3;
export const RT_SCOPE_UNIVERSE = 0;
export const RTN_UNICAST = 1;
export const RTA_OIF = 4;
export const RTA_GATEWAY = 5;
// linux/if_link.h, linux/veth.h
export const IFLA_IFNAME = 3;
export const IFLA_MTU = 4;
export const IFLA_MASTER = 10;
export const IFLA_LINKINFO = 18;
export const IFLA_NET_NS_FD = 28;
export const IFLA_INFO_KIND = 1;
export const IFLA_INFO_DATA = 2;
export const VETH_INFO_PEER = 1;
// linux/if_addr.h
export const IFA_ADDRESS = 1;
export const IFA_LOCAL = 2;
export const IFA_BROADCAST = 4;
// linux/if.h
export const IFF_UP = 0x1;

/** sizeof(struct ifinfomsg), sizeof(struct ifaddrmsg), sizeof(struct rtmsg). */
const IFINFOMSG_LEN = 16;
const IFADDRMSG_LEN = 8;
const RTMSG_LEN = 12;

/** A link named in a request: by name (the kernel looks names up when the index is 0). */
export type LinkRef = { name: string };

/** The requests of a pod network, as data. Addresses are IPv4 as unsigned 32-bit numbers. */
export type NetlinkRequest =
  | { op: 'add-bridge'; name: string; mtu?: number }
  | { op: 'add-veth'; name: string; peer: string; peerNetnsFd: number; mtu?: number }
  | { op: 'set-link'; link: LinkRef; up?: boolean; master?: string }
  | { op: 'add-address'; link: LinkRef; address: number; prefixLength: number; broadcast?: number }
  | { op: 'add-default-route'; link: LinkRef; gateway: number }
  | { op: 'delete-link'; link: LinkRef }
  | { op: 'get-link'; link: LinkRef };

// -------------------------------------------------------------------------------------------------
// Encoding (pure)

/** NLA_ALIGN / RTA_ALIGN: attributes and messages are padded to 4 bytes. */
export function align4(n: number): number {
  return (n + 3) & ~3;
}

/** One rtattr: `struct rtattr { unsigned short rta_len; unsigned short rta_type; }` + payload + padding. */
export function rtattr(type: number, payload: Buffer): Buffer {
  const attr = Buffer.alloc(align4(4 + payload.length));
  attr.writeUInt16LE(4 + payload.length, 0);
  attr.writeUInt16LE(type, 2);
  payload.copy(attr, 4);
  return attr;
}

const str = (s: string): Buffer => Buffer.from(`${s}\0`, 'latin1');
const u32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0, 0);
  return b;
};
/** IPv4 addresses travel in network byte order. */
const ipv4 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0, 0);
  return b;
};

/** `struct ifinfomsg`: family AF_UNSPEC, the index (0: look up IFLA_IFNAME), flags and the change mask. */
export function ifinfomsg(index = 0, flags = 0, change = 0): Buffer {
  const b = Buffer.alloc(IFINFOMSG_LEN);
  b.writeInt32LE(index, 4);
  b.writeUInt32LE(flags >>> 0, 8);
  b.writeUInt32LE(change >>> 0, 12);
  return b;
}

/** `struct nlmsghdr` + body: length, type, flags, sequence number, port id 0 (the kernel fills it). */
export function nlmsg(type: number, flags: number, seq: number, body: Buffer): Buffer {
  const header = Buffer.alloc(NLMSG_HDRLEN);
  header.writeUInt32LE(NLMSG_HDRLEN + body.length, 0);
  header.writeUInt16LE(type, 4);
  header.writeUInt16LE(flags, 6);
  header.writeUInt32LE(seq >>> 0, 8);
  return Buffer.concat([header, body]);
}

const linkName = (link: LinkRef): Buffer => rtattr(IFLA_IFNAME, str(link.name));
const CREATE = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;

/**
 * The bytes of one request. `index` resolves a link to its index where the kernel needs one
 * (addresses and routes name their interface by index only).
 */
export function encodeRequest(request: NetlinkRequest, seq: number, index: (link: LinkRef) => number): Buffer {
  switch (request.op) {
    case 'add-bridge': {
      const attrs = [rtattr(IFLA_IFNAME, str(request.name)), ...(request.mtu === undefined ? [] : [rtattr(IFLA_MTU, u32(request.mtu))])];
      const linkinfo = rtattr(IFLA_LINKINFO, rtattr(IFLA_INFO_KIND, str('bridge')));
      return nlmsg(RTM_NEWLINK, CREATE, seq, Buffer.concat([ifinfomsg(), ...attrs, linkinfo]));
    }
    case 'add-veth': {
      const mtu = request.mtu === undefined ? [] : [rtattr(IFLA_MTU, u32(request.mtu))];
      // linux/veth.h: VETH_INFO_PEER carries a struct ifinfomsg and the peer's own attributes; its
      // IFLA_NET_NS_FD puts the peer into that namespace (drivers/net/veth.c, veth_newlink).
      const peer = Buffer.concat([ifinfomsg(), rtattr(IFLA_IFNAME, str(request.peer)), ...mtu, rtattr(IFLA_NET_NS_FD, u32(request.peerNetnsFd))]);
      const data = rtattr(IFLA_INFO_DATA, rtattr(VETH_INFO_PEER, peer));
      const linkinfo = rtattr(IFLA_LINKINFO, Buffer.concat([rtattr(IFLA_INFO_KIND, str('veth')), data]));
      return nlmsg(RTM_NEWLINK, CREATE, seq, Buffer.concat([ifinfomsg(), rtattr(IFLA_IFNAME, str(request.name)), ...mtu, linkinfo]));
    }
    case 'set-link': {
      const up = request.up === undefined ? [0, 0] : [request.up ? IFF_UP : 0, IFF_UP];
      const master = request.master === undefined ? [] : [rtattr(IFLA_MASTER, u32(index({ name: request.master })))];
      return nlmsg(RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK, seq, Buffer.concat([ifinfomsg(0, up[0], up[1]), linkName(request.link), ...master]));
    }
    case 'add-address': {
      // struct ifaddrmsg { u8 family, prefixlen, flags, scope; u32 index; }
      const msg = Buffer.alloc(IFADDRMSG_LEN);
      msg.writeUInt8(AF_INET, 0);
      msg.writeUInt8(request.prefixLength, 1);
      msg.writeUInt8(RT_SCOPE_UNIVERSE, 3);
      msg.writeUInt32LE(index(request.link), 4);
      const attrs = [rtattr(IFA_LOCAL, ipv4(request.address)), rtattr(IFA_ADDRESS, ipv4(request.address))];
      if (request.broadcast !== undefined) attrs.push(rtattr(IFA_BROADCAST, ipv4(request.broadcast)));
      return nlmsg(RTM_NEWADDR, CREATE, seq, Buffer.concat([msg, ...attrs]));
    }
    case 'add-default-route': {
      // struct rtmsg { u8 family, dst_len, src_len, tos, table, protocol, scope, type; u32 flags; }
      const msg = Buffer.alloc(RTMSG_LEN);
      msg.writeUInt8(AF_INET, 0);
      msg.writeUInt8(RT_TABLE_MAIN, 4);
      msg.writeUInt8(RTPROT_BOOT, 5);
      msg.writeUInt8(RT_SCOPE_UNIVERSE, 6);
      msg.writeUInt8(RTN_UNICAST, 7);
      const attrs = [rtattr(RTA_GATEWAY, ipv4(request.gateway)), rtattr(RTA_OIF, u32(index(request.link)))];
      return nlmsg(RTM_NEWROUTE, CREATE, seq, Buffer.concat([msg, ...attrs]));
    }
    case 'delete-link':
      return nlmsg(RTM_DELLINK, NLM_F_REQUEST | NLM_F_ACK, seq, Buffer.concat([ifinfomsg(), linkName(request.link)]));
    case 'get-link':
      return nlmsg(RTM_GETLINK, NLM_F_REQUEST, seq, Buffer.concat([ifinfomsg(), linkName(request.link)]));
  }
}

export interface NetlinkReply {
  type: number;
  seq: number;
  /** NLMSG_ERROR: 0 for an acknowledgement, else a positive errno. */
  errno?: number;
  /** RTM_NEWLINK (a get-link answer): the interface index. */
  index?: number;
}

/** The messages of one recv(2), in order. */
export function decodeReplies(data: Buffer): NetlinkReply[] {
  const replies: NetlinkReply[] = [];
  let offset = 0;
  while (offset + NLMSG_HDRLEN <= data.length) {
    const length = data.readUInt32LE(offset);
    if (length < NLMSG_HDRLEN || offset + length > data.length) break;
    const reply: NetlinkReply = { type: data.readUInt16LE(offset + 4), seq: data.readUInt32LE(offset + 8) };
    // struct nlmsgerr { int error; struct nlmsghdr msg; }: error is 0 or a negative errno.
    if (reply.type === NLMSG_ERROR) reply.errno = 0 - data.readInt32LE(offset + NLMSG_HDRLEN);
    if (reply.type === RTM_NEWLINK) reply.index = data.readInt32LE(offset + NLMSG_HDRLEN + 4);
    replies.push(reply);
    offset += align4(length);
  }
  return replies;
}

/** Kernel spellings for error messages. */
const OP_NAMES: Record<NetlinkRequest['op'], string> = {
  'add-bridge': 'RTM_NEWLINK bridge',
  'add-veth': 'RTM_NEWLINK veth',
  'set-link': 'RTM_NEWLINK',
  'add-address': 'RTM_NEWADDR',
  'add-default-route': 'RTM_NEWROUTE',
  'delete-link': 'RTM_DELLINK',
  'get-link': 'RTM_GETLINK',
};

/** The interface a request is about, for error messages. */
export function requestSubject(request: NetlinkRequest): string {
  return 'link' in request ? request.link.name : request.name;
}

// -------------------------------------------------------------------------------------------------
// The socket (apply)

const RECV_BUFFER = 65536;

/**
 * A NETLINK_ROUTE socket in the network namespace of the thread that opened it. Requests are
 * synchronous: send, then recv until the reply with the request's sequence number.
 */
export class RtnetlinkSocket {
  private seq = 1;
  private readonly buffer = Buffer.alloc(RECV_BUFFER);
  private readonly indexes = new Map<string, number>();

  private constructor(
    private readonly sys: Syscalls,
    private readonly fd: number,
  ) {}

  /** Opens the socket in the calling thread's network namespace (socket(2) binds it there for good). */
  static open(sys: Syscalls): RtnetlinkSocket {
    return new RtnetlinkSocket(sys, sys.socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE));
  }

  /** The index of a link, asked once per name (RTM_GETLINK). */
  index(link: LinkRef): number {
    const known = this.indexes.get(link.name);
    if (known !== undefined) return known;
    const reply = this.exchange({ op: 'get-link', link });
    if (reply.index === undefined) throw new SyscallError(OP_NAMES['get-link'], 19 /* ENODEV */, link.name);
    this.indexes.set(link.name, reply.index);
    return reply.index;
  }

  /** Sends one request; throws SyscallError (syscall = the RTM_* name, path = the interface) on a kernel error. */
  request(request: NetlinkRequest): NetlinkReply {
    return this.exchange(request);
  }

  private exchange(request: NetlinkRequest): NetlinkReply {
    // Indexes are resolved (by requests of their own) while encoding; the sequence number is taken
    // after them, so requests go out in sequence order.
    const message = encodeRequest(request, 0, (link) => this.index(link));
    const seq = this.seq++;
    message.writeUInt32LE(seq, 8);
    this.sys.send(this.fd, message);
    if (request.op === 'delete-link') this.indexes.delete(request.link.name);
    for (;;) {
      const n = this.sys.recv(this.fd, this.buffer);
      for (const reply of decodeReplies(this.buffer.subarray(0, n))) {
        if (reply.seq !== seq) continue; // a late answer to an earlier request
        if (reply.errno !== undefined && reply.errno !== 0) throw new SyscallError(OP_NAMES[request.op], reply.errno, requestSubject(request));
        return reply;
      }
    }
  }

  close(): void {
    this.sys.close(this.fd);
  }
}
