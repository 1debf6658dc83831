// The one place that constructs real implementations (libc syscalls, the store, the keystore)
// from the global flags. Commands get collaborators from here and pass them down in options
// objects; tests construct their own.
import { parseInsecureOptions, type InsecureOptions } from '../fetch/insecure-options.js';
import { Store } from '../store/store.js';
import { libcSyscalls } from '../sys/libc.js';
import type { Syscalls } from '../sys/types.js';
import { Keystore } from '../trust/keystore.js';

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

  get keystore(): Keystore {
    this.keystoreInstance ??= new Keystore({ systemDir: this.options.systemConfig, localDir: this.options.localConfig, sys: this.sys });
    return this.keystoreInstance;
  }

  /** What the fetch functions take. */
  get fetchContext() {
    return { store: this.store, keystore: this.keystore, insecure: this.insecure, onWarning: this.warn };
  }
}
