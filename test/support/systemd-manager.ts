// A real systemd manager for tests, on a machine whose PID 1 is not systemd: the installed
// `/lib/systemd/systemd --user`, run as root, with everything it touches private to the test.
// - A mount namespace of its own (`unshare --mount`), where /run/systemd is a fresh tmpfs with
//   /run/systemd/system in it: systemd refuses to run a user instance unless sd_booted() (that
//   directory exists), and the host's /run/systemd stays as it was.
// - A cgroup of its own, `tspod-test-systemd-PID-RANDOM` under the name=systemd v1 hierarchy and
//   the unified v2 one (hybrid), or under the v2 root, which it then manages (init.scope, slices,
//   one cgroup per unit). Removed, with every process left in it, by stop(). With `unified`, a
//   hybrid host's unified hierarchy is mounted on /sys/fs/cgroup in that namespace, and the
//   manager runs in systemd's unified mode (cgroup v2 only).
// - XDG_RUNTIME_DIR, HOME and XDG_CONFIG_HOME in a temp dir, and SYSTEMD_UNIT_PATH set to a
//   directory of the test's (with the few targets every unit depends on), so none of the host's
//   user units (dbus, gpg-agent, ...) loads. `systemctl --user` reaches the manager through
//   $XDG_RUNTIME_DIR/systemd/private, without D-Bus.
// Units run as root with the manager's environment; a unit's stdout is best sent to a file
// (StandardOutput=append:FILE), as there is no journal.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import { hasCommand } from './tools.js';

export const SYSTEMD_BINARY = '/lib/systemd/systemd';
const CGROUP_ROOT = '/sys/fs/cgroup';

const HYBRID_UNIFIED = path.join(CGROUP_ROOT, 'unified');

/** The host runs cgroup v2 only: /sys/fs/cgroup is the unified hierarchy. */
function unifiedHost(): boolean {
  return fs.existsSync(path.join(CGROUP_ROOT, 'cgroup.controllers'));
}

/**
 * The cgroup hierarchies a manager needs a cgroup in: name=systemd and unified (hybrid), or the
 * v2 root. `unified` on a hybrid host: the unified hierarchy only, which the manager's namespace
 * mounts on /sys/fs/cgroup.
 */
function managerHierarchies(unified = false): string[] {
  if (unifiedHost()) return [CGROUP_ROOT];
  if (unified) return fs.existsSync(path.join(HYBRID_UNIFIED, 'cgroup.procs')) ? [HYBRID_UNIFIED] : [];
  return [path.join(CGROUP_ROOT, 'systemd'), HYBRID_UNIFIED].filter((h) => fs.existsSync(path.join(h, 'cgroup.procs')));
}

export interface ManagerOptions {
  /**
   * Run the manager in systemd's unified mode (cgroup v2 only), as on most current distributions.
   * On a hybrid host (as this machine kind), the manager's mount namespace gets the unified
   * hierarchy mounted on /sys/fs/cgroup, so the manager, `tspod run` and the pods it starts see
   * a cgroup v2 host. The v1 controllers stay bound to their own hierarchies, so that v2
   * hierarchy offers none of cpu, memory or pids.
   */
  unified?: boolean;
}

/** Why no manager can be started here, or undefined when one can. */
export function systemdManagerMissing(options: ManagerOptions = {}): string | undefined {
  if (process.geteuid?.() !== 0) return 'needs root (a mount namespace and cgroups of its own)';
  if (!fs.existsSync(SYSTEMD_BINARY)) return `needs ${SYSTEMD_BINARY} (Debian package systemd)`;
  if (!hasCommand('systemctl', ['--version'])) return 'needs systemctl (Debian package systemd)';
  if (!hasCommand('unshare', ['--version']) || !hasCommand('setpriv', ['--version'])) return 'needs unshare and setpriv (Debian package util-linux)';
  if (managerHierarchies(options.unified).length === 0) return `needs ${options.unified ? 'a cgroup2 hierarchy at ' + HYBRID_UNIFIED + ' or' : 'a name=systemd or cgroup2 hierarchy under'} ${CGROUP_ROOT}`;
  return undefined;
}

/** Targets that units depend on by default (DefaultDependencies=yes in a user manager), and the start target. */
const TARGETS = ['default', 'basic', 'shutdown', 'exit', 'sockets', 'timers', 'paths'];

export interface SystemctlResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

export class SystemdUserManager {
  /** Where unit files go (SYSTEMD_UNIT_PATH); call daemonReload() after writing some. */
  readonly unitDir: string;
  private readonly runtimeDir: string;
  private readonly cgroups: string[];
  private readonly runSystemdCreated: boolean;
  private exited = false;

  private constructor(
    readonly base: string,
    private readonly child: ChildProcess,
    cgroups: string[],
    runSystemdCreated: boolean,
    private readonly logFile: string,
  ) {
    this.unitDir = path.join(base, 'units');
    this.runtimeDir = path.join(base, 'rt');
    this.cgroups = cgroups;
    this.runSystemdCreated = runSystemdCreated;
    child.on('exit', () => (this.exited = true));
  }

  /** Starts a manager and waits until it runs its default target; stop() must follow, also on failure. */
  static async start(options: ManagerOptions = {}): Promise<SystemdUserManager> {
    const reason = systemdManagerMissing(options);
    if (reason !== undefined) throw new Error(`no systemd manager: ${reason}`);
    const base = fs.mkdtempSync(path.join(os.tmpdir(), 'tspod-systemd-'));
    for (const dir of ['units', 'rt', 'home', 'config']) fs.mkdirSync(path.join(base, dir), { mode: 0o700 });
    for (const t of TARGETS) fs.writeFileSync(path.join(base, 'units', `${t}.target`), `[Unit]\nDescription=${t} (test manager)\n${t === 'exit' || t === 'shutdown' ? 'DefaultDependencies=no\n' : ''}`);
    // /run/systemd is mounted over in the manager's namespace; it exists on Debian. Made (and
    // removed by stop()) only where it does not, as the mount point must exist on the host.
    const runSystemdCreated = !fs.existsSync('/run/systemd');
    if (runSystemdCreated) fs.mkdirSync('/run/systemd');
    const name = `tspod-test-systemd-${process.pid}-${crypto.randomBytes(4).toString('hex')}`;
    const cgroups = managerHierarchies(options.unified).map((h) => path.join(h, name));
    for (const dir of cgroups) fs.mkdirSync(dir);
    const logFile = path.join(base, 'manager.log');
    const log = fs.openSync(logFile, 'a');
    // The shell joins the cgroups, then execs the manager: its pid, and every process it starts, is in them.
    const script = [
      'set -e',
      'mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /run/systemd',
      'mkdir /run/systemd/system',
      'for cg in "$@"; do echo $$ > "$cg/cgroup.procs"; done',
      // Joined through the host's paths first: the mount hides them.
      ...(options.unified && !unifiedHost() ? [`mount -t cgroup2 cgroup2 ${CGROUP_ROOT}`] : []),
      `exec ${SYSTEMD_BINARY} --user --log-target=console --log-level=info`,
    ].join('\n');
    const env: NodeJS.ProcessEnv = {
      PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
      HOME: path.join(base, 'home'),
      XDG_RUNTIME_DIR: path.join(base, 'rt'),
      XDG_CONFIG_HOME: path.join(base, 'config'),
      SYSTEMD_UNIT_PATH: path.join(base, 'units'),
      LANG: 'C.UTF-8',
    };
    // setpriv --pdeathsig: the manager dies with this process should it die before stop().
    const child = spawn('unshare', ['--mount', '--propagation', 'private', 'setpriv', '--pdeathsig', 'KILL', '/bin/sh', '-c', script, 'sh', ...cgroups], {
      stdio: ['ignore', log, log],
      env,
    });
    fs.closeSync(log);
    const manager = new SystemdUserManager(base, child, cgroups, runSystemdCreated, logFile);
    try {
      const deadline = Date.now() + 15_000;
      for (;;) {
        if (manager.exited) throw new Error(`the manager exited (${child.exitCode ?? child.signalCode})`);
        if (fs.existsSync(path.join(manager.runtimeDir, 'systemd', 'private'))) {
          const state = manager.systemctl(['show', '--property=SystemState', '--value']);
          if (state.status === 0 && ['running', 'degraded'].includes(state.stdout.trim())) break;
        }
        if (Date.now() > deadline) throw new Error('the manager did not reach its default target within 15 s');
        await sleep(50);
      }
    } catch (err) {
      const message = `${(err as Error).message}; its log:\n${manager.log()}`;
      await manager.stop();
      throw new Error(message);
    }
    return manager;
  }

  /** The manager's own output (start-up errors). */
  log(): string {
    try {
      return fs.readFileSync(this.logFile, 'utf8');
    } catch {
      return '';
    }
  }

  /** `systemctl --user ARGS` against this manager. */
  systemctl(args: string[], timeoutMs = 60_000): SystemctlResult {
    const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, XDG_RUNTIME_DIR: this.runtimeDir, SYSTEMD_PAGER: '', SYSTEMD_COLORS: '0', LANG: 'C.UTF-8' };
    const r = spawnSync('systemctl', ['--user', '--no-pager', ...args], { encoding: 'utf8', env, timeout: timeoutMs });
    return { status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? (r.error?.message ?? '') };
  }

  /** Like systemctl, but it must succeed; returns stdout. */
  ok(args: string[], timeoutMs?: number): string {
    const r = this.systemctl(args, timeoutMs);
    if (r.status !== 0) throw new Error(`systemctl --user ${args.join(' ')} exited ${r.status}: ${r.stderr}${r.stdout}`);
    return r.stdout;
  }

  /** `systemctl show UNIT -p ...` as a record. */
  show(unit: string, properties: string[]): Record<string, string> {
    const out = this.ok(['show', unit, ...properties.map((p) => `--property=${p}`)]);
    const values: Record<string, string> = {};
    for (const line of out.split('\n')) {
      const eq = line.indexOf('=');
      if (eq > 0) values[line.slice(0, eq)] = line.slice(eq + 1);
    }
    return values;
  }

  /** Polls `show` until `done` holds; returns the last values (throws with them after the timeout). */
  async waitFor(unit: string, properties: string[], done: (values: Record<string, string>) => boolean, timeoutMs = 30_000): Promise<Record<string, string>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const values = this.show(unit, properties);
      if (done(values)) return values;
      if (Date.now() > deadline) throw new Error(`${unit}: still ${JSON.stringify(values)} after ${timeoutMs} ms`);
      await sleep(50);
    }
  }

  /** Writes a unit file (and drop-ins as `NAME.d/FILE`) into the unit dir and reloads. */
  writeUnit(name: string, content: string): string {
    const file = path.join(this.unitDir, name);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, content);
    this.daemonReload();
    return file;
  }

  daemonReload(): void {
    this.ok(['daemon-reload']);
  }

  /** The pids in a unit's cgroup (ControlGroup=, in the manager's first hierarchy), sub-cgroups included. */
  pidsOf(controlGroup: string): number[] {
    return cgroupPids(this.cgroupDir(controlGroup));
  }

  /** The manager's own cgroup, which its units' ControlGroup= paths start with. */
  get controlGroup(): string {
    return `/${path.basename(this.cgroups[0]!)}`;
  }

  /** The host's directory of a cgroup (ControlGroup=, or a /proc/PID/cgroup path) in the manager's first hierarchy. */
  cgroupDir(controlGroup: string): string {
    return path.join(path.dirname(this.cgroups[0]!), controlGroup);
  }

  /**
   * Stops the manager and everything it started: SIGKILL to every process in its cgroups (units
   * should have been stopped first, so that tspod cleans up its pods), then the cgroups and the
   * temp dir are removed. The mount namespace ends with its last process.
   */
  async stop(): Promise<void> {
    for (let attempt = 0; attempt < 100; attempt++) {
      const pids = this.cgroups.flatMap(cgroupPids);
      if (!this.exited) pids.push(this.child.pid!);
      if (pids.length === 0) break;
      for (const pid of new Set(pids)) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // ESRCH: gone already.
        }
      }
      await sleep(50);
    }
    for (const dir of this.cgroups) removeCgroupDir(dir);
    if (this.runSystemdCreated) {
      try {
        fs.rmdirSync('/run/systemd');
      } catch {
        // Not empty: something else uses it now.
      }
    }
    fs.rmSync(this.base, { recursive: true, force: true });
  }
}

function cgroupPids(dir: string): number[] {
  if (!fs.existsSync(dir)) return [];
  const pids: number[] = [];
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    if (entry.isDirectory()) pids.push(...cgroupPids(path.join(dir, entry.name)));
  }
  try {
    for (const line of fs.readFileSync(path.join(dir, 'cgroup.procs'), 'utf8').split('\n')) if (line !== '') pids.push(Number(line));
  } catch {
    // Removed meanwhile.
  }
  return pids;
}

/** rmdir(2) a cgroup, deepest first; a cgroup still busy is left (and reported by the caller's checks). */
function removeCgroupDir(dir: string): void {
  if (!fs.existsSync(dir)) return;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) if (entry.isDirectory()) removeCgroupDir(path.join(dir, entry.name));
  for (let i = 0; i < 20; i++) {
    try {
      fs.rmdirSync(dir);
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      spawnSync('sleep', ['0.05']);
    }
  }
}
