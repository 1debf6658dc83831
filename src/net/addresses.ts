// IPv4 addresses and subnets as numbers, for the pod networks' pool and rules. Pure. Pod networks
// are IPv4 only (as rkt's built-in networks were); IPv6 would need its own pool and rules.
import { isIPv4 } from 'node:net';

import { NetworkConfigError } from './network-error.js';

/** An IPv4 subnet: `base` is the network address (host bits zero), as an unsigned 32-bit number. */
export interface Subnet {
  base: number;
  prefixLength: number;
}

export function parseIPv4(text: string, what = 'address'): number {
  if (!isIPv4(text)) throw new NetworkConfigError(`${what} ${JSON.stringify(text)} is not an IPv4 address`);
  return text.split('.').reduce((n, octet) => n * 256 + Number(octet), 0);
}

export function formatIPv4(n: number): string {
  return [24, 16, 8, 0].map((shift) => (n >>> shift) & 0xff).join('.');
}

/** The 32-bit mask of a prefix length (0..32). */
export function prefixMask(prefixLength: number): number {
  return prefixLength === 0 ? 0 : (0xffffffff << (32 - prefixLength)) >>> 0;
}

/** `172.31.0.0/16`; the address must be the network's own (host bits zero), as CNI's host-local wants. */
export function parseSubnet(text: string, what = 'subnet'): Subnet {
  const match = /^([0-9.]+)\/([0-9]{1,2})$/.exec(text);
  if (match === null) throw new NetworkConfigError(`${what} ${JSON.stringify(text)} is not an IPv4 subnet in CIDR notation (e.g. 172.31.0.0/16)`);
  const prefixLength = Number(match[2]);
  // /31 and /32 leave no address for both a gateway and a pod.
  if (prefixLength < 8 || prefixLength > 30) throw new NetworkConfigError(`${what} ${text}: the prefix length must be between 8 and 30`);
  const address = parseIPv4(match[1]!, what);
  const base = (address & prefixMask(prefixLength)) >>> 0;
  if (base !== address) throw new NetworkConfigError(`${what} ${text} has host bits set`, { suggestions: [`use ${formatIPv4(base)}/${prefixLength}`] });
  return { base, prefixLength };
}

export function formatSubnet(subnet: Subnet): string {
  return `${formatIPv4(subnet.base)}/${subnet.prefixLength}`;
}

export function inSubnet(subnet: Subnet, address: number): boolean {
  return ((address & prefixMask(subnet.prefixLength)) >>> 0) === subnet.base;
}

/** The broadcast address of the subnet (all host bits set). */
export function broadcastOf(subnet: Subnet): number {
  return (subnet.base | ~prefixMask(subnet.prefixLength)) >>> 0;
}
