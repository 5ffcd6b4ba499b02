// Reading a checkpoint (the format is in checkpoint_format.ts). The file is untrusted: every field,
// name, size and checksum is validated before anything is returned, and the header alone is checked
// before any tensor data is read.
import { isStorageDType, listOfDTypes, SAFETENSORS_BYTES, SAFETENSORS_CODE, type SafetensorsDType, type StorageDType } from '../dtypes';
import {
  CHECKPOINT_FORMAT,
  COLLECTED_PREFIX,
  digestedKeys,
  metadataDigest,
  READABLE_FORMAT_VERSIONS,
  parameterKeys,
  sha256,
  SHADOW_PREFIX,
  type CheckpointNonFiniteStats,
  type CheckpointProgress,
  type CollectedDType,
  type DecodedCheckpoint,
  type DigestedMetadataKey,
  type ExpectedParameters,
  type MetadataKey,
} from './checkpoint_format';
import { codedError } from '../errors';
import type { ParsedSafetensors } from './safetensors';
import type { SafetensorsHeader, TensorInfo } from './safetensors_decode';
import { describeJsonValue } from './untrusted';

/** What the header of a valid checkpoint says: scalars, and per group the tensor names in parameter order. */
export interface CheckpointHeader {
  decay: number;
  numUpdates: number | null;
  progress: CheckpointProgress | null;
  nonFiniteStats: CheckpointNonFiniteStats;
  dtype: StorageDType;
  collectedDType: CollectedDType | null;
  shadowNames: string[];
  collectedNames: string[] | null;
  digests: Map<string, string>;
}

/**
 * Everything decodeCheckpoint checks that needs no tensor data, so a file that cannot load is refused
 * before its data is read: metadata fields, names against `expected`, the exact tensor set, each
 * tensor's dtype and element count, and that a well-formed checksum exists for every tensor.
 */
export function checkCheckpointHeader(header: SafetensorsHeader, expected: ExpectedParameters): CheckpointHeader {
  if (typeof expected !== 'object' || expected === null || !Array.isArray(expected.names) || !Array.isArray(expected.sizes) || expected.names.length !== expected.sizes.length) {
    throw codedError('INTERNAL', 'model-ema checkpoint: expected.names and expected.sizes must be arrays of the same length');
  }
  const metadata = header.metadata;
  const field = (key: MetadataKey): string => {
    const value = Object.hasOwn(metadata, key) ? metadata[key] : undefined;
    if (typeof value !== 'string') fail(`the metadata has no ${key}`);
    return value;
  };
  const format = field('format');
  if (format !== CHECKPOINT_FORMAT) fail(`metadata format is ${describeJsonValue(format)}, expected "${CHECKPOINT_FORMAT}" (not a model-ema checkpoint)`);
  const version = field('format_version');
  if (!(READABLE_FORMAT_VERSIONS as readonly string[]).includes(version)) {
    fail(`metadata format_version is ${describeJsonValue(version)}; this version of model-ema reads ${READABLE_FORMAT_VERSIONS.map((v) => `"${v}"`).join(' and ')}`);
  }
  const decay = parseDecay(field('decay'));
  const numUpdates = parseNumUpdates(field('num_updates'));
  const dtype = field('dtype');
  if (!isStorageDType(dtype)) fail(`metadata dtype is ${describeJsonValue(dtype)}, expected ${listOfDTypes('name')}`);
  const collectedField = field('collected_dtype');
  if (collectedField !== 'none' && collectedField !== 'float32' && collectedField !== 'float64') {
    fail(`metadata collected_dtype is ${describeJsonValue(collectedField)}, expected none, float32 or float64`);
  }
  const collectedDType = collectedField === 'none' ? null : collectedField;
  const fileNames = checkNames(field('names'), expected.names, expected.matchNames !== false);
  const progress: CheckpointProgress | null =
    version === '1'
      ? null
      : { schedule: parseJson(field('schedule'), 'schedule'), step: parseAmount(field('step'), 'step'), samples: parseAmount(field('samples'), 'samples'), seconds: parseAmount(field('seconds'), 'seconds') };
  const nonFiniteStats: CheckpointNonFiniteStats =
    version === '3'
      ? { skippedUpdates: parseCount(field('skipped_updates'), 'skipped_updates'), skippedElements: parseCount(field('skipped_elements'), 'skipped_elements') }
      : { skippedUpdates: 0, skippedElements: 0 };
  const digested = Object.fromEntries(digestedKeys(version).map((key) => [key, field(key)])) as Partial<Record<DigestedMetadataKey, string>>;
  if (field('metadata_sha256') !== metadataDigest(digested, version)) {
    fail('metadata_sha256 does not match the metadata (the metadata was modified or corrupted)');
  }

  const byName = new Map<string, TensorInfo>();
  for (const t of header.tensors) {
    if (byName.has(t.name)) fail(`tensor ${describeJsonValue(t.name)} appears twice`);
    byName.set(t.name, t);
  }
  const keys = parameterKeys(fileNames);
  const shadowNames = keys.map((k) => `${SHADOW_PREFIX}${k}`);
  const collectedNames = collectedDType && keys.map((k) => `${COLLECTED_PREFIX}${k}`);
  const wanted = new Set([...shadowNames, ...(collectedNames ?? [])]);
  for (const name of wanted) if (!byName.has(name)) fail(`tensor ${describeJsonValue(name)} is missing`);
  for (const name of byName.keys()) {
    if (!wanted.has(name)) fail(`unexpected tensor ${describeJsonValue(name)} (collected_dtype is ${collectedField}; this EMA has ${keys.length} parameters)`);
  }
  const checkGroup = (names: string[], type: SafetensorsDType, dtypeField: string): void =>
    names.forEach((name, index) => {
      const { dtype: found, shape } = byName.get(name)!;
      if (found !== type) fail(`tensor ${describeJsonValue(name)} has dtype ${describeJsonValue(found)} but metadata ${dtypeField} requires ${type}`);
      const numel = shape.reduce((n, d) => n * d, 1);
      if (numel !== expected.sizes[index]) {
        const label = expected.names[index] === null ? 'unnamed' : describeJsonValue(expected.names[index]);
        fail(`tensor ${describeJsonValue(name)} has ${numel} elements but parameter ${index} (${label}) of this EMA has ${expected.sizes[index]}`);
      }
      const known = expected.shapes?.[index];
      if (shape.length !== 1 && known && (known.length !== shape.length || known.some((d, k) => d !== shape[k]))) {
        const label = expected.names[index] === null ? 'unnamed' : describeJsonValue(expected.names[index]);
        fail(`tensor ${describeJsonValue(name)} has shape [${shape.join(', ')}] but parameter ${index} (${label}) of this EMA has shape [${known.join(', ')}] (a different layout, e.g. transposed: reshape or transpose it first)`);
      }
    });
  checkGroup(shadowNames, SAFETENSORS_CODE[dtype], `dtype ${dtype}`);
  if (collectedNames) checkGroup(collectedNames, SAFETENSORS_CODE[collectedDType!], `collected_dtype ${collectedDType}`);
  const digests = parseChecksums(field('checksums'), wanted);
  return { decay, numUpdates, progress, nonFiniteStats, dtype, collectedDType, shadowNames, collectedNames, digests };
}

/**
 * Validates a parsed file against the loading EMA and returns its state. Throws an Error naming the
 * field, tensor or parameter at fault for anything unexpected: unknown format or version, malformed
 * scalars, names or tensor set different from `expected`, wrong dtypes or sizes, bad checksums.
 */
export function decodeCheckpoint(parsed: ParsedSafetensors, expected: ExpectedParameters): DecodedCheckpoint {
  const header = checkCheckpointHeader(parsed, expected);
  const data = new Map(parsed.tensors.map((t) => [t.name, t]));
  const bytesOf = (names: string[]): Uint8Array[] =>
    names.map((name) => {
      const { dtype, shape, bytes } = data.get(name)!;
      // parseSafetensors guarantees this; a hand-built ParsedSafetensors may not.
      if (bytes.length !== shape.reduce((n, d) => n * d, SAFETENSORS_BYTES[dtype])) fail(`tensor ${describeJsonValue(name)} has ${bytes.length} bytes, which does not match its shape`);
      if (sha256(bytes) !== header.digests.get(name)) checksumMismatch(name);
      return bytes;
    });
  return {
    decay: header.decay,
    numUpdates: header.numUpdates,
    progress: header.progress,
    nonFiniteStats: header.nonFiniteStats,
    dtype: header.dtype,
    shadow: bytesOf(header.shadowNames),
    collected: header.collectedNames && bytesOf(header.collectedNames),
    collectedDType: header.collectedDType,
  };
}

/** The error of a tensor whose data does not have its checksum. */
export function checksumMismatch(name: string): never {
  fail(`checksum of tensor ${describeJsonValue(name)} does not match its data (corrupted, or swapped with another tensor)`);
}

function fail(what: string): never {
  throw codedError('INVALID_CHECKPOINT', `Invalid model-ema checkpoint: ${what}`);
}

// Plain decimal or exponent notation only: Number() would also take '', ' 1', '0x1', 'Infinity'.
const DECIMAL = /^(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?$/;

function parseDecay(text: string): number {
  const value = DECIMAL.test(text) ? Number(text) : NaN;
  if (!(value >= 0 && value <= 1)) fail(`metadata decay is ${describeJsonValue(text)}, expected a decimal number in [0, 1]`);
  return value;
}

function parseAmount(text: string, field: string): number {
  const value = DECIMAL.test(text) ? Number(text) : NaN;
  if (!(value >= 0 && value < Infinity)) fail(`metadata ${field} is ${describeJsonValue(text)}, expected a non-negative decimal number`);
  return value;
}

function parseCount(text: string, field: string): number {
  const value = /^(?:0|[1-9][0-9]*)$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(value)) fail(`metadata ${field} is ${describeJsonValue(text)}, expected a non-negative integer`);
  return value;
}

function parseNumUpdates(text: string): number | null {
  if (text === 'null') return null;
  const value = /^(?:0|[1-9][0-9]*)$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(value)) fail(`metadata num_updates is ${describeJsonValue(text)}, expected "null" or a non-negative integer`);
  return value;
}

function parseJson(text: string, field: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return fail(`metadata ${field} is not valid JSON: ${describeJsonValue(text)}`);
  }
}

function checkNames(text: string, expected: readonly (string | null)[], matchNames: boolean): (string | null)[] {
  const names = parseJson(text, 'names');
  if (!Array.isArray(names) || !names.every((n) => n === null || typeof n === 'string')) {
    fail(`metadata names must be a JSON array of strings and nulls, found ${describeJsonValue(text)}`);
  }
  if (names.length !== expected.length) fail(`the checkpoint has ${names.length} parameters but this EMA has ${expected.length}`);
  if (matchNames) {
    names.forEach((name: string | null, i) => {
      if (name !== expected[i]) {
        fail(`parameter ${i} is named ${describeJsonValue(name)} in the checkpoint but ${describeJsonValue(expected[i])} in this EMA (pass { matchNames: false } to match by position)`);
      }
    });
  }
  return names as (string | null)[];
}

function parseChecksums(text: string, wanted: ReadonlySet<string>): Map<string, string> {
  const value = parseJson(text, 'checksums');
  if (typeof value !== 'object' || value === null || Array.isArray(value)) fail(`metadata checksums must be a JSON object, found ${describeJsonValue(text)}`);
  const digests = new Map(Object.entries(value));
  for (const [name, digest] of digests) {
    if (!wanted.has(name)) fail(`metadata checksums has an entry for ${describeJsonValue(name)}, which is not a tensor of this checkpoint`);
    if (typeof digest !== 'string' || !/^[0-9a-f]{64}$/.test(digest)) fail(`metadata checksums[${describeJsonValue(name)}] is ${describeJsonValue(digest)}, expected 64 lowercase hex digits`);
  }
  for (const name of wanted) if (!digests.has(name)) fail(`metadata checksums has no entry for tensor ${describeJsonValue(name)}`);
  return digests as Map<string, string>;
}
