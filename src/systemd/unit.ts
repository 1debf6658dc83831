// The systemd service unit of `tspod generate systemd`: pure, a UnitSpec in, the unit file's text
// out, tested as data (and by `systemd-analyze verify` in test/systemd/). The shape follows rkt's
// guidance for running pods under systemd (rkt-notes.md §5, ecosystem-notes.md §2): tspod run is
// the service's main process and stays in the foreground; Type=notify, READY=1 once the apps run
// (src/systemd/pod-notifier.ts); KillMode=mixed, so a stop sends SIGTERM to tspod only, which stops
// the apps in order, and systemd SIGKILLs what is left after TimeoutStopSec=, which must
// therefore be above tspod's own --stop-timeout (systemd.kill(5), systemd.service(5)).

/** systemd.service(5) Restart= values. */
export const RESTART_POLICIES = ['no', 'on-success', 'on-failure', 'on-abnormal', 'on-watchdog', 'on-abort', 'always'] as const;
export type RestartPolicy = (typeof RESTART_POLICIES)[number];

/**
 * TimeoutStopSec= is tspod's stop timeout plus this: after the apps are SIGKILLed tspod still
 * unmounts the pod, removes its cgroups and waits up to 5 s for the sd_notify barrier.
 */
export const STOP_TIMEOUT_MARGIN_MS = 10_000;

/** TimeoutStartSec= when an image may have to be downloaded first (systemd's default is 90 s). */
export const FETCH_START_TIMEOUT_SEC = 900;

export interface UnitSpec {
  /** The unit's name without `.service` (`tspod-web`). */
  name: string;
  description: string;
  /** ExecStart= as argv: an absolute program, then its arguments. */
  execStart: string[];
  /** tspod's --stop-timeout (ms): TimeoutStopSec= is above it. */
  stopTimeoutMs: number;
  restart: RestartPolicy;
  /** The data directory: RequiresMountsFor=. */
  dataDir: string;
  /** Some image may need fetching: a longer TimeoutStartSec=. */
  mayFetch: boolean;
  /** Lines for the unit's header comment. */
  comments?: string[];
}

/** The characters systemd accepts in a unit name (systemd.unit(5)); anything else becomes `-`. */
export function sanitizeUnitName(text: string): string {
  const cleaned = text.replace(/[^A-Za-z0-9:_.-]+/g, '-').replace(/^-+|-+$/g, '');
  return (cleaned === '' ? 'pod' : cleaned).slice(0, 200);
}

/** The file a unit named `name` is written to. */
export function unitFileName(name: string): string {
  return `${name}.service`;
}

/** TimeoutStopSec= in whole seconds for a given stop timeout. */
export function timeoutStopSec(stopTimeoutMs: number): number {
  return Math.ceil((stopTimeoutMs + STOP_TIMEOUT_MARGIN_MS) / 1000);
}

/**
 * One ExecStart= word (systemd.service(5) "Command lines"): `%` starts a specifier and `$` a
 * variable, so they are doubled; a word with anything beyond a safe set is double-quoted, with
 * `\` and `"` escaped and control characters written as C escapes, which systemd unescapes.
 */
export function quoteExecWord(word: string): string {
  const literal = word.replace(/%/g, '%%').replace(/\$/g, '$$$$');
  if (literal !== '' && /^[A-Za-z0-9_@%$+=:,./-]+$/.test(literal) && literal !== ';') return literal;
  const escaped = literal.replace(/[\\"]/g, (c) => `\\${c}`).replace(/[\x00-\x1f\x7f]/g, (c) => {
    const named: Record<string, string> = { '\n': '\\n', '\t': '\\t', '\r': '\\r' };
    return named[c] ?? `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`;
  });
  return `"${escaped}"`;
}

/** A command line for ExecStart=. */
export function execLine(argv: readonly string[]): string {
  return argv.map(quoteExecWord).join(' ');
}

/** A free-text value (Description=): one line, `%` doubled (specifiers are expanded there too). */
function textValue(text: string): string {
  return text.replace(/[\r\n]+/g, ' ').replace(/%/g, '%%');
}

/** A path in a space-separated list (RequiresMountsFor=): `%` doubled, quoted when it has blanks. */
function pathValue(file: string): string {
  const literal = file.replace(/%/g, '%%');
  return /\s/.test(literal) ? `"${literal.replace(/[\\"]/g, (c) => `\\${c}`)}"` : literal;
}

export function renderUnit(spec: UnitSpec): string {
  const lines: string[] = [];
  for (const comment of spec.comments ?? []) lines.push(`# ${comment}`);
  lines.push(
    '[Unit]',
    `Description=${textValue(spec.description)}`,
    'Wants=network-online.target',
    'After=network-online.target',
    `RequiresMountsFor=${pathValue(spec.dataDir)}`,
    '',
    '[Service]',
    // tspod run sends READY=1 itself, or relays an app's: every message comes from the main process.
    'Type=notify',
    'NotifyAccess=main',
    `ExecStart=${execLine(spec.execStart)}`,
    'KillMode=mixed',
    `TimeoutStopSec=${timeoutStopSec(spec.stopTimeoutMs)}`,
    ...(spec.mayFetch ? [`TimeoutStartSec=${FETCH_START_TIMEOUT_SEC}`] : []),
    ...(spec.restart === 'no' ? [] : [`Restart=${spec.restart}`]),
    // tspod makes cgroups for the pod and its apps, below the unit's own on cgroup v2 (src/systemd/delegation.ts).
    'Delegate=yes',
    'Slice=machine.slice',
    `SyslogIdentifier=${spec.name}`,
    '',
    '[Install]',
    'WantedBy=multi-user.target',
    '',
  );
  return lines.join('\n');
}
