// Writing a checkpoint (the format is in checkpoint_format.ts): an EMA's state as safetensors
// tensors, read lazily and checksummed as each is written, plus the metadata strings.
import { createHash } from 'node:crypto';
import { isStorageDType, SAFETENSORS_CODE, type SafetensorsDType } from '../dtypes';
import { codedError } from '../errors';
import {
  CHECKPOINT_FORMAT,
  CHECKPOINT_FORMAT_VERSION,
  COLLECTED_PREFIX,
  METADATA_KEYS,
  metadataDigest,
  parameterKeys,
  SHADOW_PREFIX,
  type CheckpointSource,
  type DigestedMetadataKey,
  type MetadataKey,
} from './checkpoint_format';
import type { DeferredMetadata, TensorSource } from './safetensors_encode';
import { describeJsonValue } from './untrusted';

/**
 * The tensors to write (read lazily, checksummed as each is written) and their metadata (checksums
 * filled in once every tensor was written). Pass both to writeSafetensorsFile or serializeSafetensors.
 */
export function encodeCheckpoint(source: CheckpointSource): { tensors: TensorSource[]; metadata: DeferredMetadata } {
  const { decay, numUpdates, progress, dtype, names, sizes, shapes, collected } = source;
  const nonFiniteStats = source.nonFiniteStats ?? { skippedUpdates: 0, skippedElements: 0 };
  const cannot = (what: string): never => {
    throw codedError('INTERNAL', `Cannot write model-ema checkpoint: ${what}`);
  };
  if (typeof decay !== 'number' || !(decay >= 0 && decay <= 1)) cannot(`decay must be a number in [0, 1], received ${describeJsonValue(decay)}`);
  if (numUpdates !== null && !(Number.isSafeInteger(numUpdates) && numUpdates >= 0)) {
    cannot(`numUpdates must be null or a non-negative integer, received ${describeJsonValue(numUpdates)}`);
  }
  if (typeof progress !== 'object' || progress === null) cannot('progress must be { schedule, step, samples, seconds }');
  for (const key of ['step', 'samples', 'seconds'] as const) {
    if (!(progress[key] >= 0 && progress[key] < Infinity)) cannot(`${key} must be a non-negative finite number, received ${describeJsonValue(progress[key])}`);
  }
  for (const key of ['skippedUpdates', 'skippedElements'] as const) {
    if (!(Number.isSafeInteger(nonFiniteStats?.[key]) && nonFiniteStats[key] >= 0)) cannot(`nonFiniteStats.${key} must be a non-negative integer, received ${describeJsonValue(nonFiniteStats?.[key])}`);
  }
  if (!isStorageDType(dtype)) cannot(`unknown dtype ${describeJsonValue(dtype)}`);
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
  // Each tensor's sha256 is computed piece by piece, as the writer hands its bytes on.
  const tensor = (name: string, type: SafetensorsDType, shape: number[], read: () => ArrayBufferView, readInto?: TensorSource['readInto']): TensorSource => {
    const hash = createHash('sha256');
    return {
      name,
      dtype: type,
      shape,
      bytes: read,
      readInto,
      written: (bytes) => void hash.update(bytes),
      finished: () => void digests.set(name, hash.digest('hex')),
    };
  };
  const keys = parameterKeys(names);
  const shadowInto = source.shadowInto;
  const tensors = keys.map((key, i) =>
    tensor(`${SHADOW_PREFIX}${key}`, SAFETENSORS_CODE[dtype], shapeOf(i), () => source.shadowBytes(i), shadowInto && ((out, offset) => shadowInto(i, out, offset))),
  );
  if (collected !== null) {
    const type = SAFETENSORS_CODE[collected.dtype];
    const into = collected.into;
    keys.forEach((key, i) => tensors.push(tensor(`${COLLECTED_PREFIX}${key}`, type, shapeOf(i), () => collected.bytes(i), into && ((out, offset) => into(i, out, offset)))));
  }

  const values: Record<DigestedMetadataKey, string> = {
    format: CHECKPOINT_FORMAT,
    format_version: CHECKPOINT_FORMAT_VERSION,
    decay: String(decay), // shortest decimal that parses back to the same double
    num_updates: numUpdates === null ? 'null' : String(numUpdates),
    dtype,
    collected_dtype: collected === null ? 'none' : collected.dtype,
    names: JSON.stringify(names),
    schedule: JSON.stringify(progress.schedule),
    step: String(progress.step),
    samples: String(progress.samples),
    seconds: String(progress.seconds),
    skipped_updates: String(nonFiniteStats.skippedUpdates),
    skipped_elements: String(nonFiniteStats.skippedElements),
  };
  const fixed: Omit<Record<MetadataKey, string>, 'checksums'> = { ...values, metadata_sha256: metadataDigest(values) };
  // Every key, in the order of METADATA_KEYS whatever the order above.
  const metadata = (digestOf: (name: string) => string): Record<string, string> => {
    const checksums = `{${tensors.map((t) => `${JSON.stringify(t.name)}:"${digestOf(t.name)}"`).join(',')}}`;
    return Object.fromEntries(METADATA_KEYS.map((key) => [key, key === 'checksums' ? checksums : fixed[key]]));
  };
  return {
    tensors,
    metadata: {
      // Same length as the final value, so the header can be rewritten in place after streaming.
      placeholder: metadata(() => '0'.repeat(64)),
      final: () => metadata((name) => digests.get(name) ?? cannot(`tensor ${name} was never read`)),
    },
  };
}
