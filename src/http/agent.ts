// The shared undici Agents of tspod: one per connection setting (TLS verification, extra CAs, the
// DNS lookup hook), created lazily and closed together at the end of a command. Every HTTP
// exchange of tspod goes through `getAgent`, so every connection uses the same trust roots and,
// when the CLI passes tspod's resolver, the same DNS (discovery/ builds it; this module only calls
// it through Node's `net.LookupFunction` shape).
import fs from 'node:fs';
import type { LookupFunction } from 'node:net';
import { rootCertificates } from 'node:tls';

import { createAgent, type Agent } from './undici.js';

export interface TlsOptions {
  /** `--insecure-options=tls`: accept any server certificate. */
  insecureTls?: boolean;
  /** Extra CA certificates (PEM) to trust in addition to Node's defaults; for tests and config. */
  ca?: string;
}

export interface AgentOptions extends TlsOptions {
  /**
   * Resolves host names for every connection (tspod's DNS resolver; tests map made-up names).
   * Handed to undici's connector, which passes it to `net.connect`/`tls.connect` (`lookup`).
   */
  lookup?: LookupFunction;
}

const agents = new Map<string, Agent>();
const lookupIds = new WeakMap<LookupFunction, number>();
let nextLookupId = 1;

function lookupKey(lookup: LookupFunction | undefined): string {
  if (lookup === undefined) return '-';
  let id = lookupIds.get(lookup);
  if (id === undefined) {
    id = nextLookupId++;
    lookupIds.set(lookup, id);
  }
  return String(id);
}

/**
 * The shared Agent for a connection setting, created on first use. Without `ca`, undici's
 * connector calls tls.connect with no `ca`, so Node's bundled roots plus NODE_EXTRA_CA_CERTS apply.
 */
export function getAgent(opts: AgentOptions = {}): Agent {
  const insecure = opts.insecureTls === true;
  const key = `${insecure}\0${opts.ca ?? ''}\0${lookupKey(opts.lookup)}`;
  let agent = agents.get(key);
  if (!agent) {
    // Adding `ca` to tls.connect replaces the defaults, so append Node's roots to keep them.
    const ca = opts.ca === undefined ? undefined : [...defaultRootCertificates(), opts.ca];
    agent = createAgent({
      connect: {
        rejectUnauthorized: !insecure,
        ...(ca ? { ca } : {}),
        // undici's connector spreads these options into net.connect/tls.connect (lib/core/connect.js).
        ...(opts.lookup ? { lookup: opts.lookup } : {}),
      },
    });
    agents.set(key, agent);
  }
  return agent;
}

/** Node's bundled roots plus NODE_EXTRA_CA_CERTS, which Node applies only when `ca` is not given. */
function defaultRootCertificates(): string[] {
  const roots = [...rootCertificates];
  const extra = process.env.NODE_EXTRA_CA_CERTS;
  if (extra) {
    try {
      roots.push(fs.readFileSync(extra, 'utf8'));
    } catch {
      // Node itself only warns about an unreadable NODE_EXTRA_CA_CERTS; do the same (nothing).
    }
  }
  return roots;
}

/** Closes every shared Agent (end of a command, tests). */
export async function closeAgents(): Promise<void> {
  const all = [...agents.values()];
  agents.clear();
  await Promise.all(all.map((a) => a.close()));
}
