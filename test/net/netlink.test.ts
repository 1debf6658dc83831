// rtnetlink requests as bytes (linux/netlink.h, linux/rtnetlink.h, linux/if_link.h, linux/veth.h,
// linux/if_addr.h layouts), replies decoded, and the socket's request/reply loop against the
// recording fake (kernel errors become SyscallErrors named after the RTM_* message).
import { describe, expect, it } from 'vitest';

import {
  decodeReplies,
  encodeRequest,
  IFA_ADDRESS,
  IFA_BROADCAST,
  IFA_LOCAL,
  IFLA_IFNAME,
  IFLA_INFO_DATA,
  IFLA_INFO_KIND,
  IFLA_LINKINFO,
  IFLA_MASTER,
  IFLA_MTU,
  IFLA_NET_NS_FD,
  NLM_F_ACK,
  NLM_F_CREATE,
  NLM_F_EXCL,
  NLM_F_REQUEST,
  NLMSG_ERROR,
  nlmsg,
  RTA_GATEWAY,
  RTA_OIF,
  RTM_DELLINK,
  RTM_GETLINK,
  RTM_NEWADDR,
  RTM_NEWLINK,
  RTM_NEWROUTE,
  RtnetlinkSocket,
  rtattr,
  VETH_INFO_PEER,
} from '../../src/net/netlink.js';
import { parseIPv4 } from '../../src/net/addresses.js';
import { RecordingSyscalls } from '../../src/sys/recording.js';
import { AF_NETLINK, NETLINK_ROUTE, SOCK_CLOEXEC, SOCK_RAW, SyscallError } from '../../src/sys/types.js';

const noIndex = (): number => {
  throw new Error('no index expected');
};

/** rtattrs of a buffer as [type, payload] (NLA_ALIGN padding skipped). */
function attrs(buf: Buffer): [number, Buffer][] {
  const out: [number, Buffer][] = [];
  for (let off = 0; off + 4 <= buf.length; ) {
    const len = buf.readUInt16LE(off);
    out.push([buf.readUInt16LE(off + 2), buf.subarray(off + 4, off + len)]);
    off += (len + 3) & ~3;
  }
  return out;
}
const attr = (list: [number, Buffer][], type: number): Buffer => list.find(([t]) => t === type)![1];

describe('rtnetlink encoding (pure)', () => {
  it('rtattr: length without padding, payload padded to 4 bytes', () => {
    expect(rtattr(IFLA_IFNAME, Buffer.from('eth0\0'))).toEqual(Buffer.from([9, 0, 3, 0, 0x65, 0x74, 0x68, 0x30, 0, 0, 0, 0]));
  });

  it('delete-link: RTM_DELLINK, REQUEST|ACK, an ifinfomsg with index 0 and IFLA_IFNAME (byte for byte)', () => {
    const bytes = encodeRequest({ op: 'delete-link', link: { name: 'tsp0' } }, 7, noIndex);
    expect(bytes.toString('hex')).toBe(
      // nlmsghdr: len 44, RTM_DELLINK (17), flags 5, seq 7, pid 0
      '2c000000' + '1100' + '0500' + '07000000' + '00000000' +
        // struct ifinfomsg: all zero
        '00'.repeat(16) +
        // IFLA_IFNAME "tsp0\0", padded
        '0900' + '0300' + '7473703000' + '000000',
    );
    expect(RTM_DELLINK).toBe(17);
  });

  it('add-bridge: create-exclusive RTM_NEWLINK with IFLA_IFNAME, IFLA_MTU and IFLA_LINKINFO { kind bridge }', () => {
    const bytes = encodeRequest({ op: 'add-bridge', name: 'tspod0', mtu: 1400 }, 1, noIndex);
    expect(bytes.readUInt16LE(4)).toBe(RTM_NEWLINK);
    expect(bytes.readUInt16LE(6)).toBe(NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL);
    const list = attrs(bytes.subarray(32));
    expect(attr(list, IFLA_IFNAME).toString()).toBe('tspod0\0');
    expect(attr(list, IFLA_MTU).readUInt32LE(0)).toBe(1400);
    expect(attr(attrs(attr(list, IFLA_LINKINFO)), IFLA_INFO_KIND).toString()).toBe('bridge\0');
  });

  it('add-veth: the peer (VETH_INFO_PEER = ifinfomsg + its attributes) carries IFLA_NET_NS_FD', () => {
    const bytes = encodeRequest({ op: 'add-veth', name: 'tsp0123456789ab', peer: 'eth0', peerNetnsFd: 42 }, 3, noIndex);
    expect(bytes.readUInt32LE(0)).toBe(bytes.length);
    const list = attrs(bytes.subarray(32));
    expect(attr(list, IFLA_IFNAME).toString()).toBe('tsp0123456789ab\0');
    const linkinfo = attrs(attr(list, IFLA_LINKINFO));
    expect(attr(linkinfo, IFLA_INFO_KIND).toString()).toBe('veth\0');
    const peer = attr(attrs(attr(linkinfo, IFLA_INFO_DATA)), VETH_INFO_PEER);
    const peerAttrs = attrs(peer.subarray(16)); // after its struct ifinfomsg
    expect(attr(peerAttrs, IFLA_IFNAME).toString()).toBe('eth0\0');
    expect(attr(peerAttrs, IFLA_NET_NS_FD).readUInt32LE(0)).toBe(42);
  });

  it('set-link up with a master: IFF_UP in flags and change, IFLA_MASTER = the master\'s index', () => {
    const bytes = encodeRequest({ op: 'set-link', link: { name: 'tspX' }, up: true, master: 'tspod0' }, 4, (l) => (l.name === 'tspod0' ? 9 : -1));
    expect(bytes.readUInt16LE(6)).toBe(NLM_F_REQUEST | NLM_F_ACK); // no CREATE: the link must exist
    expect(bytes.readUInt32LE(16 + 8)).toBe(1); // ifi_flags
    expect(bytes.readUInt32LE(16 + 12)).toBe(1); // ifi_change
    expect(attr(attrs(bytes.subarray(32)), IFLA_MASTER).readUInt32LE(0)).toBe(9);
  });

  it('add-address: struct ifaddrmsg (AF_INET, prefix, index) then IFA_LOCAL, IFA_ADDRESS and IFA_BROADCAST in network byte order', () => {
    const bytes = encodeRequest({ op: 'add-address', link: { name: 'eth0' }, address: parseIPv4('172.31.0.5'), prefixLength: 16, broadcast: parseIPv4('172.31.255.255') }, 5, () => 2);
    expect(bytes.readUInt16LE(4)).toBe(RTM_NEWADDR);
    expect([...bytes.subarray(16, 24)]).toEqual([2, 16, 0, 0, 2, 0, 0, 0]);
    const list = attrs(bytes.subarray(24));
    expect([...attr(list, IFA_LOCAL)]).toEqual([172, 31, 0, 5]);
    expect([...attr(list, IFA_ADDRESS)]).toEqual([172, 31, 0, 5]);
    expect([...attr(list, IFA_BROADCAST)]).toEqual([172, 31, 255, 255]);
  });

  it('add-default-route: struct rtmsg (AF_INET, dst_len 0, main table, boot protocol, universe, unicast), RTA_GATEWAY, RTA_OIF', () => {
    const bytes = encodeRequest({ op: 'add-default-route', link: { name: 'eth0' }, gateway: parseIPv4('172.31.0.1') }, 6, () => 2);
    expect(bytes.readUInt16LE(4)).toBe(RTM_NEWROUTE);
    expect([...bytes.subarray(16, 28)]).toEqual([2, 0, 0, 0, 254, 3, 0, 1, 0, 0, 0, 0]);
    const list = attrs(bytes.subarray(28));
    expect([...attr(list, RTA_GATEWAY)]).toEqual([172, 31, 0, 1]);
    expect(attr(list, RTA_OIF).readUInt32LE(0)).toBe(2);
  });

  it('get-link asks without ACK (the answer is an RTM_NEWLINK)', () => {
    const bytes = encodeRequest({ op: 'get-link', link: { name: 'lo' } }, 8, noIndex);
    expect(bytes.readUInt16LE(4)).toBe(RTM_GETLINK);
    expect(bytes.readUInt16LE(6)).toBe(NLM_F_REQUEST);
  });
});

/** An NLMSG_ERROR reply: error 0 is an ACK, else -errno. */
function errorReply(seq: number, errno: number): Buffer {
  const body = Buffer.alloc(4 + 16);
  body.writeInt32LE(-errno, 0);
  return nlmsg(NLMSG_ERROR, 0, seq, body);
}
function linkReply(seq: number, index: number): Buffer {
  const body = Buffer.alloc(16);
  body.writeInt32LE(index, 4);
  return nlmsg(RTM_NEWLINK, 0, seq, body);
}

describe('decodeReplies', () => {
  it('reads acknowledgements, errors and link answers from one datagram', () => {
    const replies = decodeReplies(Buffer.concat([errorReply(1, 0), errorReply(2, 17), linkReply(3, 12)]));
    expect(replies).toEqual([
      { type: NLMSG_ERROR, seq: 1, errno: 0 },
      { type: NLMSG_ERROR, seq: 2, errno: 17 },
      { type: RTM_NEWLINK, seq: 3, index: 12 },
    ]);
  });

  it('stops at a truncated message', () => {
    expect(decodeReplies(errorReply(1, 0).subarray(0, 20))).toEqual([]);
  });
});

describe('RtnetlinkSocket (recording fake)', () => {
  it('opens NETLINK_ROUTE, resolves a name to its index once, skips replies to other sequence numbers', () => {
    const sys = new RecordingSyscalls();
    const socket = RtnetlinkSocket.open(sys);
    expect(sys.calls[0]).toEqual({ syscall: 'socket', args: [AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE] });
    sys.replies.push(linkReply(1, 7), errorReply(99, 0), errorReply(2, 0), errorReply(3, 0));
    socket.request({ op: 'add-address', link: { name: 'eth0' }, address: 1, prefixLength: 8 });
    socket.request({ op: 'set-link', link: { name: 'eth0' }, up: true });
    expect(sys.sent.map((b) => b.readUInt16LE(4))).toEqual([RTM_GETLINK, RTM_NEWADDR, RTM_NEWLINK]);
    expect(sys.sent[1]!.readUInt32LE(16 + 4)).toBe(7);
    socket.close();
    expect(sys.openFds.size).toBe(0);
  });

  it('a kernel error is a SyscallError with the RTM_* name, the errno code and the interface', () => {
    const sys = new RecordingSyscalls();
    const socket = RtnetlinkSocket.open(sys);
    sys.replies.push(errorReply(1, 17));
    try {
      socket.request({ op: 'add-bridge', name: 'tspod0' });
      expect.fail('no error');
    } catch (err) {
      expect(err).toBeInstanceOf(SyscallError);
      expect((err as SyscallError).code).toBe('EEXIST');
      expect((err as SyscallError).syscall).toBe('RTM_NEWLINK bridge');
      expect((err as SyscallError).path).toBe('tspod0');
    }
  });

  it('a missing link while resolving an index is ENODEV', () => {
    const sys = new RecordingSyscalls();
    const socket = RtnetlinkSocket.open(sys);
    sys.replies.push(errorReply(1, 19));
    expect(() => socket.request({ op: 'add-default-route', link: { name: 'eth9' }, gateway: 1 })).toThrow(/ENODEV/);
  });
});
