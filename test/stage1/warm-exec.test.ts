// WarmExecSteps with real processes: exec steps started ahead wait for their step on fd 3, a step
// that died before it was used is never handed out, and unused ones are ended by discard().
import { afterEach, describe, expect, it } from 'vitest';

// The built module: its exec step program is dist/stage1/exec-app-main.js beside it.
const built: string = '../../dist/stage1/warm-exec.js';
const { WarmExecSteps } = (await import(built)) as typeof import('../../stage1/warm-exec.js');
type WarmExecSteps = import('../../stage1/warm-exec.js').WarmExecSteps;

const exited = (child: import('node:child_process').ChildProcess) =>
  new Promise<{ code: number | null; signal: string | null }>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve({ code: child.exitCode, signal: child.signalCode });
    else child.on('exit', (code, signal) => resolve({ code, signal }));
  });

describe('WarmExecSteps', () => {
  let warm: WarmExecSteps;
  afterEach(() => warm?.discard());

  it('a started step waits for its step on fd 3; a malformed step makes it exit 254 (it read fd 3)', async () => {
    warm = new WarmExecSteps();
    warm.start(1, 'ignore');
    const child = warm.take()!;
    expect(child).toBeDefined();
    await new Promise((r) => setTimeout(r, 300));
    expect(child.exitCode).toBeNull(); // still waiting, not exited
    WarmExecSteps.deliver(child, '{"not":"a step"}');
    expect(await exited(child)).toEqual({ code: 254, signal: null });
  });

  it('never hands out a step that died before use, and discard() ends the rest', async () => {
    warm = new WarmExecSteps();
    warm.start(3, 'ignore');
    const [first, second] = warm.pids();
    process.kill(first!, 'SIGKILL');
    warm.markDead(second!); // as if reaped by the supervisor's waitpid(-1)
    await new Promise((r) => setTimeout(r, 200));
    const taken = warm.take();
    expect(taken).toBeDefined();
    expect(taken?.pid).not.toBe(first);
    expect(taken?.pid).not.toBe(second);
    expect(warm.take()).toBeUndefined();
    taken?.kill('SIGKILL');
  });

  it('discard() kills every step still waiting', async () => {
    warm = new WarmExecSteps();
    warm.start(2, 'ignore');
    const pids = warm.pids();
    warm.discard();
    await new Promise((r) => setTimeout(r, 200));
    for (const pid of pids) expect(() => process.kill(pid, 0)).toThrow(/ESRCH/);
    expect(warm.take()).toBeUndefined();
  });
});
