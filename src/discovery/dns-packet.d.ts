// Types for the part of dns-packet 5 (which ships none) that src/discovery/dns.ts uses. Record
// data is typed loosely (`unknown`): dns.ts narrows it per record type.
declare module 'dns-packet' {
  export interface Question {
    type: string;
    name: string;
    class?: string;
  }

  export interface Answer {
    type: string;
    name: string;
    class?: string;
    ttl?: number;
    /** A/AAAA: string; TXT: Buffer[]; CNAME: string; unknown types (`UNKNOWN_61`): Buffer. */
    data?: unknown;
    /** OPT pseudo-record fields. */
    udpPayloadSize?: number;
    extendedRcode?: number;
    ednsVersion?: number;
    flags?: number;
    options?: unknown[];
  }

  export interface Packet {
    type?: 'query' | 'response';
    id?: number;
    flags?: number;
    questions?: Question[];
    answers?: Answer[];
    authorities?: Answer[];
    additionals?: Answer[];
  }

  export interface DecodedPacket extends Required<Omit<Packet, 'flags'>> {
    flags: number;
    flag_qr: boolean;
    flag_aa: boolean;
    flag_tc: boolean;
    flag_rd: boolean;
    flag_ra: boolean;
    flag_ad: boolean;
    flag_cd: boolean;
    opcode: string;
    rcode: string;
  }

  export function encode(packet: Packet): Buffer;
  export function decode(buf: Buffer): DecodedPacket;
  /** Encodes with the 2-byte length prefix of DNS over TCP (RFC 1035 §4.2.2). */
  export function streamEncode(packet: Packet): Buffer;
  export function streamDecode(buf: Buffer): DecodedPacket;

  export const AUTHORITATIVE_ANSWER: number;
  export const TRUNCATED_RESPONSE: number;
  export const RECURSION_DESIRED: number;
  export const RECURSION_AVAILABLE: number;
  export const AUTHENTIC_DATA: number;
  export const CHECKING_DISABLED: number;
  export const DNSSEC_OK: number;

  const dnsPacket: {
    encode: typeof encode;
    decode: typeof decode;
    streamEncode: typeof streamEncode;
    streamDecode: typeof streamDecode;
    AUTHORITATIVE_ANSWER: number;
    TRUNCATED_RESPONSE: number;
    RECURSION_DESIRED: number;
    RECURSION_AVAILABLE: number;
    AUTHENTIC_DATA: number;
    CHECKING_DISABLED: number;
    DNSSEC_OK: number;
  };
  export default dnsPacket;
}
