import { describe, expect, it } from 'vitest';

import {
  ALL_CAPABILITIES_MASK,
  APPC_DEFAULT_CAPABILITIES,
  APPC_DEFAULT_CAPABILITY_MASK,
  CAP_LAST_CAP,
  LINUX_CAPABILITIES,
  capDataBuffer,
  capabilityMask,
  capabilityNames,
  capabilitySets,
  capabilitySetsFromJson,
  capabilitySetsToJson,
  toCapData,
} from '../../stage1/capabilities.js';
import { PlanError } from '../../stage1/plan-error.js';

const retain = (...set: string[]) => ({ name: 'os/linux/capabilities-retain-set', value: { set } });
const remove = (...set: string[]) => ({ name: 'os/linux/capabilities-remove-set', value: { set } });

describe('capability table', () => {
  it('comes from linux/capability.h with CAP_LAST_CAP and the well-known numbers', () => {
    expect(LINUX_CAPABILITIES.CAP_CHOWN).toBe(0);
    expect(LINUX_CAPABILITIES.CAP_SYS_ADMIN).toBe(21);
    expect(LINUX_CAPABILITIES.CAP_AUDIT_WRITE).toBe(29);
    expect(CAP_LAST_CAP).toBeGreaterThanOrEqual(40);
    expect(Object.keys(LINUX_CAPABILITIES)).toHaveLength(CAP_LAST_CAP + 1);
    expect(capabilityNames(ALL_CAPABILITIES_MASK)).toHaveLength(CAP_LAST_CAP + 1);
  });

  it('holds the appc default set of 14', () => {
    expect(APPC_DEFAULT_CAPABILITIES).toHaveLength(14);
    expect(capabilityNames(APPC_DEFAULT_CAPABILITY_MASK).sort()).toEqual([...APPC_DEFAULT_CAPABILITIES].sort());
  });
});

describe('capabilitySets', () => {
  it('gives a root app the default 14 in bounding, effective and permitted when no isolator is set', () => {
    const s = capabilitySets([], { uid: 0 });
    expect(s.mode).toBe('default');
    expect(s.bounding).toBe(APPC_DEFAULT_CAPABILITY_MASK);
    expect(s.effective).toBe(s.bounding);
    expect(s.permitted).toBe(s.bounding);
    expect(s.inheritable).toBe(0n);
    expect(s.ambient).toBe(0n);
  });

  it('gives a non-root app the bounding set only: no effective, permitted or ambient capabilities', () => {
    const s = capabilitySets([], { uid: 1000 });
    expect(s.bounding).toBe(APPC_DEFAULT_CAPABILITY_MASK);
    expect([s.effective, s.permitted, s.inheritable, s.ambient]).toEqual([0n, 0n, 0n, 0n]);
  });

  it('keeps exactly the retain-set, including capabilities outside the default 14', () => {
    const s = capabilitySets([retain('CAP_NET_ADMIN', 'CAP_CHOWN')], { uid: 0 });
    expect(s.mode).toBe('retain');
    expect(capabilityNames(s.bounding)).toEqual(['CAP_CHOWN', 'CAP_NET_ADMIN']);
    expect(s.effective).toBe(s.bounding);
  });

  it('removes the remove-set from the default 14', () => {
    const s = capabilitySets([remove('CAP_NET_RAW', 'CAP_MKNOD')], { uid: 0 });
    expect(s.mode).toBe('remove');
    const names = capabilityNames(s.bounding);
    expect(names).toHaveLength(12);
    expect(names).not.toContain('CAP_NET_RAW');
    expect(names).not.toContain('CAP_MKNOD');
  });

  it('rejects an unknown capability name and names it', () => {
    expect(() => capabilitySets([retain('CAP_NET_ADMIN', 'CAP_FLY')], { uid: 0, app: 'web' })).toThrow(/app web.*unknown capability "CAP_FLY"/);
    expect(() => capabilityMask(['CAP_FOO', 'BAR'])).toThrow(PlanError);
  });

  it('rejects retain-set and remove-set together', () => {
    expect(() => capabilitySets([retain('CAP_CHOWN'), remove('CAP_KILL')], { uid: 0 })).toThrow(/cannot be used together/);
  });

  it('rejects an empty set', () => {
    expect(() => capabilitySets([{ name: 'os/linux/capabilities-retain-set', value: { set: [] } }], { uid: 0 })).toThrow(/non-empty/);
  });

  it('accepts lowercase names and names without the CAP_ prefix', () => {
    expect(capabilityMask(['net_admin', 'cap_chown'])).toBe(capabilityMask(['CAP_NET_ADMIN', 'CAP_CHOWN']));
  });
});

describe('capset v3 data', () => {
  it('splits masks into two u32 words, low bits first', () => {
    const high = 1n << BigInt(LINUX_CAPABILITIES.CAP_AUDIT_READ ?? 37);
    const data = toCapData({ effective: high | 1n, permitted: 0xffffffffn, inheritable: 0n });
    expect(data[0]).toEqual({ effective: 1, permitted: 0xffffffff, inheritable: 0 });
    expect(data[1]).toEqual({ effective: 1 << (37 - 32), permitted: 0, inheritable: 0 });
    const buf = capDataBuffer(data);
    expect(buf).toHaveLength(24);
    expect(buf.readUInt32LE(12)).toBe(32);
  });

  it('round-trips the sets through JSON hex strings', () => {
    const s = capabilitySets([], { uid: 0 });
    const json = capabilitySetsToJson(s);
    expect(json.bounding).toMatch(/^0x[0-9a-f]+$/);
    expect(capabilitySetsFromJson(JSON.parse(JSON.stringify(json)) as typeof json).bounding).toBe(s.bounding);
  });
});
