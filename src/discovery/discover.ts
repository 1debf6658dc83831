// appc meta discovery (spec/discovery.md "Meta Discovery"): for an image name and labels, GET
// `https://{name}?ac-discovery=1` (then `http://` only when insecure HTTP is allowed), read the
// ac-discovery tags whose prefix is a prefix of the name, expand their templates, and walk up the
// name's path (`a.com/p/s` -> `a.com/p` -> `a.com`) when a page fails or has no usable tag; the
// first level with endpoints wins. When every page yields nothing, tspod's DNS fallback reads the
// `_appc-discovery.<host>` TXT records (txt-record.ts). Keys-only discovery (`tspod trust
// --prefix`) walks the same way for ac-discovery-pubkeys. Every failed step is kept and reported
// in the final error. The HTTP getter (which follows redirects) and the DNS resolver come in
// through the options; nothing here opens a connection itself.
import { NotFoundError } from '../errors.js';
import { DEFAULT_MAX_PAGE_BYTES, failureText, isStepFailure, type HttpGet } from './http-get.js';
import { matchingTags, parseDiscoveryMeta, type MetaKind, type ParsedMeta } from './meta.js';
import { templateVariables, type DiscoveryApp } from './name.js';
import { expandAciTemplate, type AciEndpoint } from './template.js';
import { matchingTxtEntries, parseTxtRecords, txtDiscoveryName, type ParsedTxtRecords } from './txt-record.js';

/** Discovery found nothing usable; `tried` lists every failed step, in order. */
export class DiscoveryError extends NotFoundError {
  readonly tried: string[];
  constructor(what: string, tried: string[], suggestions: string[]) {
    super(`${what}: ${tried.length > 0 ? tried.join('; ') : 'nothing to try'}`, { suggestions });
    this.tried = tried;
  }
}

export interface DiscoveryTxtResolver {
  /** TXT records as lists of strings (Resolver.resolveTxt, or node:dns resolveTxt). */
  resolveTxt(name: string): Promise<string[][]>;
}

export interface DiscoveryOptions {
  /** Fetches a page, following redirects (getBytes in src/http/client.ts). */
  get: HttpGet;
  /** `--insecure-options=http`: also try `http://` and accept redirects to it. */
  allowHttp?: boolean;
  /** The DNS TXT fallback; omit it to do HTTPS meta discovery only. */
  dns?: DiscoveryTxtResolver;
  /** Size cap of one discovery page (default 1 MiB). */
  maxPageBytes?: number;
}

export interface DiscoveredEndpoints {
  name: string;
  /** Image and signature URLs, in document order (or TXT order, see txt-record.ts). */
  endpoints: AciEndpoint[];
  /** ac-discovery-pubkeys URLs found at the same place. */
  publicKeys: string[];
  /** Where they were found: the page URL after redirects, or `dns TXT _appc-discovery.<host>`. */
  source: string;
  /** The steps that failed before, as in DiscoveryError. */
  tried: string[];
  /** Templates at the successful place that were skipped, with the reason. */
  skipped: string[];
}

export interface DiscoveredPublicKeys {
  prefix: string;
  publicKeys: string[];
  source: string;
  tried: string[];
}

interface Page {
  url: string;
  finalUrl: string;
  meta: ParsedMeta;
}

/** `a.com/p/s` -> [`a.com/p/s`, `a.com/p`, `a.com`] (spec/discovery.md: walk up on failure). */
export function discoveryLevels(name: string): string[] {
  const parts = name.split('/');
  return parts.map((_, i) => parts.slice(0, parts.length - i).join('/'));
}

/** The discovery URL of one level: `https://{prefix}?ac-discovery=1`. */
export function discoveryUrl(level: string, scheme: 'https' | 'http' = 'https'): string {
  return `${scheme}://${level}?ac-discovery=1`;
}

/**
 * Fetches one level's page: https, then http when allowed (the reference code's httpsOrHTTP).
 * Failures go to `tried`; undefined when no page came back.
 */
async function fetchPage(level: string, options: DiscoveryOptions, tried: string[]): Promise<Page | undefined> {
  const schemes: ('https' | 'http')[] = options.allowHttp ? ['https', 'http'] : ['https'];
  for (const scheme of schemes) {
    const url = discoveryUrl(level, scheme);
    try {
      const { bytes, finalUrl } = await options.get(url, { allowHttp: options.allowHttp === true, maxBytes: options.maxPageBytes ?? DEFAULT_MAX_PAGE_BYTES });
      return { url, finalUrl, meta: parseDiscoveryMeta(bytes) };
    } catch (err) {
      if (!isStepFailure(err)) throw err;
      tried.push(`tried ${url}: ${failureText(err)}`);
    }
  }
  return undefined;
}

function pageLabel(page: Page): string {
  // The getter reports the WHATWG serialisation (`https://a.com/?ac-discovery=1` for a host-only
  // level): the same URL, not a redirect.
  return page.finalUrl === page.url || page.finalUrl === new URL(page.url).href ? page.url : `${page.url} (redirected to ${page.finalUrl})`;
}

/** Why a page had no usable tag of `kind` for `name`, with what it did have. */
function noTagText(kind: MetaKind, name: string, meta: ParsedMeta): string {
  const others = [...new Set(meta.tags.filter((t) => t.kind === kind).map((t) => t.prefix))];
  let text = `no ${kind} meta tag for ${name}`;
  if (others.length > 0) text += ` (the page has them for ${others.join(', ')})`;
  if (meta.ignored.length > 0) text += `; ignored: ${meta.ignored.join('; ')}`;
  return text;
}

async function readTxt(name: string, dns: DiscoveryTxtResolver, tried: string[]): Promise<{ dnsName: string; parsed: ParsedTxtRecords } | undefined> {
  const dnsName = txtDiscoveryName(name);
  try {
    return { dnsName, parsed: parseTxtRecords(await dns.resolveTxt(dnsName)) };
  } catch (err) {
    if (!isStepFailure(err)) throw err;
    tried.push(`tried dns TXT ${dnsName}: ${failureText(err)}`);
    return undefined;
  }
}

function noTxtText(field: 'aci' | 'pubkeys', name: string, parsed: ParsedTxtRecords): string {
  const others = [...new Set(parsed.entries.filter((e) => e[field] !== undefined).map((e) => e.prefix))];
  let text = `no ${TXT_FIELD_NAME[field]} record for ${name}`;
  if (others.length > 0) text += ` (there are records for ${others.join(', ')})`;
  if (parsed.ignored.length > 0) text += `; ignored: ${parsed.ignored.join('; ')}`;
  return text;
}

const TXT_FIELD_NAME = { aci: 'v=appc1 aci=', pubkeys: 'v=appc1 pubkeys=' } as const;

function endpointSuggestions(app: DiscoveryApp, options: DiscoveryOptions): string[] {
  const out = [`check the image name "${app.name}" and its labels (${app.labels.map((l) => `${l.name}=${l.value}`).join(', ')})`];
  if (!options.allowHttp) out.push('if the server only speaks plain http: --insecure-options=http (unsafe)');
  out.push('or fetch the image by URL: tspod fetch https://HOST/PATH/IMAGE.aci');
  return out;
}

/**
 * The ACI endpoints of an app (spec/discovery.md). Throws DiscoveryError naming every step tried
 * when neither the pages nor the DNS fallback give one.
 */
export async function discoverEndpoints(app: DiscoveryApp, options: DiscoveryOptions): Promise<DiscoveredEndpoints> {
  const vars = templateVariables(app);
  const tried: string[] = [];
  for (const level of discoveryLevels(app.name)) {
    const page = await fetchPage(level, options, tried);
    if (page === undefined) continue;
    const tags = matchingTags(page.meta, 'ac-discovery', app.name);
    if (tags.length === 0) {
      tried.push(`tried ${pageLabel(page)}: ${noTagText('ac-discovery', app.name, page.meta)}`);
      continue;
    }
    const endpoints: AciEndpoint[] = [];
    const skipped: string[] = [];
    for (const tag of tags) {
      const e = expandAciTemplate(tag.url, vars);
      if (e.ok) endpoints.push({ aci: e.aci, asc: e.asc });
      else skipped.push(e.reason);
    }
    if (endpoints.length === 0) {
      tried.push(`tried ${pageLabel(page)}: every ac-discovery template for ${app.name} was skipped (${skipped.join('; ')})`);
      continue;
    }
    // spec/discovery.md: pubkeys are read from the same tags' page; the walk stops here.
    const publicKeys = matchingTags(page.meta, 'ac-discovery-pubkeys', app.name).map((t) => t.url);
    return { name: app.name, endpoints, publicKeys, source: page.finalUrl, tried, skipped };
  }
  if (options.dns) {
    const txt = await readTxt(app.name, options.dns, tried);
    if (txt) {
      const entries = matchingTxtEntries(txt.parsed, app.name);
      const withAci = entries.filter((e) => e.aci !== undefined);
      const endpoints: AciEndpoint[] = [];
      const skipped: string[] = [];
      for (const entry of withAci) {
        const e = expandAciTemplate(entry.aci!, vars);
        if (e.ok) endpoints.push({ aci: e.aci, asc: e.asc });
        else skipped.push(e.reason);
      }
      if (endpoints.length > 0) {
        const publicKeys = entries.filter((e) => e.pubkeys !== undefined).map((e) => e.pubkeys!);
        return { name: app.name, endpoints, publicKeys, source: `dns TXT ${txt.dnsName}`, tried, skipped };
      }
      tried.push(
        withAci.length === 0
          ? `tried dns TXT ${txt.dnsName}: ${noTxtText('aci', app.name, txt.parsed)}`
          : `tried dns TXT ${txt.dnsName}: every aci= template for ${app.name} was skipped (${skipped.join('; ')})`,
      );
    }
  }
  throw new DiscoveryError(`discover ${app.name}`, tried, endpointSuggestions(app, options));
}

/**
 * ac-discovery-pubkeys URLs for a prefix (`tspod trust --prefix example.com/app`): the same walk,
 * stopping at the first level that has them; then the TXT fallback's `pubkeys=`.
 */
export async function discoverPublicKeys(prefix: string, options: DiscoveryOptions): Promise<DiscoveredPublicKeys> {
  const tried: string[] = [];
  for (const level of discoveryLevels(prefix)) {
    const page = await fetchPage(level, options, tried);
    if (page === undefined) continue;
    const keys = matchingTags(page.meta, 'ac-discovery-pubkeys', prefix).map((t) => t.url);
    if (keys.length > 0) return { prefix, publicKeys: keys, source: page.finalUrl, tried };
    tried.push(`tried ${pageLabel(page)}: ${noTagText('ac-discovery-pubkeys', prefix, page.meta)}`);
  }
  if (options.dns) {
    const txt = await readTxt(prefix, options.dns, tried);
    if (txt) {
      const keys = matchingTxtEntries(txt.parsed, prefix).flatMap((e) => (e.pubkeys === undefined ? [] : [e.pubkeys]));
      if (keys.length > 0) return { prefix, publicKeys: keys, source: `dns TXT ${txt.dnsName}`, tried };
      tried.push(`tried dns TXT ${txt.dnsName}: ${noTxtText('pubkeys', prefix, txt.parsed)}`);
    }
  }
  const suggestions = [`give the key yourself: tspod trust --prefix ${prefix} ./key.asc (or an https:// URL)`];
  if (!options.allowHttp) suggestions.push('if the server only speaks plain http: --insecure-options=http (unsafe)');
  throw new DiscoveryError(`discover public keys for prefix ${prefix}`, tried, suggestions);
}
