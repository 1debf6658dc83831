// Socket activation in the exec step (stage1/exec-app.ts step 3a/3b) with the recording fake.
import { describe, expect, it } from 'vitest';

import { ValidationError } from '../../src/errors.js';
import { RecordedExecve, RecordingSyscalls } from '../../src/sys/recording.js';
import { execApp, parseExecStep, type ExecStep } from '../../stage1/exec-app.js';

const step = (over: Partial<ExecStep> = {}): ExecStep => ({
  rootfs: '/pod/root/apps/web/rootfs',
  cwd: '/',
  uid: 0,
  gid: 0,
  supplementaryGids: [],
  capabilities: { bounding: '0x0', effective: '0x0', permitted: '0x0', inheritable: '0x0', ambient: '0x0' },
  noNewPrivileges: false,
  exec: ['/bin/server'],
  env: { PATH: '/bin' },
  ...over,
});

function run(s: ExecStep): { fake: RecordingSyscalls; exec: RecordedExecve } {
  const fake = new RecordingSyscalls();
  try {
    execApp(s, fake, { isExecutable: () => true });
  } catch (err) {
    if (err instanceof RecordedExecve) return { fake, exec: err };
    throw err;
  }
  throw new Error('execApp returned');
}

const fdCalls = (fake: RecordingSyscalls) =>
  fake.calls.filter((c) => ['dup2', 'fcntlSetCloexec', 'closeRangeCloexec'].includes(c.syscall)).map((c) => `${c.syscall}(${c.args.join(',')})`);

describe('exec step: socket activation fds (sd_listen_fds(3))', () => {
  it('moves the fds from 4.. down to 3.. in ascending order, clears FD_CLOEXEC, marks every later fd close-on-exec', () => {
    const { fake, exec } = run(step({ listenFds: { fromFd: 4, count: 2, names: ['http', 'https'] } }));
    expect(fdCalls(fake)).toEqual([
      'fcntlSetCloexec(0,false)',
      'fcntlSetCloexec(1,false)',
      'fcntlSetCloexec(2,false)',
      'dup2(4,3)',
      'fcntlSetCloexec(3,false)',
      'dup2(5,4)',
      'fcntlSetCloexec(4,false)',
      // fd 5 (the second fd's old place) and everything above it: not for the app.
      'closeRangeCloexec(5)',
    ]);
    expect(exec.envp).toEqual(['PATH=/bin', 'LISTEN_FDS=2', `LISTEN_PID=${process.pid}`, 'LISTEN_FDNAMES=http:https']);
  });

  it('without listen fds every fd from 3 up is close-on-exec and no LISTEN_* is set', () => {
    const { fake, exec } = run(step());
    expect(fdCalls(fake).at(-1)).toBe('closeRangeCloexec(3)');
    expect(exec.envp).toEqual(['PATH=/bin']);
  });

  it('falls back to one fcntl per open fd where close_range is missing (ENOSYS)', () => {
    const fake = new RecordingSyscalls();
    fake.fail('closeRangeCloexec', 38);
    try {
      execApp(step(), fake, { isExecutable: () => true });
    } catch (err) {
      if (!(err instanceof RecordedExecve)) throw err;
    }
    const marked = fake.calls.filter((c) => c.syscall === 'fcntlSetCloexec' && c.args[1] === true).map((c) => c.args[0] as number);
    expect(marked.length).toBeGreaterThan(0);
    expect(marked.every((fd) => fd >= 3)).toBe(true);
  });

  it('refuses a malformed listenFds in the step document', () => {
    for (const listenFds of [{ fromFd: 2, count: 1, names: ['a'] }, { fromFd: 4, count: 2, names: ['a'] }, { fromFd: 4, count: 1, names: ['a:b'] }, { fromFd: 4, count: 0, names: [] }]) {
      expect(() => parseExecStep({ ...step(), listenFds })).toThrow(ValidationError);
    }
    expect(parseExecStep({ ...step(), listenFds: { fromFd: 4, count: 1, names: ['http'] } }).listenFds).toEqual({ fromFd: 4, count: 1, names: ['http'] });
  });
});
