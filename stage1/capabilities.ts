// Linux capability sets for an app, pure: appc's default set of 14, the
// `os/linux/capabilities-retain-set` / `-remove-set` isolators, and the five per-thread sets
// (bounding, effective, permitted, inheritable, ambient) as bigint bit masks, plus the
// capget(2)/capset(2) v3 data layout. The apply step drops the bounding set with
// prctl(PR_CAPBSET_DROP) and calls capset with `toCapData`; nothing here touches the kernel.
//
// Decision (non-root apps): like rkt (Documentation/capabilities-guide.md), an app whose uid is
// not 0 gets only the bounding set: effective, permitted, inheritable and ambient are empty, so it
// runs with no capabilities unless it executes a file with file capabilities (which the bounding
// set still limits). appc has no isolator asking for ambient capabilities, so tspod does not
// raise any; podman does the same unless asked. A root app (uid 0) gets effective = permitted =
// bounding. Inheritable stays empty for everyone (runc's fix for CVE-2022-29162).
import type { Isolator } from '../src/appc/types.js';
import { CAP_LAST_CAP, LINUX_CAPABILITIES, LINUX_CAPABILITY_U32S_3, LINUX_CAPABILITY_VERSION_3 } from '../src/appc/linux-capabilities.js';
import { PlanError } from './plan-error.js';

export { CAP_LAST_CAP, LINUX_CAPABILITIES, LINUX_CAPABILITY_U32S_3, LINUX_CAPABILITY_VERSION_3 };

export const CAPABILITIES_RETAIN_SET = 'os/linux/capabilities-retain-set';
export const CAPABILITIES_REMOVE_SET = 'os/linux/capabilities-remove-set';

/** spec/ace.md "os/linux/capabilities-remove-set": the default bounding set of every app. */
export const APPC_DEFAULT_CAPABILITIES = [
  'CAP_AUDIT_WRITE',
  'CAP_CHOWN',
  'CAP_DAC_OVERRIDE',
  'CAP_FSETID',
  'CAP_FOWNER',
  'CAP_KILL',
  'CAP_MKNOD',
  'CAP_NET_RAW',
  'CAP_NET_BIND_SERVICE',
  'CAP_SETUID',
  'CAP_SETGID',
  'CAP_SETPCAP',
  'CAP_SETFCAP',
  'CAP_SYS_CHROOT',
] as const;

export interface CapabilitySets {
  bounding: bigint;
  effective: bigint;
  permitted: bigint;
  inheritable: bigint;
  ambient: bigint;
}

/** The same sets as `0x...` hex strings, for JSON (the plan file). */
export type CapabilitySetsJson = Record<keyof CapabilitySets, string>;

/** One `struct __user_cap_data_struct` (linux/capability.h): three u32 words. */
export interface CapData {
  effective: number;
  permitted: number;
  inheritable: number;
}

/** Which isolator decided the bounding set: none (appc default), retain or remove. */
export type CapabilityMode = 'default' | 'retain' | 'remove';

export interface CapabilityOptions {
  uid: number;
  /** Name of the app, for error messages. */
  app?: string;
}

/** Normalises `cap_net_raw` / `NET_RAW` / `CAP_NET_RAW` to `CAP_NET_RAW`. */
export function normalizeCapabilityName(name: string): string {
  const upper = name.trim().toUpperCase();
  return upper.startsWith('CAP_') ? upper : `CAP_${upper}`;
}

/** Names -> mask; unknown names are collected into one error naming every one of them. */
export function capabilityMask(names: readonly string[], context = 'capability set'): bigint {
  let mask = 0n;
  const unknown: string[] = [];
  for (const raw of names) {
    const name = normalizeCapabilityName(raw);
    const bit = Object.hasOwn(LINUX_CAPABILITIES, name) ? LINUX_CAPABILITIES[name] : undefined;
    if (bit === undefined) unknown.push(raw);
    else mask |= 1n << BigInt(bit);
  }
  if (unknown.length > 0) {
    throw new PlanError(
      `${context}: unknown capabilit${unknown.length === 1 ? 'y' : 'ies'} ${unknown.map((u) => JSON.stringify(u)).join(', ')} (known: CAP_CHOWN .. ${capabilityName(CAP_LAST_CAP)}, see capabilities(7))`,
    );
  }
  return mask;
}

/** Mask -> names in bit order (bits above CAP_LAST_CAP come out as `CAP_<n>`). */
export function capabilityNames(mask: bigint): string[] {
  const out: string[] = [];
  for (let bit = 0; mask >> BigInt(bit) !== 0n; bit++) {
    if (((mask >> BigInt(bit)) & 1n) === 1n) out.push(capabilityName(bit));
  }
  return out;
}

function capabilityName(bit: number): string {
  for (const [name, value] of Object.entries(LINUX_CAPABILITIES)) if (value === bit) return name;
  return `CAP_${bit}`;
}

export const APPC_DEFAULT_CAPABILITY_MASK = capabilityMask(APPC_DEFAULT_CAPABILITIES);

/** Every capability this kernel header knows: bits 0..CAP_LAST_CAP. */
export const ALL_CAPABILITIES_MASK = (1n << BigInt(CAP_LAST_CAP + 1)) - 1n;

function isolatorSet(iso: Isolator, where: string): string[] {
  const value = iso.value as { set?: unknown } | null;
  const set = value !== null && typeof value === 'object' ? value.set : undefined;
  if (!Array.isArray(set) || set.length === 0 || !set.every((s): s is string => typeof s === 'string' && s !== '')) {
    throw new PlanError(`${where}: isolator "${iso.name}" needs {"set": [non-empty capability names]}`);
  }
  return set;
}

/**
 * The bounding set an app's isolators give, and which isolator decided it. retain-set = exactly
 * the listed capabilities (any of the kernel's, not only the default 14); remove-set = the
 * default 14 minus the listed ones; several isolators of one kind are merged (union of names).
 */
export function boundingSet(isolators: readonly Isolator[], app = 'app'): { mode: CapabilityMode; mask: bigint } {
  const where = `app ${app}`;
  const retain = isolators.filter((i) => i.name === CAPABILITIES_RETAIN_SET);
  const remove = isolators.filter((i) => i.name === CAPABILITIES_REMOVE_SET);
  if (retain.length > 0 && remove.length > 0) {
    // spec/ace.md: the retain-set and remove-set "are mutually exclusive".
    throw new PlanError(`${where}: isolators "${CAPABILITIES_RETAIN_SET}" and "${CAPABILITIES_REMOVE_SET}" cannot be used together`);
  }
  if (retain.length > 0) {
    return { mode: 'retain', mask: capabilityMask(retain.flatMap((i) => isolatorSet(i, where)), `${where}: ${CAPABILITIES_RETAIN_SET}`) };
  }
  if (remove.length > 0) {
    const removed = capabilityMask(remove.flatMap((i) => isolatorSet(i, where)), `${where}: ${CAPABILITIES_REMOVE_SET}`);
    return { mode: 'remove', mask: APPC_DEFAULT_CAPABILITY_MASK & ~removed };
  }
  return { mode: 'default', mask: APPC_DEFAULT_CAPABILITY_MASK };
}

/** The five capability sets of an app (see the header for the non-root decision). */
export function capabilitySets(isolators: readonly Isolator[], options: CapabilityOptions): CapabilitySets & { mode: CapabilityMode } {
  const { mode, mask: bounding } = boundingSet(isolators, options.app);
  const isRoot = options.uid === 0;
  return {
    mode,
    bounding,
    effective: isRoot ? bounding : 0n,
    permitted: isRoot ? bounding : 0n,
    inheritable: 0n,
    // capabilities(7): "ambient set ... must be a subset of both permitted and inheritable": empty.
    ambient: 0n,
  };
}

/** capset(2) v3 data: two cap_user_data_t entries, [0] for bits 0-31, [1] for bits 32-63. */
export function toCapData(sets: Pick<CapabilitySets, 'effective' | 'permitted' | 'inheritable'>): [CapData, CapData] {
  const word = (mask: bigint, i: number): number => Number((mask >> BigInt(32 * i)) & 0xffffffffn);
  const entry = (i: number): CapData => ({ effective: word(sets.effective, i), permitted: word(sets.permitted, i), inheritable: word(sets.inheritable, i) });
  return [entry(0), entry(1)];
}

/** capset(2) data as the 24 bytes the kernel reads (host byte order, little-endian on x86_64). */
export function capDataBuffer(data: readonly [CapData, CapData]): Buffer {
  const buf = Buffer.alloc(24);
  data.forEach((d, i) => {
    buf.writeUInt32LE(d.effective, i * 12);
    buf.writeUInt32LE(d.permitted, i * 12 + 4);
    buf.writeUInt32LE(d.inheritable, i * 12 + 8);
  });
  return buf;
}

export function capabilitySetsToJson(sets: CapabilitySets): CapabilitySetsJson {
  const hex = (m: bigint): string => `0x${m.toString(16)}`;
  return { bounding: hex(sets.bounding), effective: hex(sets.effective), permitted: hex(sets.permitted), inheritable: hex(sets.inheritable), ambient: hex(sets.ambient) };
}

export function capabilitySetsFromJson(json: CapabilitySetsJson): CapabilitySets {
  return {
    bounding: BigInt(json.bounding),
    effective: BigInt(json.effective),
    permitted: BigInt(json.permitted),
    inheritable: BigInt(json.inheritable),
    ambient: BigInt(json.ambient),
  };
}
