// Public API of the discovery module: app names for discovery, appc meta discovery (pages,
// templates, the prefix walk, pubkeys) with tspod's DNS TXT fallback, signer key discovery (WKD,
// OPENPGPKEY) and the DNS resolver with its `lookup` hook for the HTTP layer. See README.md.

export {
  DEFAULT_VERSION,
  appcOs,
  formatDiscoveryApp,
  parseDiscoveryApp,
  requiredManifestLabels,
  templateVariables,
  type DiscoveryApp,
  type ParseDiscoveryAppOptions,
} from './name.js';
export { matchingTags, parseDiscoveryMeta, type DiscoveryMeta, type MetaKind, type ParsedMeta } from './meta.js';
export { expandAciTemplate, expandTemplate, type AciEndpoint, type EndpointExpansion, type Expansion, type TemplateVariables } from './template.js';
export {
  TXT_DISCOVERY_LABEL,
  TXT_VERSION,
  matchingTxtEntries,
  parseTxtRecords,
  txtDiscoveryName,
  type ParsedTxtRecords,
  type TxtDiscoveryEntry,
} from './txt-record.js';
export { DEFAULT_MAX_PAGE_BYTES, type HttpGet, type HttpGetOptions } from './http-get.js';
export {
  DiscoveryError,
  discoverEndpoints,
  discoverPublicKeys,
  discoveryLevels,
  discoveryUrl,
  type DiscoveredEndpoints,
  type DiscoveredPublicKeys,
  type DiscoveryOptions,
  type DiscoveryTxtResolver,
} from './discover.js';
export {
  SignerKeyDiscoveryError,
  discoverSignerKeys,
  openpgpkeyOwnerNames,
  parseMailbox,
  wkdHash,
  wkdUrls,
  zbase32,
  type DiscoveredSignerKeys,
  type Mailbox,
  type SignerKey,
  type SignerKeyMethod,
  type SignerKeyOptions,
  type SignerKeyResolver,
} from './signer-keys.js';
export {
  DEFAULT_UDP_PAYLOAD_SIZE,
  DnsError,
  DnsNoDataError,
  DnsNotFoundError,
  DnsServerError,
  DnsTimeoutError,
  OPENPGPKEY_TYPE,
  Resolver,
  createLookup,
  type DnsErrorCode,
  type DnsResponse,
  type LookupHook,
  type RecordType,
  type ResolverLookupOptions,
  type ResolverOptions,
} from './dns.js';
export {
  applyResolverEnvironment,
  parseHosts,
  parseNameserverList,
  parseResolvConf,
  searchCandidates,
  type HostsTable,
  type Nameserver,
  type ResolvConf,
} from './resolv-conf.js';
