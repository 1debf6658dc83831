// bench/pod-list: fabricates N pods under DIR with test/support/pods.ts: mostly exited with 1-3
// apps and exit statuses, some running (lock held by a background `flock -o` process each), a few
// prepared, embryo and exited-garbage. Prints the holders' pids (one per line) for run.sh to kill.
// Usage (compiled by run.sh): node make-pods.js DIR [COUNT] [RUNNING]
import { fabricatePod, holdPodLock, type FakeApp, type FakePod } from '../../test/support/pods.js';

const [dir, countArg = '1000', runningArg = '50'] = process.argv.slice(2);
if (dir === undefined) throw new Error('usage: make-pods.js DIR [COUNT] [RUNNING]');
const count = Number(countArg);
const running = Number(runningArg);
const now = Date.now();

const holders: number[] = [];
for (let i = 0; i < count; i++) {
  const appCount = 1 + (i % 3);
  const state: FakePod['state'] = i < running ? 'running' : i % 50 === 1 ? 'prepared' : i % 50 === 2 ? 'exited garbage' : 'exited';
  const apps: FakeApp[] = Array.from({ length: appCount }, (_, a) => ({
    name: `app-${a}`,
    image: `example.com/bench/app-${a}`,
    version: '1.0.0',
    created: true,
    started: true,
    exitCode: state === 'exited' || state === 'exited garbage' ? (i + a) % 4 : undefined,
  }));
  const pod = fabricatePod(dir, { state, apps, created: new Date(now - (count - i) * 60_000), ready: state !== 'prepared' });
  if (pod.needsLock) holders.push((await holdPodLock(pod.path)).pid);
}
process.stdout.write(holders.map((pid) => `${pid}\n`).join(''));
