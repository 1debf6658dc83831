import { describe, expect, it } from 'vitest';

import { planHandover, type HandoverApp } from '../../src/systemd/handover.js';
import { ANNOTATION_SUPPORTS_SYSTEMD_NOTIFY } from '../../stage1/contract.js';

const app = (name: string, over: Partial<HandoverApp> = {}): HandoverApp => ({ name, ports: [], annotations: [], ...over });
const notifying = (name: string) => app(name, { annotations: [{ name: ANNOTATION_SUPPORTS_SYSTEMD_NOTIFY, value: 'true' }] });
const activated = (name: string, ...ports: string[]) => app(name, { ports: ports.map((p) => ({ name: p, protocol: 'tcp', port: 80, socketActivated: true })) });

describe('planHandover: what stage0 hands the init', () => {
  it('prefixes output for two apps, not for one or with --interactive', () => {
    expect(planHandover({ apps: [app('a'), app('b')], interactive: false, notify: false }).handover.prefixOutput).toBe(true);
    expect(planHandover({ apps: [app('a')], interactive: false, notify: false }).handover.prefixOutput).toBe(false);
    expect(planHandover({ apps: [app('a'), app('b')], interactive: true, notify: false }).handover.prefixOutput).toBe(false);
  });

  it('with NOTIFY_SOCKET: the events stream at fd 4, and the apps whose image has the annotation (value true)', () => {
    const plan = planHandover({ apps: [notifying('web'), app('db'), app('x', { annotations: [{ name: ANNOTATION_SUPPORTS_SYSTEMD_NOTIFY, value: 'false' }] })], interactive: false, notify: true });
    expect(plan).toEqual({ handover: { prefixOutput: true, eventsFd: 4, notifyApps: ['web'], listenFds: {} }, extraStdio: ['pipe'], warnings: [] });
  });

  it('without NOTIFY_SOCKET no app gets one, even with the annotation', () => {
    expect(planHandover({ apps: [notifying('web')], interactive: false, notify: false }).handover).toEqual({ prefixOutput: false, notifyApps: [], listenFds: {} });
  });

  it('one socket-activated app gets every fd, after the events stream', () => {
    const plan = planHandover({ apps: [app('db'), activated('web', 'http')], interactive: false, notify: true, listen: { fds: [3, 4], names: ['a', 'b'] } });
    expect(plan.handover.listenFds).toEqual({ web: { fds: [5, 6], names: ['a', 'b'] } });
    expect(plan.extraStdio).toEqual(['pipe', 3, 4]);
  });

  it('several socket-activated apps: each fd goes by its LISTEN_FDNAMES name to the app with that port; an unclaimed fd is left out with a warning', () => {
    const plan = planHandover({
      apps: [activated('web', 'http', 'https'), activated('admin', 'admin')],
      interactive: false,
      notify: false,
      listen: { fds: [3, 4, 5, 6], names: ['https', 'admin', 'metrics', 'http'] },
    });
    // The init's fds from 4 on, app by app: web's two, then admin's.
    expect(plan.handover.listenFds).toEqual({ web: { fds: [4, 5], names: ['https', 'http'] }, admin: { fds: [6], names: ['admin'] } });
    expect(plan.extraStdio).toEqual([3, 6, 4]);
    expect(plan.warnings).toEqual(['socket activation fd 2 is named "metrics", which is no socketActivated port of web, admin: not passed on']);
  });

  it('fds with no app asking for them are not passed on, with a warning', () => {
    const plan = planHandover({ apps: [app('web', { ports: [{ name: 'http', protocol: 'tcp', port: 80 }] })], interactive: false, notify: false, listen: { fds: [3], names: ['unknown'] } });
    expect(plan.handover.listenFds).toEqual({});
    expect(plan.extraStdio).toEqual([]);
    expect(plan.warnings).toEqual(['1 socket activation fd(s) (LISTEN_FDS) passed, but no app has a socketActivated port: they are not passed on']);
  });
});
