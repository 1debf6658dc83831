// Public API of the appc module: the vocabulary of App Container manifests (types, names,
// image ids, labels, quantities) and their validation. Pure apart from reading schemas/ once.

export * from './types.js';
export {
  AC_IDENTIFIER_PATTERN,
  AC_NAME_PATTERN,
  IMAGE_ID_PATTERN,
  IMAGE_ID_PREFIX_PATTERN,
  hexOfImageId,
  imageIdFromHex,
  isACIdentifier,
  isACName,
  isImageId,
  isImageIdPrefix,
  sanitizeACName,
  shortImageId,
} from './identifiers.js';
export {
  VALID_OS_ARCH,
  appcArch,
  checkOsArch,
  defaultLabels,
  labelValue,
  labelsMatch,
  parseImageReference,
  parseLabelFlag,
  type ImageReference,
  type OsArchProblem,
} from './labels.js';
export { QUANTITY_PATTERN, isQuantity, parseQuantity } from './quantity.js';
export {
  DOCUMENT_SCHEMAS,
  KNOWN_ISOLATORS,
  normalizeImageManifestKeys,
  normalizePodManifestKeys,
  packageRoot,
  parseImageManifest,
  parsePodManifest,
  schemaCompileCount,
  schemasDir,
  validateDocument,
  validateImageManifest,
  validatePodManifest,
  type DocumentSchemaName,
} from './validate.js';
