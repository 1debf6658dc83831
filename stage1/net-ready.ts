// The init's wait for the pod's networks (stage1/README.md, "Pod networks"). With `--net=default`
// or named networks, stage0 starts the init first and sets the networks up while the init starts
// Node, plans and mounts (src/net/pod-network.ts); the init must not start an app before they are
// up. stage0 reports the outcome by writing `net-ready` into the pod directory (`ok`, or
// `failed: REASON`), then sending SIGUSR2 to the init. The init installs its SIGUSR2 handler before
// it first looks for the file, so it either finds the file or gets the signal: a signal sent
// earlier, before any handler existed, is dropped for a PID namespace's init (pid_namespaces(7):
// only signals it has a handler for reach it from an ancestor namespace), but then the file is
// already there. SIGUSR2 because Node reserves SIGUSR1 for its inspector.
import fs from 'node:fs';
import path from 'node:path';

import { ENV_NETWORK_PENDING, NETWORK_READY_SIGNAL, POD_FILES } from './contract.js';

export class NetworkNotReadyError extends Error {}

/** Whether stage0 said it sets the pod's networks up after starting this init. */
export function networkPending(env: NodeJS.ProcessEnv = process.env): boolean {
  return env[ENV_NETWORK_PENDING] === '1';
}

/** The outcome in `net-ready`: undefined while absent. */
export function readNetworkReady(podDir: string): { ok: true } | { ok: false; reason: string } | undefined {
  let text: string;
  try {
    text = fs.readFileSync(path.join(podDir, POD_FILES.networkReady), 'utf8').trim();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  if (text === 'ok') return { ok: true };
  return { ok: false, reason: text.replace(/^failed:\s*/, '') || 'no reason given' };
}

/**
 * Resolves once the pod's networks are up; rejects with NetworkNotReadyError when stage0 reports a
 * failure. Start it early (the handler is installed at once) and await it before the first app.
 */
export function waitForNetwork(podDir: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const check = (): boolean => {
      const outcome = readNetworkReady(podDir);
      if (outcome === undefined) return false;
      process.off(NETWORK_READY_SIGNAL, onSignal);
      clearInterval(poll);
      if (outcome.ok) resolve();
      else reject(new NetworkNotReadyError(`pod network setup failed: ${outcome.reason}`));
      return true;
    };
    const onSignal = (): void => {
      check();
    };
    process.on(NETWORK_READY_SIGNAL, onSignal);
    // A slow poll as a safety net; it also keeps the event loop alive while nothing else does.
    const poll = setInterval(check, 1000);
    check();
  });
}
