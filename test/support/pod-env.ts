// The set-up shared by the real-pod suites (test/privileged): a throw-away TspodEnv and the demo
// ACI (busybox-static) built by actool, made before the suite's tests and removed after them.
import path from 'node:path';

import { afterAll, beforeAll } from 'vitest';

import { buildFixtures } from '../../fixtures/build-fixtures.js';
import { TspodEnv } from './cli.js';
import { hasCommand } from './tools.js';

/** Real pods need root (namespaces, mounts, cgroups) and actool (to build the demo image). */
export const canRunPods = process.geteuid?.() === 0 && hasCommand('actool', ['version']);

export interface PodSuite {
  /** The suite's environment (valid inside tests and hooks). */
  readonly env: TspodEnv;
  /** Path of the demo ACI. */
  readonly demo: string;
}

/** Registers beforeAll/afterAll hooks for a suite of real-pod tests; call inside `describe`. */
export function usePodSuite(): PodSuite {
  let env: TspodEnv | undefined;
  let demo: string | undefined;
  beforeAll(async () => {
    env = new TspodEnv();
    demo = (await buildFixtures(path.join(env.base, 'acis'), { cases: ['demo'] })).demo!;
  });
  afterAll(() => env?.cleanup());
  return {
    get env() {
      return env!;
    },
    get demo() {
      return demo!;
    },
  };
}
