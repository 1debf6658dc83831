// What the fetch functions take and give: the collaborators of one command (store, keystore and
// network, each loaded on first use so `tspod run` of a stored image never loads openpgp, undici
// or htmlparser2), the request (pull policy, labels, signature file), and the result. Types only,
// apart from the pull-policy vocabulary (rkt's Documentation/image-fetching-behavior.md).
import type { DiscoveryTxtResolver } from '../discovery/discover.js';
import type { Label } from '../appc/types.js';
import type { DownloadEvent } from '../http/download.js';
import type { ExchangeOptions } from '../http/exchange.js';
import type { PlatformWanted } from '../oci/platform.js';
import type { ImageRecord } from '../store/catalog.js';
import type { Store } from '../store/store.js';
import type { Keystore } from '../trust/keystore.js';
import type { InsecureOptions } from './insecure-options.js';

/**
 * `never`: the store only. `new`: the store, fetching what is missing (`run`/`prepare` default).
 * `update`: ask the source again, revalidating a stored download with its ETag/Last-Modified
 * (`fetch` default, as in rkt).
 */
export const PULL_POLICIES = ['never', 'new', 'update'] as const;
export type PullPolicy = (typeof PULL_POLICIES)[number];

/** The network collaborators (Context.network): the DNS resolver and every exchange's options. */
export interface FetchNetwork {
  resolver: DiscoveryTxtResolver;
  http: ExchangeOptions;
}

/** Where download progress goes (src/output/progress.ts ProgressReporter). */
export interface FetchProgress {
  task(label: string): { update(event: DownloadEvent): void; fail(message: string): void };
  /** An informational line next to the bars (nothing under --json and --quiet). */
  log(line: string): void;
  /** The last frame of the bars. */
  finish(): void;
}

export interface FetchContext {
  store: Store;
  /** The keystore, loaded on first use: openpgp costs ~80 ms of start-up that `run` of a stored image never needs. */
  keystore: () => Promise<Keystore>;
  insecure: InsecureOptions;
  onWarning: (message: string) => void;
  /** Resolver, TLS, auth.d: loaded on first use (undici and the resolver are for remote fetches only). */
  network?: () => Promise<FetchNetwork>;
  /** Download progress; none when absent. */
  progress?: FetchProgress;
}

export interface FetchRequest {
  /** The name the image must have (when it was asked for by name). */
  expectedName?: string;
  /** Labels the image must carry (`--label`). */
  labels?: Label[];
  /**
   * `--os/--arch/--variant`: the manifest to take from an OCI index (src/fetch/platform-request.ts
   * also turns them into `os`/`arch` labels for appc references). Undefined: this machine's.
   */
  platform?: PlatformWanted;
  /** Where the detached signature of a local file is; default `<file>.asc`. */
  signaturePath?: string;
  /** Default `update` (tspod fetch); run and prepare pass theirs (default `new`). */
  pullPolicy?: PullPolicy;
  /** `--no-store`: neither look in the store nor revalidate; always download (the result is stored). */
  noStore?: boolean;
  /**
   * A dependency that cannot be fetched is an error (run, prepare: the image could not be
   * rendered). Otherwise (tspod fetch) it is a warning and listed in `missingDependencies`.
   */
  strictDependencies?: boolean;
}

/** How the image was obtained. */
export type FetchOutcome =
  /** read from a file or downloaded, verified and committed (`stored` says whether it was new) */
  | 'fetched'
  /** taken from the store without asking the source (pull policy) */
  | 'in-store'
  /** the source answered 304 Not Modified: the stored copy is current */
  | 'not-modified';

/** One image obtained, without its dependencies. */
export interface ImageFetch {
  record: ImageRecord;
  /** false when the store already had the image. */
  stored: boolean;
  /** Fingerprint of the key that signed the image; null with --insecure-options=image. */
  signer: string | null;
  outcome: FetchOutcome;
}

export interface MissingDependency {
  /** The image whose manifest lists it. */
  dependent: string;
  imageName: string;
  labels: Label[];
  imageID: string | null;
  reason: string;
}

export interface FetchResult extends ImageFetch {
  /** Dependencies (of any depth) that were not in the store and were fetched, in order. */
  dependencies: ImageFetch[];
  /** Dependencies that could not be fetched (tspod fetch only: run and prepare fail instead). */
  missingDependencies: MissingDependency[];
}
