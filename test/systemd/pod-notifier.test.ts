import { describe, expect, it } from 'vitest';

import { PodNotifier } from '../../src/systemd/pod-notifier.js';

const notifier = (notifyApps: string[] = [], apps = ['web', 'db']) => new PodNotifier({ apps, notifyApps, mainPid: 4242 });

describe('PodNotifier: pod events to sd_notify messages', () => {
  it('starts with MAINPID and the apps; READY=1 with a barrier once the pod has started; STATUS as apps exit', () => {
    const n = notifier();
    expect(n.start()).toEqual([{ message: { MAINPID: 4242, STATUS: 'starting 2 apps: web, db' } }]);
    expect(n.onEvent({ event: 'ready' })).toEqual([{ message: { READY: 1, STATUS: 'running: web, db' }, barrier: true }]);
    expect(n.onEvent({ event: 'exited', app: 'db', status: 0 })).toEqual([{ message: { STATUS: 'running: web; exited: db (0)' } }]);
    expect(n.onEvent({ event: 'ready' })).toEqual([]);
  });

  it('says STOPPING=1 once, whether the signal or the init reports it first, and nothing about exits while stopping', () => {
    const n = notifier();
    n.onEvent({ event: 'ready' });
    expect(n.onStop()).toEqual([{ message: { STOPPING: 1, STATUS: 'stopping' } }]);
    expect(n.onEvent({ event: 'stopping' })).toEqual([]);
    expect(n.onEvent({ event: 'exited', app: 'web', status: 143 })).toEqual([]);
    expect(n.finish(0)).toEqual([{ message: { STATUS: 'exited with status 0' }, barrier: true }]);
  });

  it('finish without a stop first says STOPPING=1, then the status, then a barrier', () => {
    expect(notifier().finish(3)).toEqual([{ message: { STOPPING: 1, STATUS: 'stopping' } }, { message: { STATUS: 'exited with status 3' }, barrier: true }]);
  });

  it('never says READY=1 after stopping began (an app failed before the others started)', () => {
    const n = notifier();
    n.onEvent({ event: 'stopping' });
    expect(n.onEvent({ event: 'ready' })).toEqual([]);
  });

  it('with a notify app: no READY=1 of its own; the app\'s READY=1 makes the pod ready, its STATUS is passed on with its name', () => {
    const n = notifier(['web']);
    expect(n.onEvent({ event: 'notify', app: 'web', message: 'STATUS=warming up' })).toEqual([{ message: { STATUS: 'web: warming up' } }]);
    expect(n.onEvent({ event: 'ready' })).toEqual([{ message: { STATUS: 'started; waiting for READY=1 from web' } }]);
    expect(n.onEvent({ event: 'notify', app: 'web', message: 'READY=1\nSTATUS=serving\nMAINPID=7\nX_CUSTOM=1' })).toEqual([
      { message: { READY: 1, STATUS: 'web: serving' }, barrier: true },
    ]);
  });

  it('an app READY=1 before the pod has started waits for the pod; a single app\'s STATUS is passed on as it is', () => {
    const n = notifier(['web'], ['web']);
    expect(n.onEvent({ event: 'notify', app: 'web', message: 'READY=1' })).toEqual([]);
    expect(n.onEvent({ event: 'ready' })).toEqual([{ message: { READY: 1, STATUS: 'running: web' }, barrier: true }]);
    expect(n.onEvent({ event: 'notify', app: 'web', message: 'STATUS=busy' })).toEqual([{ message: { STATUS: 'busy' } }]);
  });

  it('waits for every notify app; passes RELOADING=1 and a later READY=1 through (Type=notify-reload)', () => {
    const n = notifier(['web', 'db']);
    n.onEvent({ event: 'ready' });
    expect(n.onEvent({ event: 'notify', app: 'db', message: 'READY=1' })).toEqual([{ message: { STATUS: 'started; waiting for READY=1 from web' } }]);
    expect(n.onEvent({ event: 'notify', app: 'web', message: 'READY=1' })).toEqual([{ message: { READY: 1, STATUS: 'running: web, db' }, barrier: true }]);
    expect(n.onEvent({ event: 'notify', app: 'web', message: 'RELOADING=1\nMONOTONIC_USEC=123' })).toEqual([{ message: { RELOADING: '1', MONOTONIC_USEC: '123' } }]);
    expect(n.onEvent({ event: 'notify', app: 'web', message: 'READY=1' })).toEqual([{ message: { READY: 1 } }]);
  });

  it('ignores notifications from an app that is not a notify app', () => {
    expect(notifier(['web']).onEvent({ event: 'notify', app: 'db', message: 'READY=1' })).toEqual([]);
  });
});
