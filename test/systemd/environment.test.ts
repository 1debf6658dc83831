import { describe, expect, it } from 'vitest';

import { takeSystemdEnvironment } from '../../src/systemd/environment.js';

describe('takeSystemdEnvironment (sd_notify(3), sd_listen_fds(3) with unset_environment)', () => {
  it('takes NOTIFY_SOCKET and the listen fds with their names, and removes every variable', () => {
    const env: NodeJS.ProcessEnv = { NOTIFY_SOCKET: '/run/systemd/notify', LISTEN_PID: '42', LISTEN_FDS: '2', LISTEN_FDNAMES: 'http:admin', PATH: '/bin' };
    expect(takeSystemdEnvironment(env, 42)).toEqual({ notifySocket: '/run/systemd/notify', listen: { fds: [3, 4], names: ['http', 'admin'] }, warnings: [] });
    expect(env).toEqual({ PATH: '/bin' });
  });

  it('ignores fds whose LISTEN_PID is another process (they were for a parent), and still removes the variables', () => {
    const env: NodeJS.ProcessEnv = { LISTEN_PID: '41', LISTEN_FDS: '1' };
    const taken = takeSystemdEnvironment(env, 42);
    expect(taken.listen).toBeUndefined();
    expect(taken.warnings).toEqual(['LISTEN_FDS is set but LISTEN_PID (41) is not tspod\'s pid 42: no socket activation']);
    expect(env).toEqual({});
  });

  it('names fds "unknown" when LISTEN_FDNAMES is missing or has the wrong count', () => {
    expect(takeSystemdEnvironment({ LISTEN_PID: '7', LISTEN_FDS: '2' }, 7).listen?.names).toEqual(['unknown', 'unknown']);
    const odd = takeSystemdEnvironment({ LISTEN_PID: '7', LISTEN_FDS: '2', LISTEN_FDNAMES: 'one' }, 7);
    expect(odd.listen?.names).toEqual(['unknown', 'unknown']);
    expect(odd.warnings).toEqual(['LISTEN_FDNAMES has 1 names for 2 fds: the names are ignored']);
  });

  it('treats LISTEN_FDS=0, a non-number, and an empty NOTIFY_SOCKET as nothing passed', () => {
    expect(takeSystemdEnvironment({ LISTEN_PID: '7', LISTEN_FDS: '0' }, 7)).toEqual({ warnings: [] });
    expect(takeSystemdEnvironment({ LISTEN_PID: '7', LISTEN_FDS: 'x' }, 7).warnings).toEqual(['LISTEN_FDS=x is not a number: no socket activation']);
    expect(takeSystemdEnvironment({ NOTIFY_SOCKET: '' }, 7)).toEqual({ warnings: [] });
  });
});
