// stage0's placement in a unit's delegated cgroup (src/systemd/delegation.ts), on directory trees
// laid out like cgroupfs and a recording Syscalls for the xattrs systemd sets. A real systemd
// manager in unified mode runs it end to end in test/privileged/pod-systemd-manager.test.ts.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { RecordingSyscalls } from '../../src/sys/recording.js';
import { enterDelegatedCgroup, isDelegated, SUPERVISOR_CGROUP, unifiedCgroupOf } from '../../src/systemd/delegation.js';

const UNIT = 'system.slice/web.service';
const SERVICE_ENV = { INVOCATION_ID: '0f4c2b8e7d6a4b5c9e1f2a3b4c5d6e7f' };

let root: string;
beforeEach(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'tspod-deleg-'));
  fs.writeFileSync(path.join(root, 'cgroup.controllers'), 'cpu memory pids\n');
  fs.mkdirSync(path.join(root, UNIT), { recursive: true });
});
afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

describe('unifiedCgroupOf', () => {
  it('reads the 0:: line of /proc/PID/cgroup, hybrid or not', () => {
    expect(unifiedCgroupOf('0::/system.slice/web.service\n')).toBe(UNIT);
    expect(unifiedCgroupOf('9:name=systemd:/system.slice/x.service\n4:memory:/\n0::/system.slice/x.service\n')).toBe('system.slice/x.service');
    expect(unifiedCgroupOf('0::/\n')).toBe('');
    expect(unifiedCgroupOf('4:memory:/\n1:cpu:/\n')).toBeUndefined();
  });
});

describe('isDelegated', () => {
  it('follows systemd\'s trusted.delegate or user.delegate mark when one is there', () => {
    const sys = new RecordingSyscalls();
    const dir = path.join(root, UNIT);
    sys.lsetxattr(dir, 'user.delegate', Buffer.from('1'));
    expect(isDelegated(sys, dir, {})).toBe(true);
    sys.lsetxattr(dir, 'trusted.delegate', Buffer.from('0'));
    // "0": systemd says not delegated, whatever the environment.
    expect(isDelegated(sys, dir, SERVICE_ENV)).toBe(false);
  });

  it('without a mark (systemd 252, as on Debian 12), takes a service\'s own cgroup when systemd started this process', () => {
    const sys = new RecordingSyscalls();
    expect(isDelegated(sys, path.join(root, UNIT), SERVICE_ENV)).toBe(true);
    expect(isDelegated(sys, path.join(root, UNIT), {})).toBe(false);
    expect(isDelegated(sys, path.join(root, 'user.slice/user-0.slice/session-3.scope'), SERVICE_ENV)).toBe(false);
  });

  it('reads on when an xattr namespace is refused (EOPNOTSUPP)', () => {
    const sys = new RecordingSyscalls();
    sys.fail('lgetxattr', os.constants.errno.EOPNOTSUPP);
    expect(isDelegated(sys, path.join(root, UNIT), SERVICE_ENV)).toBe(true);
  });
});

describe('enterDelegatedCgroup', () => {
  const procCgroup = `0::/${UNIT}\n`;

  it('moves the process into the unit\'s supervisor leaf and returns the unit\'s cgroup', () => {
    const parent = enterDelegatedCgroup({ sys: new RecordingSyscalls(), env: SERVICE_ENV, root, procCgroup, pid: 4242 });
    expect(parent).toBe(UNIT);
    expect(fs.readFileSync(path.join(root, UNIT, SUPERVISOR_CGROUP, 'cgroup.procs'), 'utf8')).toBe('4242');
  });

  it('changes nothing outside a delegated v2 cgroup: a shell, the root, a hybrid host, a refused move', () => {
    const sys = new RecordingSyscalls();
    expect(enterDelegatedCgroup({ sys, env: {}, root, procCgroup, pid: 1 })).toBeUndefined();
    expect(enterDelegatedCgroup({ sys, env: SERVICE_ENV, root, procCgroup: '0::/\n', pid: 1 })).toBeUndefined();
    fs.mkdirSync(path.join(root, 'memory'));
    expect(enterDelegatedCgroup({ sys, env: SERVICE_ENV, root, procCgroup, pid: 1 })).toBeUndefined();
    fs.rmdirSync(path.join(root, 'memory'));
    expect(fs.existsSync(path.join(root, UNIT, SUPERVISOR_CGROUP))).toBe(false);
    // The leaf's name is taken by a file: the move fails and the pod goes to tspod/ as before.
    fs.writeFileSync(path.join(root, UNIT, SUPERVISOR_CGROUP), '');
    expect(enterDelegatedCgroup({ sys, env: SERVICE_ENV, root, procCgroup, pid: 1 })).toBeUndefined();
  });
});
