// `list`/`status` show a pod's networks from its net-info.json: api/v1 NetInfo entries valid
// against schemas/pod-list.json and pod-status.json, rkt's `networks=` line and NETWORKS column,
// only while the networks are up (a pod killed with its networks up shows them until gc).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { createAjv } from '../../src/appc/validate.js';
import { renderPodTable } from '../../src/commands/list.js';
import { statusLines } from '../../src/commands/status.js';
import { NET_INFO_VERSION, type NetInfo } from '../../src/net/record.js';
import { listPods, toApiPod, toApiPodStatus } from '../../src/pod/list.js';
import { readPod } from '../../src/pod/state.js';
import { libcSyscalls as sys } from '../../src/sys/index.js';
import { fabricatePod, holdPodLock, type LockHolder } from '../support/pods.js';

const ajv = createAjv();
const validateList = ajv.getSchema('https://tspod.dev/schemas/pod-list.json')!;
const validateStatus = ajv.getSchema('https://tspod.dev/schemas/pod-status.json')!;

describe('networks in list and status', () => {
  let dir: string;
  const holders: LockHolder[] = [];
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tspod-list-net-'));
  });
  afterEach(async () => {
    for (const h of holders.splice(0)) await h.kill();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const record = (uuid: string, state: NetInfo['state']): NetInfo => ({
    version: NET_INFO_VERSION,
    uuid,
    state,
    networks: [
      { name: 'default', kind: 'direct', ifName: 'eth0', ip: '172.31.0.2', bridge: 'tspod0', hostVeth: 'tspx' },
      { name: 'cninet', kind: 'cni', ifName: 'eth1', ip: '10.254.72.3' },
    ],
    ports: [],
  });

  it('a running pod with its networks up: api/v1 entries, networks= and the NETWORKS column', async () => {
    const pod = fabricatePod(dir, { state: 'running', apps: [{ name: 'web', created: true, started: true }] });
    holders.push(await holdPodLock(pod.path));
    fs.writeFileSync(path.join(pod.path, 'net-info.json'), JSON.stringify(record(pod.uuid, 'up')));
    const listed = listPods(dir, sys).map(toApiPod);
    expect(validateList(listed), JSON.stringify(validateList.errors)).toBe(true);
    expect(listed[0]!.networks).toEqual([
      { net_name: 'default', iface_name: 'eth0', ip: '172.31.0.2' },
      { net_name: 'cninet', iface_name: 'eth1', ip: '10.254.72.3' },
    ]);
    const info = readPod(dir, sys, pod.uuid);
    expect(validateStatus(toApiPodStatus(info)), JSON.stringify(validateStatus.errors)).toBe(true);
    expect(statusLines(info)).toContain('networks=default:ip4=172.31.0.2,cninet:ip4=10.254.72.3');
    expect(renderPodTable(listPods(dir, sys), { full: false, noLegend: true })).toContain('default:ip4=172.31.0.2,cninet:ip4=10.254.72.3');
  });

  it('networks torn down, still being set up, or no record: none shown', () => {
    const down = fabricatePod(dir, { state: 'exited', apps: [{ name: 'a', exitCode: 0 }] });
    fs.writeFileSync(path.join(down.path, 'net-info.json'), JSON.stringify(record(down.uuid, 'down')));
    const none = fabricatePod(dir, { state: 'exited', apps: [{ name: 'b', exitCode: 0 }] });
    expect(listPods(dir, sys).map((p) => toApiPod(p).networks)).toEqual([[], []]);
    expect(statusLines(readPod(dir, sys, none.uuid))).toContain('networks=');
  });
});
