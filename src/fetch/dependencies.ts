// Dependencies of a fetched image (spec/aci.md "dependencies"; rkt's fetcher WithDeps): every
// entry of `dependencies[]`, at any depth, is looked up in the store (by imageID, else by
// imageName and labels: Store.resolveDependency, the rule rendering uses) and, when missing,
// discovered by name and fetched like any image, signature first. A dependency that carries an
// imageID must hash to it (spec: "the retrieved dependency MUST hash to the imageID"). A loop is an
// error naming the cycle. The walk also descends into stored dependencies, so a dependency of a
// dependency that is missing is fetched too, before anything is rendered.
import type { Dependency } from '../appc/types.js';
import { ImageFormatError, NotFoundError, TspodError } from '../errors.js';
import type { ImageRecord } from '../store/catalog.js';
import type { FetchContext, ImageFetch, MissingDependency } from './context.js';
import { loadRemote } from './load-remote.js';

export interface DependencyOptions {
  /** A dependency that cannot be fetched is an error (run, prepare); else a warning (fetch). */
  strict: boolean;
  /** Fetch what is missing (false under --pull-policy=never: only loops are checked). */
  fetchMissing: boolean;
}

export interface DependencyReport {
  fetched: ImageFetch[];
  missing: MissingDependency[];
}

function describeDependency(dep: Dependency): string {
  const labels = (dep.labels ?? []).map((l) => `${l.name}=${l.value}`).join(',');
  return `${dep.imageName}${labels === '' ? '' : `,${labels}`}`;
}

/** A loop in the dependency graph: `a -> b -> a`. */
export class DependencyLoopError extends ImageFormatError {}

export async function fetchDependencies(root: ImageRecord, ctx: FetchContext, options: DependencyOptions): Promise<DependencyReport> {
  const { store } = ctx;
  const report: DependencyReport = { fetched: [], missing: [] };
  const done = new Set<string>();

  const fetchMissing = async (dep: Dependency, dependent: string): Promise<ImageRecord | undefined> => {
    const what = describeDependency(dep);
    try {
      // Loaded here: undici and the discovery parser only when something must be fetched.
      const [{ fetchDiscovered }, { parseDiscoveryApp }] = await Promise.all([loadRemote(), import('../discovery/name.js')]);
      const app = parseDiscoveryApp(dep.imageName, { labels: (dep.labels ?? []).map((l) => `${l.name}=${l.value}`) });
      const fetched = await fetchDiscovered(app, what, ctx, { pullPolicy: 'update', noStore: false });
      report.fetched.push(fetched);
      if (dep.imageID !== undefined && fetched.record.id !== dep.imageID) {
        throw new ImageFormatError(
          `image ${dependent}: dependency ${what} must have the id ${dep.imageID}, but discovery gave ${fetched.record.id}`,
          { suggestions: [`fetch the exact image first: tspod fetch <its .aci file or URL>`] },
        );
      }
      return fetched.record;
    } catch (err) {
      if (!(err instanceof TspodError)) throw err;
      const reason = err.message;
      if (options.strict) {
        // "is not in the store" as Store.resolveDependency says it, then why fetching failed.
        throw new NotFoundError(`image ${dependent}: dependency ${what} is not in the store and could not be fetched: ${reason}`, {
          cause: err,
          suggestions: [...err.suggestions, `tspod fetch ${what}`],
        });
      }
      ctx.onWarning(`image ${dependent}: dependency ${what} could not be fetched: ${reason}`);
      report.missing.push({ dependent, imageName: dep.imageName, labels: dep.labels ?? [], imageID: dep.imageID ?? null, reason });
      return undefined;
    }
  };

  const walk = async (record: ImageRecord, chain: ImageRecord[]): Promise<void> => {
    const manifest = store.manifest(record.id);
    for (const dep of manifest.dependencies ?? []) {
      let found: ImageRecord | undefined;
      try {
        found = store.resolveDependency(dep, manifest.name);
      } catch (err) {
        if (!(err instanceof NotFoundError)) throw err;
        if (!options.fetchMissing) continue; // rendering reports it, with the fetch command
        found = await fetchMissing(dep, manifest.name);
      }
      if (found === undefined) continue;
      const at = [...chain, record].findIndex((r) => r.id === found.id);
      if (at >= 0) {
        const cycle = [...chain, record].slice(at).map((r) => r.name);
        throw new DependencyLoopError(`image ${root.name}: dependency loop: ${[...cycle, found.name].join(' -> ')}`, {
          suggestions: ['an image cannot depend on itself, directly or through others; fix the dependencies of these manifests'],
        });
      }
      if (done.has(found.id)) continue;
      await walk(found, [...chain, record]);
      done.add(found.id);
    }
  };
  await walk(root, []);
  return report;
}
