// The resolv.conf of a pod on a pod network (`--net=default` or named networks) without `--dns`:
// the host's DNS, as issue 7 asks (rkt gave the CNI result's DNS, else the image's own file).
// Pure. A name server on the host's loopback (systemd-resolved's 127.0.0.53, a local dnsmasq) is
// not reachable from the pod's own network namespace, whose 127.0.0.1 is the pod's: such lines
// are left out, with a warning when nothing is left, and the image keeps its own file then.
import { isIP } from 'node:net';

function isLoopback(address: string): boolean {
  return (isIP(address) === 4 && address.startsWith('127.')) || address === '::1';
}

/** The host's resolv.conf(5) minus loopback name servers; undefined when none is left. */
export function podNetworkResolvConf(hostResolvConf: string | undefined, warnings: string[]): string | undefined {
  if (hostResolvConf === undefined) return undefined;
  const lines = hostResolvConf.split('\n');
  const servers = lines.filter((l) => /^\s*nameserver\s+\S+/.test(l)).map((l) => l.trim().split(/\s+/)[1]!);
  const reachable = servers.filter((s) => !isLoopback(s));
  if (reachable.length === 0) {
    if (servers.length > 0) warnings.push(`the host's name servers (${servers.join(', ')}) are on its loopback, which the pod cannot reach; the images keep their own /etc/resolv.conf (give --dns)`);
    return undefined;
  }
  const kept = lines.filter((l) => {
    const match = /^\s*nameserver\s+(\S+)/.exec(l);
    return match === null || !isLoopback(match[1]!);
  });
  return `# the host's name servers, copied by tspod\n${kept.join('\n').replace(/\n*$/, '\n')}`;
}
