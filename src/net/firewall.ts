// The firewall rules of a pod: outbound masquerading for its address, port forwarding (DNAT) from
// host ports to the pod, and FORWARD accepts, planned as data and rendered for the tool the
// machine has: `iptables-restore --noflush` (iptables(8), iptables-nft or legacy) or `nft -f`
// (nft(8)). Every rule is tagged with the pod's UUID, so removing a pod's rules needs nothing but
// the UUID: with iptables, the rules whose comment is `tspod:<uuid>` (found in iptables-save's
// output); with nftables, the pod's own table `ip tspod-<uuid>`. The pure part renders text; the
// apply part runs the tools through a CommandRunner.
//
// Port forwarding follows rkt's networking/portfwd.go (DNAT in PREROUTING and OUTPUT for local
// destinations, no userland proxy), and also works for connections to 127.0.0.1, which rkt's did
// not (rkt-notes.md §6.1): the kernel routes a DNATed packet from 127.0.0.1 out of the bridge
// only with net.ipv4.conf.<bridge>.route_localnet=1 (ip-sysctl.rst), and the pod's reply comes
// back only when such a source is masqueraded to the gateway address, as CNI's portmap plugin does.
import { FIREWALL_BACKENDS, type FirewallBackendName } from './config.js';
import { NetworkSetupError } from './network-error.js';
import { runCommand, type CommandRunner } from './run-command.js';

export interface ForwardedPort {
  /** The app port's name (`--port NAME:...`). */
  name: string;
  protocol: 'tcp' | 'udp';
  hostPort: number;
  /** Only connections to this host address; all local addresses when absent. */
  hostIP?: string;
  podPort: number;
}

/** What the firewall must do for one pod (pure data; addresses as dotted quads). */
export interface PodFirewallPlan {
  uuid: string;
  /** Masquerade what the pod sends from `podIP` to outside its network's `subnet` (CIDR). */
  masquerade?: { podIP: string; subnet: string };
  /** Forward these host ports to `podIP` (the address on the pod's first network). */
  forward?: { podIP: string; ports: ForwardedPort[] };
}

export function needsRules(plan: PodFirewallPlan): boolean {
  return plan.masquerade !== undefined || (plan.forward?.ports.length ?? 0) > 0;
}

/** The pod addresses whose traffic the FORWARD rules accept. */
function forwardedAddresses(plan: PodFirewallPlan): string[] {
  const ips = [plan.masquerade?.podIP, (plan.forward?.ports.length ?? 0) > 0 ? plan.forward?.podIP : undefined].filter((ip): ip is string => ip !== undefined);
  return [...new Set(ips)];
}

/** The comment on every iptables rule of the pod. */
export function iptablesTag(uuid: string): string {
  return `tspod:${uuid}`;
}

/** The nftables table that holds all of the pod's rules. */
export function nftTable(uuid: string): string {
  return `tspod-${uuid}`;
}

// -------------------------------------------------------------------------------------------------
// iptables

/** iptables-restore input (`--noflush`) that adds the pod's rules. */
export function iptablesRules(plan: PodFirewallPlan): string {
  const tag = `-m comment --comment "${iptablesTag(plan.uuid)}"`;
  const nat: string[] = [];
  const filter: string[] = [];
  if (plan.masquerade !== undefined) nat.push(`-A POSTROUTING -s ${plan.masquerade.podIP}/32 ! -d ${plan.masquerade.subnet} ${tag} -j MASQUERADE`);
  for (const port of plan.forward?.ports ?? []) {
    const pod = plan.forward!.podIP;
    const match = `${port.hostIP === undefined ? '-m addrtype --dst-type LOCAL' : `-d ${port.hostIP}/32`} -p ${port.protocol} -m ${port.protocol} --dport ${port.hostPort}`;
    const dnat = `-j DNAT --to-destination ${pod}:${port.podPort}`;
    // PREROUTING: from other machines and the pods; OUTPUT: from the host itself.
    nat.push(`-A PREROUTING ${match} ${tag} ${dnat}`);
    nat.push(`-A OUTPUT ${match} ${tag} ${dnat}`);
    // Connections to 127.0.0.1 leave through the bridge with their loopback source: masquerade it.
    nat.push(`-A POSTROUTING -s 127.0.0.0/8 -d ${pod}/32 -p ${port.protocol} -m ${port.protocol} --dport ${port.podPort} ${tag} -j MASQUERADE`);
  }
  // Inserted first, before any DROP a host firewall (or Docker) has in FORWARD.
  for (const ip of forwardedAddresses(plan)) filter.push(`-I FORWARD 1 -s ${ip}/32 ${tag} -j ACCEPT`, `-I FORWARD 1 -d ${ip}/32 ${tag} -j ACCEPT`);
  return tables({ nat, filter });
}

/**
 * iptables-restore input (`--noflush`) that deletes exactly the rules `iptablesRules` added
 * (`-A C ...` and `-I C 1 ...` become `-D C ...`): one process instead of iptables-save plus a
 * restore, for the exit path, which knows what it added.
 */
export function iptablesUndo(added: string): string {
  return added
    .split('\n')
    .map((line) => line.replace(/^-A (\S+) /, '-D $1 ').replace(/^-I (\S+) 1 /, '-D $1 '))
    .join('\n');
}

function tables(rules: Record<string, string[]>): string {
  const out: string[] = [];
  for (const [table, lines] of Object.entries(rules)) {
    if (lines.length === 0) continue;
    out.push(`*${table}`, ...lines, 'COMMIT');
  }
  return out.length === 0 ? '' : `${out.join('\n')}\n`;
}

/**
 * iptables-restore input (`--noflush`) that deletes every rule of `iptables-save` output tagged
 * with the pod's UUID ('' when there is none). Also deletes rules CNI plugins tagged with the
 * pod as container id (`id: "<uuid>"`), and flushes and deletes the CNI chains they jump to:
 * a CNI DEL without the pod's network namespace (after kill -9) cannot find them.
 */
export function iptablesDeletions(saved: string, uuid: string): string {
  const ours = new RegExp(`--comment "?${escapeRegExp(iptablesTag(uuid))}"?(\\s|$)`);
  // CNI's comment is `name: "NET" id: "ID"`, saved with its quotes escaped.
  const cni = new RegExp(`--comment .*id: \\\\?"${escapeRegExp(uuid)}\\\\?"`);
  const byTable: Record<string, string[]> = {};
  const chainsByTable: Record<string, Set<string>> = {};
  let table = '';
  for (const line of saved.split('\n')) {
    if (line.startsWith('*')) {
      table = line.slice(1).trim();
      continue;
    }
    if (!line.startsWith('-A ') || !(ours.test(line) || cni.test(line))) continue;
    (byTable[table] ??= []).push(`-D ${line.slice(3)}`);
    const jump = / -j (CNI-[A-Za-z0-9_-]+)/.exec(line);
    if (jump !== null) (chainsByTable[table] ??= new Set()).add(jump[1]!);
  }
  for (const [t, chains] of Object.entries(chainsByTable)) {
    for (const chain of chains) (byTable[t] ??= []).push(`-F ${chain}`, `-X ${chain}`);
  }
  return tables(byTable);
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

// -------------------------------------------------------------------------------------------------
// nftables

/** `nft -f` input that creates the pod's table with all its rules. */
export function nftRules(plan: PodFirewallPlan): string {
  const post: string[] = [];
  const dnat: string[] = [];
  const forward: string[] = [];
  if (plan.masquerade !== undefined) post.push(`ip saddr ${plan.masquerade.podIP} ip daddr != ${plan.masquerade.subnet} masquerade`);
  for (const port of plan.forward?.ports ?? []) {
    const pod = plan.forward!.podIP;
    const match = `${port.hostIP === undefined ? 'fib daddr type local' : `ip daddr ${port.hostIP}`} ${port.protocol} dport ${port.hostPort}`;
    dnat.push(`${match} dnat to ${pod}:${port.podPort}`);
    post.push(`ip saddr 127.0.0.0/8 ip daddr ${pod} ${port.protocol} dport ${port.podPort} masquerade`);
  }
  for (const ip of forwardedAddresses(plan)) forward.push(`ip saddr ${ip} accept`, `ip daddr ${ip} accept`);
  // Priorities: dstnat (-100) for prerouting and output, srcnat (100) for postrouting, filter (0).
  const chain = (name: string, hook: string, type: string, priority: number, rules: string[]): string[] =>
    rules.length === 0 ? [] : [`\tchain ${name} {`, `\t\ttype ${type} hook ${hook} priority ${priority}; policy accept;`, ...rules.map((r) => `\t\t${r}`), '\t}'];
  return [
    `table ip ${nftTable(plan.uuid)} {`,
    ...chain('prerouting', 'prerouting', 'nat', -100, dnat),
    ...chain('output', 'output', 'nat', -100, dnat),
    ...chain('postrouting', 'postrouting', 'nat', 100, post),
    ...chain('forward', 'forward', 'filter', 0, forward),
    '}',
    '',
  ].join('\n');
}

/** `nft -f` input that removes the pod's table whether or not it exists (declaring it first makes the delete always valid). */
export function nftDeletion(uuid: string): string {
  return `table ip ${nftTable(uuid)}\ndelete table ip ${nftTable(uuid)}\n`;
}

// -------------------------------------------------------------------------------------------------
// Apply

export interface FirewallTools {
  run?: CommandRunner;
  /** Whether a program is installed (default: found in PATH). */
  has?: (program: string) => boolean;
}

/** The backend to use: the configured one, else iptables when installed, else nftables. */
export function chooseBackend(configured: FirewallBackendName | undefined, has: (program: string) => boolean): FirewallBackendName {
  if (configured !== undefined) return configured;
  if (has('iptables-restore')) return 'iptables';
  if (has('nft')) return 'nftables';
  throw new NetworkSetupError('set up pod network: neither iptables nor nftables is installed (needed to masquerade and forward ports)', {
    suggestions: ['apt-get install iptables', 'or set "ipMasq": false in the network configuration and use no --port'],
  });
}

export function isFirewallBackend(value: unknown): value is FirewallBackendName {
  return FIREWALL_BACKENDS.includes(value as FirewallBackendName);
}

async function tool(run: CommandRunner, program: string, args: string[], input: string, what: string): Promise<string> {
  const result = await run(program, args, input);
  if (result.code !== 0) {
    throw new NetworkSetupError(`${what}: ${program} ${args.join(' ')} exited ${result.code}: ${result.stderr.trim() || result.stdout.trim()}`);
  }
  return result.stdout;
}

/** Adds the pod's rules. */
export async function addPodRules(backend: FirewallBackendName, plan: PodFirewallPlan, tools: FirewallTools = {}): Promise<void> {
  const run = tools.run ?? runCommand;
  const what = `add the firewall rules of pod ${plan.uuid}`;
  // -w: wait for the xtables lock instead of failing while another tool (Docker, CNI) holds it.
  if (backend === 'iptables') await tool(run, 'iptables-restore', ['-w', '--noflush'], iptablesRules(plan), what);
  else await tool(run, 'nft', ['-f', '-'], nftRules(plan), what);
}

/**
 * Removes every rule of the pod (none is fine). With `added` (the plan the rules were added
 * from), iptables deletes exactly those in one restore, and falls back to finding the pod's tagged
 * rules in iptables-save's output when that fails (a rule already gone makes the restore fail).
 */
export async function removePodRules(backend: FirewallBackendName, uuid: string, tools: FirewallTools & { added?: PodFirewallPlan } = {}): Promise<void> {
  const run = tools.run ?? runCommand;
  const what = `remove the firewall rules of pod ${uuid}`;
  if (backend === 'nftables') {
    await tool(run, 'nft', ['-f', '-'], nftDeletion(uuid), what);
    return;
  }
  if (tools.added !== undefined) {
    const undo = iptablesUndo(iptablesRules(tools.added));
    if (undo === '' || (await run('iptables-restore', ['-w', '--noflush'], undo)).code === 0) return;
  }
  const saved = await tool(run, 'iptables-save', [], '', what);
  const deletions = iptablesDeletions(saved, uuid);
  if (deletions !== '') await tool(run, 'iptables-restore', ['-w', '--noflush'], deletions, what);
}
