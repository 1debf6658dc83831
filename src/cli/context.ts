// The one place that constructs real implementations (libc syscalls, the store, the keystore)
// from the global flags. Commands get collaborators from here and pass them down in options
// objects; tests construct their own.
import type { Resolver } from '../discovery/dns.js';
import { parseInsecureOptions, type InsecureOptions } from '../fetch/insecure-options.js';
import type { FetchContext, FetchProgress } from '../fetch/context.js';
import type { ExchangeOptions } from '../http/exchange.js';
import { chooseProgressMode, createProgressReporter } from '../output/progress.js';
import { Store } from '../store/store.js';
import { libcSyscalls } from '../sys/libc.js';
import type { Syscalls } from '../sys/types.js';
import type { Keystore } from '../trust/keystore.js';

export interface GlobalOptions {
  dir: string;
  localConfig: string;
  systemConfig: string;
  insecureOptions?: string | string[];
  warn: (message: string) => void;
}

export class Context {
  readonly sys: Syscalls = libcSyscalls;
  readonly insecure: InsecureOptions;
  private storeInstance: Store | undefined;
  private keystoreInstance: Keystore | undefined;
  private networkInstance: NetworkContext | undefined;

  constructor(readonly options: GlobalOptions) {
    this.insecure = parseInsecureOptions(options.insecureOptions);
  }

  get warn(): (message: string) => void {
    return this.options.warn;
  }

  get store(): Store {
    this.storeInstance ??= new Store({ dir: this.options.dir, sys: this.sys, onWarning: this.options.warn }).init();
    return this.storeInstance;
  }

  /** The keystore; loaded on first use because openpgp is a large module most commands never need. */
  async keystore(): Promise<Keystore> {
    if (this.keystoreInstance === undefined) {
      const { Keystore: KeystoreClass } = await import('../trust/keystore.js');
      this.keystoreInstance = new KeystoreClass({ systemDir: this.options.systemConfig, localDir: this.options.localConfig, sys: this.sys });
    }
    return this.keystoreInstance;
  }

  /**
   * What every network exchange of the command takes (loaded on first use, as most commands never
   * touch the network): tspod's own DNS resolver (resolv.conf, /etc/hosts, TSPOD_NAMESERVER) as
   * the lookup of every connection, the auth.d credentials of both config layers, and the TLS and
   * plain-HTTP choices of --insecure-options.
   */
  async network(): Promise<NetworkContext> {
    if (this.networkInstance === undefined) {
      const [{ Resolver, createLookup }, { loadAuthConfig }] = await Promise.all([import('../discovery/dns.js'), import('../http/auth.js')]);
      const resolver = new Resolver();
      this.networkInstance = {
        resolver,
        http: {
          lookup: createLookup(resolver),
          auth: loadAuthConfig({ systemDir: this.options.systemConfig, localDir: this.options.localConfig }),
          insecureTls: this.insecure.tls,
          allowHttp: this.insecure.http,
        },
      };
    }
    return this.networkInstance;
  }

  /**
   * What the fetch functions take. Downloads show progress on stderr (bars on a terminal, plain
   * lines otherwise) unless the command passes its own reporter (`tspod fetch --json/--quiet`).
   */
  fetchContext(options: { progress?: FetchProgress } = {}): FetchContext {
    return {
      store: this.store,
      keystore: () => this.keystore(),
      insecure: this.insecure,
      onWarning: this.warn,
      network: () => this.network(),
      progress: options.progress ?? defaultProgress(),
    };
  }
}

/** Progress on stderr for commands without progress flags (run, prepare). */
function defaultProgress(): FetchProgress {
  const mode = chooseProgressMode({ json: false, quiet: false, stderrIsTTY: process.stderr.isTTY === true, term: process.env.TERM });
  return createProgressReporter({ mode, stderr: process.stderr, stdout: process.stdout });
}

/** The DNS resolver and the options of every HTTP exchange of one command (Context.network). */
export interface NetworkContext {
  resolver: Resolver;
  http: ExchangeOptions;
}
