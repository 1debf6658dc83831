// The pod side of pod networks in stage1: the init's wait for `net-ready` (file + SIGUSR2, the
// contract of stage1/README.md "Pod networks") and the resolv.conf a networked pod gets.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { ENV_NETWORK_PENDING, NETWORK_READY_SIGNAL, POD_FILES } from '../../stage1/contract.js';
import { podNetworkResolvConf } from '../../stage1/net-dns.js';
import { networkPending, NetworkNotReadyError, readNetworkReady, waitForNetwork } from '../../stage1/net-ready.js';

describe('waitForNetwork', () => {
  let podDir: string;
  beforeEach(() => {
    podDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tspod-netready-'));
  });
  afterEach(() => fs.rmSync(podDir, { recursive: true, force: true }));
  const report = (text: string) => fs.writeFileSync(path.join(podDir, POD_FILES.networkReady), text);

  it('waits only when stage0 said so in the environment', () => {
    expect(networkPending({ [ENV_NETWORK_PENDING]: '1' })).toBe(true);
    expect(networkPending({})).toBe(false);
  });

  it('resolves at once when net-ready says ok (the signal came before the handler)', async () => {
    report('ok\n');
    await expect(waitForNetwork(podDir)).resolves.toBeUndefined();
    expect(process.listenerCount(NETWORK_READY_SIGNAL)).toBe(0);
  });

  it('resolves on the signal that follows the file, well before the 1 s poll', async () => {
    const started = Date.now();
    const waiting = waitForNetwork(podDir);
    let settled = false;
    void waiting.then(() => (settled = true));
    await new Promise((r) => setTimeout(r, 50));
    expect(settled).toBe(false);
    report('ok\n');
    process.kill(process.pid, NETWORK_READY_SIGNAL);
    await waiting;
    expect(Date.now() - started).toBeLessThan(900);
  });

  it('rejects with stage0\'s reason when the setup failed', async () => {
    report('failed: set up network default of pod x: RTM_NEWLINK veth tspX: EEXIST (file exists)\n');
    const err = await waitForNetwork(podDir).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NetworkNotReadyError);
    expect((err as Error).message).toBe('pod network setup failed: set up network default of pod x: RTM_NEWLINK veth tspX: EEXIST (file exists)');
    expect(readNetworkReady(podDir)).toMatchObject({ ok: false });
  });
});

describe('podNetworkResolvConf', () => {
  it('copies the host\'s resolv.conf without loopback name servers', () => {
    const warnings: string[] = [];
    const text = podNetworkResolvConf('# managed\nsearch lan\nnameserver 127.0.0.53\nnameserver 192.0.2.53\nnameserver ::1\noptions edns0\n', warnings);
    expect(text).toBe("# the host's name servers, copied by tspod\n# managed\nsearch lan\nnameserver 192.0.2.53\noptions edns0\n");
    expect(warnings).toEqual([]);
  });

  it('only loopback name servers (systemd-resolved\'s stub): the image keeps its file, with a warning that suggests --dns', () => {
    const warnings: string[] = [];
    expect(podNetworkResolvConf('nameserver 127.0.0.53\noptions edns0 trust-ad\n', warnings)).toBeUndefined();
    expect(warnings[0]).toMatch(/127\.0\.0\.53.*give --dns/);
  });

  it('no host resolv.conf: the image keeps its own', () => {
    expect(podNetworkResolvConf(undefined, [])).toBeUndefined();
  });
});
