// An EMA's state as safetensors tensors plus string metadata, and back. The file is untrusted:
// decodeCheckpoint validates every field, name, size and checksum before returning anything.
//
// Tensors: `shadow.<key>` for each parameter (storage dtype), then `collected.<key>` for each
// parameter when a backup exists (float32 or float64). `<key>` is given by parameterKeys().
// Metadata (all strings):
//   format "model-ema", format_version "1", decay (String(number), exact), num_updates ("null" or an
//   integer), dtype, collected_dtype ("none" | "float32" | "float64"), names (JSON array of string|null),
//   metadata_sha256: sha256 hex of JSON.stringify([format, format_version, decay, num_updates, dtype,
//     collected_dtype, names]) (the exact metadata strings), so no edited scalar goes unnoticed,
//   checksums: JSON object {tensorName: sha256 hex of that tensor's data bytes}, computed while each
//     tensor is being written; the header is written with zeros there first and rewritten at the end.
import { createHash } from 'node:crypto';
import {
  DTYPE_BYTES,
  describeJsonValue,
  parseSafetensors,
  readSafetensorsFile,
  serializeSafetensors,
  writeSafetensorsFile,
  type DeferredMetadata,
  type ParsedSafetensors,
  type SafetensorsDType,
  type SafetensorsHeader,
  type TensorInfo,
  type TensorSource,
} from './safetensors';
import { namingPathOnError } from './checkpoint_file';

export type StorageDType = 'float32' | 'float64' | 'float16' | 'bfloat16';
export type CollectedDType = 'float32' | 'float64';

export const CHECKPOINT_FORMAT = 'model-ema';
export const CHECKPOINT_FORMAT_VERSION = '1';

const SAFETENSORS_DTYPE: Readonly<Record<StorageDType, SafetensorsDType>> = {
  float32: 'F32',
  float64: 'F64',
  float16: 'F16',
  bfloat16: 'BF16',
};

/** What a checkpoint is written from. Tensor data is read lazily, one parameter at a time. */
export interface CheckpointSource {
  decay: number;
  numUpdates: number | null;
  /** Storage dtype of the shadows. */
  dtype: StorageDType;
  /** One per parameter; null for an unnamed parameter. */
  names: readonly (string | null)[];
  /** Element count of each parameter. */
  sizes: readonly number[];
  /** Optional shape per parameter (product must equal its size); 1-D `[size]` where absent or null. */
  shapes?: readonly (readonly number[] | null)[];
  /** Raw little-endian shadow data of parameter `index` in `dtype`; called once per index, in order. */
  shadowBytes(index: number): ArrayBufferView;
  /** The store() backup, or null when nothing is stored. */
  collected: { dtype: CollectedDType; bytes(index: number): ArrayBufferView } | null;
}

/** What the loading EMA has: its parameters' names and element counts. */
export interface ExpectedParameters {
  names: readonly (string | null)[];
  sizes: readonly number[];
  /**
   * Default true: the file's parameter names must equal `names`. False: parameters are matched by
   * position (counts and sizes still checked), for names that differ between processes, such as
   * tfjs's auto-generated layer names.
   */
  matchNames?: boolean;
}

/** A validated checkpoint. Byte arrays are views into the parsed data, one per parameter, in the file's dtype. */
export interface DecodedCheckpoint {
  decay: number;
  numUpdates: number | null;
  dtype: StorageDType;
  shadow: Uint8Array[];
  collected: Uint8Array[] | null;
  collectedDType: CollectedDType | null;
}

/**
 * The per-parameter part of the tensor names: the parameter's name, or its decimal index when it
 * has none. When that key is shared by several parameters (duplicate names, or a name equal to
 * another parameter's index), each of those gets `<key>#<index>`, with more `#` appended while that
 * is taken by any other key. The result is unique and depends only on `names`, so the mapping is
 * inverted by recomputing it from the names list (stored in the metadata, and known to the EMA).
 */
export function parameterKeys(names: readonly (string | null)[]): string[] {
  const preferred = names.map((name, index) => name ?? String(index));
  const uses = new Map<string, number>();
  for (const key of preferred) uses.set(key, (uses.get(key) ?? 0) + 1);
  const taken = new Set(preferred);
  return preferred.map((key, index) => {
    if (uses.get(key) === 1) return key;
    let unique = `${key}#${index}`;
    while (taken.has(unique)) unique += '#';
    taken.add(unique);
    return unique;
  });
}

/**
 * The tensors to write (read lazily, checksummed as each is written) and their metadata (checksums
 * filled in once every tensor was written). Pass both to writeSafetensorsFile or serializeSafetensors.
 */
export function encodeCheckpoint(source: CheckpointSource): { tensors: TensorSource[]; metadata: DeferredMetadata } {
  const { decay, numUpdates, dtype, names, sizes, shapes, collected } = source;
  const cannot = (what: string): never => {
    throw new Error(`Cannot write model-ema checkpoint: ${what}`);
  };
  if (typeof decay !== 'number' || !(decay >= 0 && decay <= 1)) cannot(`decay must be a number in [0, 1], received ${describeJsonValue(decay)}`);
  if (numUpdates !== null && !(Number.isSafeInteger(numUpdates) && numUpdates >= 0)) {
    cannot(`numUpdates must be null or a non-negative integer, received ${describeJsonValue(numUpdates)}`);
  }
  if (!Object.hasOwn(SAFETENSORS_DTYPE, dtype)) cannot(`unknown dtype ${describeJsonValue(dtype)}`);
  if (!Array.isArray(names) || !names.every((n) => n === null || typeof n === 'string')) cannot('names must be an array of strings or null');
  if (!Array.isArray(sizes) || sizes.length !== names.length) cannot(`${names.length} names but ${describeJsonValue(sizes)} sizes`);
  if (shapes !== undefined && (!Array.isArray(shapes) || shapes.length !== names.length)) cannot(`${names.length} names but shapes ${describeJsonValue(shapes)}`);
  if (collected !== null && collected.dtype !== 'float32' && collected.dtype !== 'float64') {
    cannot(`collected dtype must be float32 or float64, received ${describeJsonValue(collected.dtype)}`);
  }
  const shapeOf = (index: number): number[] => {
    const size = sizes[index];
    if (!Number.isSafeInteger(size) || size < 0) cannot(`size of parameter ${index} is ${describeJsonValue(size)}`);
    const shape = shapes?.[index];
    if (shape === undefined || shape === null) return [size];
    if (!Array.isArray(shape) || shape.reduce((n, d) => n * d, 1) !== size) {
      cannot(`shape ${describeJsonValue(shape)} of parameter ${index} does not hold its ${size} elements`);
    }
    return [...shape];
  };

  const digests = new Map<string, string>();
  const tensor = (name: string, type: SafetensorsDType, shape: number[], read: () => ArrayBufferView): TensorSource => ({
    name,
    dtype: type,
    shape,
    bytes: read,
    written(bytes) {
      digests.set(name, sha256(bytes));
    },
  });
  const keys = parameterKeys(names);
  const tensors = keys.map((key, i) => tensor(`shadow.${key}`, SAFETENSORS_DTYPE[dtype], shapeOf(i), () => source.shadowBytes(i)));
  if (collected !== null) {
    const type = SAFETENSORS_DTYPE[collected.dtype];
    keys.forEach((key, i) => tensors.push(tensor(`collected.${key}`, type, shapeOf(i), () => collected.bytes(i))));
  }

  const scalars = {
    format: CHECKPOINT_FORMAT,
    format_version: CHECKPOINT_FORMAT_VERSION,
    decay: String(decay), // shortest decimal that parses back to the same double
    num_updates: numUpdates === null ? 'null' : String(numUpdates),
    dtype,
    collected_dtype: collected === null ? 'none' : collected.dtype,
    names: JSON.stringify(names),
  };
  const fixed = { ...scalars, metadata_sha256: metadataDigest(scalars) };
  const checksums = (digestOf: (name: string) => string): string =>
    `{${tensors.map((t) => `${JSON.stringify(t.name)}:"${digestOf(t.name)}"`).join(',')}}`;
  return {
    tensors,
    metadata: {
      // Same length as the final value, so the header can be rewritten in place after streaming.
      placeholder: { ...fixed, checksums: checksums(() => '0'.repeat(64)) },
      final: () => ({
        ...fixed,
        checksums: checksums((name) => digests.get(name) ?? cannot(`tensor ${name} was never read`)),
      }),
    },
  };
}

/** What the header of a valid checkpoint says: scalars, and per group the tensor names in parameter order. */
interface CheckpointHeader {
  decay: number;
  numUpdates: number | null;
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
    throw new Error('model-ema checkpoint: expected.names and expected.sizes must be arrays of the same length');
  }
  const metadata = header.metadata;
  const field = (key: string): string => {
    const value = Object.hasOwn(metadata, key) ? metadata[key] : undefined;
    if (typeof value !== 'string') fail(`the metadata has no ${key}`);
    return value;
  };
  const format = field('format');
  if (format !== CHECKPOINT_FORMAT) fail(`metadata format is ${describeJsonValue(format)}, expected "${CHECKPOINT_FORMAT}" (not a model-ema checkpoint)`);
  const version = field('format_version');
  if (version !== CHECKPOINT_FORMAT_VERSION) {
    fail(`metadata format_version is ${describeJsonValue(version)}; this version of model-ema reads "${CHECKPOINT_FORMAT_VERSION}"`);
  }
  const decay = parseDecay(field('decay'));
  const numUpdates = parseNumUpdates(field('num_updates'));
  const dtype = field('dtype');
  if (!Object.hasOwn(SAFETENSORS_DTYPE, dtype)) fail(`metadata dtype is ${describeJsonValue(dtype)}, expected float32, float64, float16 or bfloat16`);
  const collectedField = field('collected_dtype');
  if (collectedField !== 'none' && collectedField !== 'float32' && collectedField !== 'float64') {
    fail(`metadata collected_dtype is ${describeJsonValue(collectedField)}, expected none, float32 or float64`);
  }
  const collectedDType = collectedField === 'none' ? null : collectedField;
  const fileNames = checkNames(field('names'), expected.names, expected.matchNames !== false);
  const scalars = ['format', 'format_version', 'decay', 'num_updates', 'dtype', 'collected_dtype', 'names'];
  if (field('metadata_sha256') !== metadataDigest(Object.fromEntries(scalars.map((k) => [k, field(k)])))) {
    fail('metadata_sha256 does not match the metadata (the metadata was modified or corrupted)');
  }

  const byName = new Map<string, TensorInfo>();
  for (const t of header.tensors) {
    if (byName.has(t.name)) fail(`tensor ${describeJsonValue(t.name)} appears twice`);
    byName.set(t.name, t);
  }
  const keys = parameterKeys(fileNames);
  const shadowNames = keys.map((k) => `shadow.${k}`);
  const collectedNames = collectedDType && keys.map((k) => `collected.${k}`);
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
    });
  checkGroup(shadowNames, SAFETENSORS_DTYPE[dtype as StorageDType], `dtype ${dtype}`);
  if (collectedNames) checkGroup(collectedNames, SAFETENSORS_DTYPE[collectedDType!], `collected_dtype ${collectedDType}`);
  const digests = parseChecksums(field('checksums'), wanted);
  return { decay, numUpdates, dtype: dtype as StorageDType, collectedDType, shadowNames, collectedNames, digests };
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
      if (bytes.length !== shape.reduce((n, d) => n * d, DTYPE_BYTES[dtype])) fail(`tensor ${describeJsonValue(name)} has ${bytes.length} bytes, which does not match its shape`);
      if (sha256(bytes) !== header.digests.get(name)) fail(`checksum of tensor ${describeJsonValue(name)} does not match its data (corrupted, or swapped with another tensor)`);
      return bytes;
    });
  return {
    decay: header.decay,
    numUpdates: header.numUpdates,
    dtype: header.dtype,
    shadow: bytesOf(header.shadowNames),
    collected: header.collectedNames && bytesOf(header.collectedNames),
    collectedDType: header.collectedDType,
  };
}

/** Parses, validates and decodes an in-memory checkpoint. */
export function deserializeCheckpoint(bytes: Uint8Array, expected: ExpectedParameters): DecodedCheckpoint {
  return decodeCheckpoint(parseSafetensors(bytes), expected);
}

/** Serializes a checkpoint into one buffer. */
export function serializeCheckpoint(source: CheckpointSource): Uint8Array {
  const { tensors, metadata } = encodeCheckpoint(source);
  return serializeSafetensors(tensors, metadata);
}

/** Writes a checkpoint atomically, streaming one tensor at a time. */
export async function saveCheckpoint(path: string, source: CheckpointSource): Promise<void> {
  const { tensors, metadata } = encodeCheckpoint(source);
  await writeSafetensorsFile(path, tensors, metadata);
}

/** Reads, validates and decodes a checkpoint file. */
export async function loadCheckpoint(path: string, expected: ExpectedParameters): Promise<DecodedCheckpoint> {
  // The header is checked before any tensor data is read: a mismatched file fails fast, however large.
  return namingPathOnError(path, async () => decodeCheckpoint(await readSafetensorsFile(path, (header) => void checkCheckpointHeader(header, expected)), expected));
}

// ---------------------------------------------------------------------------------------------

function fail(what: string): never {
  throw new Error(`Invalid model-ema checkpoint: ${what}`);
}

function sha256(view: ArrayBufferView): string {
  return createHash('sha256').update(new Uint8Array(view.buffer, view.byteOffset, view.byteLength)).digest('hex');
}

function metadataDigest(m: Record<string, string>): string {
  const text = JSON.stringify([m.format, m.format_version, m.decay, m.num_updates, m.dtype, m.collected_dtype, m.names]);
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

// Plain decimal or exponent notation only: Number() would also take '', ' 1', '0x1', 'Infinity'.
const DECIMAL = /^(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?$/;

function parseDecay(text: string): number {
  const value = DECIMAL.test(text) ? Number(text) : NaN;
  if (!(value >= 0 && value <= 1)) fail(`metadata decay is ${describeJsonValue(text)}, expected a decimal number in [0, 1]`);
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
