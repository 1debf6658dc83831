// systemd integration with real pods, as root (issue 7 items 6-10): sd_notify against a datagram
// socket this test listens on (this machine's PID 1 is not systemd; test/systemd/notify-listener.ts),
// with the barrier, READY only after every app started, MAINPID, STATUS, STOPPING; an app's own
// READY=1 passed through; socket activation end to end; app output prefixed per app; SIGTERM to an
// app that ignores it.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { assembleCase } from '../../fixtures/build-fixtures.js';
import { ANNOTATION_SUPPORTS_SYSTEMD_NOTIFY } from '../../stage1/contract.js';
import { TspodEnv } from '../support/cli.js';
import { canRunPods, usePodSuite } from '../support/pod-env.js';
import { hasCommand } from '../support/tools.js';
import { NotifyListener, type ReceivedNotification } from '../systemd/notify-listener.js';

/** A static sd_notify sender for busybox images: `sd-notify LINE...` sends the lines as one datagram to $NOTIFY_SOCKET. */
const SD_NOTIFY_C = `
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
int main(int argc, char **argv) {
  const char *e = getenv("NOTIFY_SOCKET");
  if (e == NULL) { fputs("sd-notify: no NOTIFY_SOCKET\\n", stderr); return 2; }
  struct sockaddr_un sa = { .sun_family = AF_UNIX };
  size_t n = strlen(e);
  if (n >= sizeof sa.sun_path) return 3;
  memcpy(sa.sun_path, e, n);
  if (sa.sun_path[0] == '@') sa.sun_path[0] = 0;
  char buf[4096]; size_t len = 0;
  for (int i = 1; i < argc && len < sizeof buf; i++) len += snprintf(buf + len, sizeof buf - len, "%s%s", i > 1 ? "\\n" : "", argv[i]);
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (sendto(fd, buf, len, 0, (struct sockaddr *)&sa, offsetof(struct sockaddr_un, sun_path) + n) < 0) { perror("sd-notify: sendto"); return 1; }
  return 0;
}
`;

/** The sender built with `gcc -static` (Debian gcc and libc6-dev), or why it could not be. */
function buildSdNotify(): { binary?: string; reason?: string } {
  if (!canRunPods) return { reason: 'no real pods here' };
  if (!hasCommand('gcc', ['--version'])) return { reason: 'gcc is missing' };
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tspod-sd-notify-'));
  fs.writeFileSync(path.join(dir, 'sd-notify.c'), SD_NOTIFY_C);
  try {
    execFileSync('gcc', ['-static', '-O2', '-o', path.join(dir, 'sd-notify'), path.join(dir, 'sd-notify.c')], { stdio: 'pipe' });
    return { binary: path.join(dir, 'sd-notify') };
  } catch {
    return { reason: 'gcc -static failed (no static libc: Debian libc6-dev)' };
  }
}
const sdNotify = buildSdNotify();

interface Running {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<{ code: number | null; at: number }>;
}

/** Spawns `tspod ...` with extra environment and fds (stdio from 3 on). */
function start(env: TspodEnv, args: string[], extra: { env?: Record<string, string>; fds?: number[]; viaShell?: string } = {}): Running {
  const argv = env.argv(args);
  const stdio: ('ignore' | 'pipe' | number)[] = ['ignore', 'pipe', 'pipe', ...(extra.fds ?? [])];
  const child =
    extra.viaShell === undefined
      ? spawn(process.execPath, argv, { stdio, env: { ...process.env, ...extra.env } })
      : // `exec` keeps the shell's pid: LISTEN_PID=$$ names the tspod process, as systemd would set it.
        spawn('/bin/sh', ['-c', `${extra.viaShell} exec "$0" "$@"`, process.execPath, ...argv], { stdio, env: { ...process.env, ...extra.env } });
  let out = '';
  let err = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<{ code: number | null; at: number }>((resolve) => child.on('exit', (code) => resolve({ code, at: performance.now() })));
  return { child, stdout: () => out, stderr: () => err, exited };
}

describe.skipIf(!canRunPods)('tspod run under systemd (needs root and actool)', () => {
  const suite = usePodSuite();
  let slow: string;
  let notifying: string | undefined;
  let activated: string;

  /** Builds an ACI from the demo image's sources with a changed manifest and extra files. */
  const buildImage = (name: string, patch: (manifest: Record<string, unknown>) => void, extra: (rootfs: string) => void = () => undefined): string => {
    const dir = path.join(suite.env.base, 'src', name);
    assembleCase('demo', dir);
    const manifestPath = path.join(dir, 'manifest');
    const manifest = JSON.parse(fs.readFileSync(manifestPath, 'utf8')) as Record<string, unknown>;
    manifest.name = `tspod.dev/test/${name}`;
    patch(manifest);
    fs.writeFileSync(manifestPath, JSON.stringify(manifest));
    extra(path.join(dir, 'rootfs'));
    const out = path.join(suite.env.base, 'acis', `${name}.aci`);
    execFileSync('actool', ['build', '--overwrite', '--owner-root', dir, out]);
    return out;
  };

  beforeAll(() => {
    // An app whose start is held back by a 1 s pre-start handler (spec/aci.md eventHandlers).
    slow = buildImage('slow-start', (m) => {
      (m.app as Record<string, unknown>).eventHandlers = [{ name: 'pre-start', exec: ['/bin/sleep', '1'] }];
    });
    activated = buildImage('activated', (m) => {
      (m.app as Record<string, unknown>).ports = [{ name: 'http', protocol: 'tcp', port: 80, socketActivated: true }];
    });
    if (sdNotify.binary !== undefined) {
      const binary = sdNotify.binary;
      notifying = buildImage(
        'notifying',
        (m) => {
          m.annotations = [...((m.annotations as unknown[]) ?? []), { name: ANNOTATION_SUPPORTS_SYSTEMD_NOTIFY, value: 'true' }];
        },
        (rootfs) => fs.copyFileSync(binary, path.join(rootfs, 'bin', 'sd-notify')),
      );
    }
  });

  const listeners: NotifyListener[] = [];
  const listener = (barrierHoldMs = 0) => {
    const l = new NotifyListener(barrierHoldMs);
    listeners.push(l);
    return l;
  };
  afterAll(() => {
    for (const l of listeners) l.close();
    if (sdNotify.binary !== undefined) fs.rmSync(path.dirname(sdNotify.binary), { recursive: true, force: true });
  });

  const podDirOf = (uuidFile: string) => path.join(suite.env.dir, 'pods', 'run', fs.readFileSync(uuidFile, 'utf8').trim());
  const index = (messages: ReceivedNotification[], m: ReceivedNotification) => messages.indexOf(m);

  it('sends MAINPID and STATUS, READY=1 only once every app has started, a barrier after it, and STOPPING=1 on SIGTERM', async () => {
    const notify = listener(300);
    const uuidFile = path.join(suite.env.base, 'uuid-ready');
    const run = start(
      suite.env,
      ['run', '--insecure-options=image', '--net=none', `--uuid-file-save=${uuidFile}`, suite.demo, '--name', 'a', '--exec', '/bin/sleep', '--', '60', '---', slow, '--name', 'b', '--exec', '/bin/sleep', '--', '60'],
      { env: { NOTIFY_SOCKET: notify.address } },
    );
    const first = await notify.waitFor(() => true);
    expect(first.fields).toEqual({ MAINPID: String(run.child.pid), STATUS: 'starting 2 apps: a, b' });
    expect(first.pid).toBe(run.child.pid);

    const ready = await notify.waitFor((m) => m.fields.READY === '1');
    // Both main processes had been started when READY=1 was sent, b only after its 1 s pre-start handler.
    const statusDir = path.join(podDirOf(uuidFile), 'status');
    expect(fs.existsSync(path.join(statusDir, 'a.started'))).toBe(true);
    expect(fs.existsSync(path.join(statusDir, 'b.started'))).toBe(true);
    expect(ready.fields.STATUS).toBe('running: a, b');
    // The next datagram after READY=1 (awaited: it may not have been read when READY=1 was).
    const barrier = await notify.waitFor(() => true, 30_000, index(notify.messages, ready) + 1);
    expect(barrier.text).toBe('BARRIER=1');
    expect(barrier.fdCount).toBe(1);

    run.child.kill('SIGTERM');
    const stopping = await notify.waitFor((m) => m.fields.STOPPING === '1');
    expect(stopping.fields.STATUS).toBe('stopping');
    const { code, at } = await run.exited;
    expect(code, run.stderr()).toBe(0); // both apps ended on the stop's SIGTERM: graceful
    const last = notify.messages.filter((m) => m.fields.STATUS?.startsWith('exited'));
    expect(last.map((m) => m.fields.STATUS)).toEqual(['exited with status 0']);
    // The last message is followed by a barrier, and tspod run exited only after it was answered.
    const finalBarrier = notify.messages[index(notify.messages, last[0]!) + 1]!;
    expect(finalBarrier.text).toBe('BARRIER=1');
    expect(finalBarrier.closedAt).toBeDefined();
    expect(at).toBeGreaterThanOrEqual(finalBarrier.closedAt!);
    // Nothing was sent by anyone but tspod run (NotifyAccess=main suffices).
    expect(new Set(notify.messages.map((m) => m.pid))).toEqual(new Set([run.child.pid]));
  });

  it('sends READY=1 only once the apps run their programs; an app that cannot be exec\'d stops the pod before READY=1 (203)', async () => {
    /** A pod of app a (`sleep 60`) and app b (`bArgs`), under a notification socket of its own. */
    const twoApps = (name: string, bArgs: string[]) => {
      const notify = listener();
      const uuidFile = path.join(suite.env.base, `uuid-${name}`);
      const apps = [suite.demo, '--name', 'a', '--exec', '/bin/sleep', '--', '60', '---', suite.demo, '--name', 'b', ...bArgs];
      const run = start(suite.env, ['run', '--insecure-options=image', '--net=none', `--uuid-file-save=${uuidFile}`, ...apps], { env: { NOTIFY_SOCKET: notify.address } });
      return { notify, uuidFile, run };
    };
    const { notify, uuidFile, run } = twoApps('exec-fails', ['--seccomp', 'mode=remove,errno=EPERM,execve', '--exec', '/bin/true']);
    const { code } = await run.exited;
    expect(code, run.stderr()).toBe(203);
    // The filter is in place before execve(2), which it then refuses: the exec step fails.
    expect(run.stderr()).toMatch(/tspod exec: .*execve.*EPERM/);
    expect(notify.messages.filter((m) => m.fields.READY === '1')).toEqual([]);
    const statusDir = path.join(podDirOf(uuidFile), 'status');
    expect(fs.existsSync(path.join(statusDir, 'a.started'))).toBe(true);
    expect(fs.existsSync(path.join(statusDir, 'b.started'))).toBe(false);

    // When READY=1 comes, both apps' programs are running (children of the pod's PID 1).
    const { notify: ready, uuidFile: readyUuid, run: ok } = twoApps('exec-ok', ['--exec', '/bin/sleep', '--', '61']);
    await ready.waitFor((m) => m.fields.READY === '1');
    const init = fs.readFileSync(path.join(podDirOf(readyUuid), 'pid'), 'utf8').trim();
    const children = fs.readFileSync(`/proc/${init}/task/${init}/children`, 'utf8').trim().split(/\s+/);
    const programs = children.map((pid) => fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter((a) => a !== '').join(' ')).sort();
    expect(programs).toEqual(['/bin/sleep 60', '/bin/sleep 61']);
    ok.child.kill('SIGTERM');
    expect((await ok.exited).code).toBe(0);
  });

  it('waits for the manager to answer the barrier before exiting, even when the pod ends at once', async () => {
    const notify = listener(1500);
    const run = start(suite.env, ['run', '--insecure-options=image', '--net=none', suite.demo, '--exec', '/bin/true'], { env: { NOTIFY_SOCKET: notify.address } });
    const { code, at } = await run.exited;
    expect(code, run.stderr()).toBe(0);
    const barriers = notify.messages.filter((m) => m.text === 'BARRIER=1');
    expect(barriers.length).toBeGreaterThanOrEqual(1);
    for (const b of barriers) {
      expect(b.closedAt, 'tspod run exited before the barrier fd was closed').toBeDefined();
      expect(at).toBeGreaterThanOrEqual(b.closedAt!);
    }
  });

  it('a NOTIFY_SOCKET nobody listens on (ECONNREFUSED) gives one warning; the pod runs as usual', async () => {
    const run = start(suite.env, ['run', '--insecure-options=image', '--net=none', suite.demo], { env: { NOTIFY_SOCKET: '@tspod-test-nobody-listens' } });
    const { code } = await run.exited;
    expect(code).toBe(0);
    expect(run.stdout()).toContain('hello from a tspod pod');
    expect(run.stderr().match(/sd_notify to NOTIFY_SOCKET .*ECONNREFUSED/g)).toHaveLength(1);
  });

  it.skipIf(sdNotify.binary === undefined)(`passes an app's own READY=1 and STATUS through (annotation appc.io/executor/supports-systemd-notify)${sdNotify.reason === undefined ? '' : ` (skipped: ${sdNotify.reason})`}`, async () => {
    const notify = listener();
    const script = 'echo "socket=$NOTIFY_SOCKET"; sd-notify "STATUS=warming up"; sleep 1; sd-notify READY=1 "STATUS=serving"; sleep 60';
    const run = start(suite.env, ['run', '--insecure-options=image', '--net=none', notifying!, '--name', 'web', '--exec', '/bin/sh', '--', '-c', script], {
      env: { NOTIFY_SOCKET: notify.address },
    });
    const warming = await notify.waitFor((m) => m.fields.STATUS === 'warming up');
    const waiting = await notify.waitFor((m) => m.fields.STATUS === 'started; waiting for READY=1 from web');
    const ready = await notify.waitFor((m) => m.fields.READY === '1');
    // tspod did not declare the pod ready itself: READY=1 came with the app's own status, after it.
    expect(ready.fields.STATUS).toBe('serving');
    expect(index(notify.messages, ready)).toBeGreaterThan(index(notify.messages, warming));
    expect(index(notify.messages, ready)).toBeGreaterThan(index(notify.messages, waiting));
    expect(notify.messages.filter((m) => m.fields.READY === '1')).toHaveLength(1);
    // Relayed by tspod run (the unit's main process), from the app's socket in the pod.
    expect(ready.pid).toBe(run.child.pid);
    expect(run.stdout()).toMatch(/^socket=@tspod\/[0-9a-f-]{36}\/notify\/0-[0-9a-f]{8}$/m);
    run.child.kill('SIGTERM');
    expect((await run.exited).code).toBe(0);
  });

  it('hands the socket activation fd to the app that asks for it: fd 3, LISTEN_PID = its own pid, nothing else inherited', async () => {
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const fd = (server as unknown as { _handle: { fd: number } })._handle.fd;
      const inode = fs.readlinkSync(`/proc/self/fd/${fd}`);
      const show = [
        'echo "$0 fds=$LISTEN_FDS pid=$LISTEN_PID self=$$ names=$LISTEN_FDNAMES"',
        'if [ -e /proc/$$/fd/3 ]; then echo "$0 fd3=$(readlink /proc/$$/fd/3)"; else echo "$0 fd3=none"; fi',
        // What the app's process holds, listed by the process itself: ls adds its own directory fd last.
        'exec ls /proc/self/fd',
      ].join('; ');
      const run = start(
        suite.env,
        ['run', '--insecure-options=image', '--net=none', activated, '--name', 'web', '--exec', '/bin/sh', '--', '-c', show, 'web', '---', suite.demo, '--name', 'other', '--exec', '/bin/sh', '--', '-c', show, 'other'],
        { fds: [fd], viaShell: 'LISTEN_PID=$$ LISTEN_FDS=1 LISTEN_FDNAMES=http' },
      );
      const { code } = await run.exited;
      const out = run.stdout();
      expect(code, run.stderr()).toBe(0);
      const web = /^\[web\] web fds=(\S*) pid=(\S*) self=(\S*) names=(\S*)$/m.exec(out);
      expect(web, out).not.toBeNull();
      const [, fds, listenPid, self, names] = web!;
      expect(fds).toBe('1');
      expect(listenPid).toBe(self);
      expect(names).toBe('http');
      // The very socket this test listens on (in the host's network namespace), now the app's fd 3.
      expect(out).toContain(`[web] web fd3=${inode}\n`);
      const openFds = (app: string) => [...out.matchAll(new RegExp(`^\\[${app}\\] (\\d+)$`, 'gm'))].map((m) => Number(m[1]));
      // stdio, the listen fd and ls's directory: not the pod lock, the events stream or the fd's old place.
      expect(openFds('web')).toEqual([0, 1, 2, 3, 4]);
      expect(out).toMatch(/^\[other\] other fds= pid= self=\d+ names=$/m);
      expect(out).toContain('[other] other fd3=none\n');
      expect(openFds('other')).toEqual([0, 1, 2, 3]);
    } finally {
      server.close();
    }
  });

  it('prefixes each line with the app name when two apps run; one app or --interactive stays raw', async () => {
    const lines = (name: string) => `i=0; while [ $i -lt 200 ]; do echo "${name} line $i of the output"; i=$((i+1)); done; printf "${name} partial"; sleep 0.2; echo " done"; echo "${name} to stderr" >&2; printf "${name} no newline"`;
    const two = suite.env.run(['run', '--insecure-options=image', '--net=none', suite.demo, '--name', 'a', '--exec', '/bin/sh', '--', '-c', lines('a'), '---', suite.demo, '--name', 'b', '--exec', '/bin/sh', '--', '-c', lines('b')]);
    expect(two.status, two.stderr).toBe(0);
    const out = two.stdout.split('\n').filter((l) => l !== '');
    // Every line is whole and carries its app's prefix: no line of one app inside another's.
    for (const line of out) expect(line).toMatch(/^\[(a|b)\] \1 (line \d+ of the output|partial done|no newline)$/);
    for (const app of ['a', 'b']) {
      expect(out.filter((l) => l.startsWith(`[${app}] ${app} line `))).toHaveLength(200);
      expect(out).toContain(`[${app}] ${app} partial done`);
      // The last line had no newline: it is not lost when the app exits.
      expect(out).toContain(`[${app}] ${app} no newline`);
      expect(two.stderr).toContain(`[${app}] ${app} to stderr\n`);
    }
    const one = suite.env.run(['run', '--insecure-options=image', '--net=none', suite.demo, '--exec', '/bin/sh', '--', '-c', 'echo raw line']);
    expect(one.stdout).toBe('raw line\n');
    const interactive = suite.env.run(['run', '--insecure-options=image', '--net=none', '--interactive', suite.demo, '--exec', '/bin/sh', '--', '-c', 'echo raw line']);
    expect(interactive.stdout).toBe('raw line\n');
  });

  it('the unit of `generate systemd` runs: its ExecStart, started as systemd would (NOTIFY_SOCKET), reaches READY=1 and exits with the status of the app', async () => {
    const generated = JSON.parse(suite.env.ok(['generate', 'systemd', '--insecure-options=image', '--net=none', suite.demo, '--json'])) as { execStart: string[]; content: string };
    expect(generated.execStart).toContain('--insecure-options=image');
    const notify = listener();
    const [program, ...args] = generated.execStart;
    const child = spawn(program!, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: '/usr/bin:/bin', NOTIFY_SOCKET: notify.address }, cwd: '/' });
    let out = '';
    child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    // The demo app prints and exits 0: READY=1, then the pod ends on its own.
    expect((await notify.waitFor((m) => m.fields.MAINPID !== undefined)).fields.MAINPID).toBe(String(child.pid));
    expect(await exited).toBe(0);
    expect(out).toContain('hello from a tspod pod');
    expect(notify.messages.some((m) => m.fields.READY === '1')).toBe(true);
  });

  it('SIGTERM stops a pod whose app ignores it: STOPPING=1, SIGKILL after --stop-timeout, exit 137 and a last STATUS', async () => {
    const notify = listener();
    const run = start(
      suite.env,
      ['run', '--insecure-options=image', '--net=none', '--stop-timeout=1s', suite.demo, '--name', 'stubborn', '--exec', '/bin/sh', '--', '-c', 'trap "" TERM; echo trapped; sleep 60 & wait'],
      { env: { NOTIFY_SOCKET: notify.address } },
    );
    await notify.waitFor((m) => m.fields.READY === '1');
    // READY=1 means the apps were started, not that the shell has set its trap yet.
    for (let i = 0; i < 300 && !run.stdout().includes('trapped'); i++) await new Promise((r) => setTimeout(r, 50));
    run.child.kill('SIGTERM');
    await notify.waitFor((m) => m.fields.STOPPING === '1');
    const { code } = await run.exited;
    expect(code, run.stderr()).toBe(137);
    expect(notify.messages.at(-2)?.fields.STATUS).toBe('exited with status 137');
  });
});
