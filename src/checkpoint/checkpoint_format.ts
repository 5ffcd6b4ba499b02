// The model-ema checkpoint format, on top of the safetensors container: tensor names, metadata
// keys, and the digests that protect them. checkpoint_encode.ts writes it, checkpoint_decode.ts
// validates it.
//
// Tensors: `shadow.<key>` for each parameter (storage dtype), then `collected.<key>` for each
// parameter when a store() backup exists (float32 or float64). `<key>` is given by parameterKeys().
// Metadata (all strings), in METADATA_KEYS order:
//   format "model-ema", format_version "2", decay (String(number), exact), num_updates ("null" or an
//   integer), dtype, collected_dtype ("none" | "float32" | "float64"), names (JSON array of string|null),
//   schedule (JSON: the decay schedule, defaults applied), step, samples, seconds (String(number)),
//   skipped_updates, skipped_elements (integers: the non-finite statistics),
//   metadata_sha256: sha256 hex of JSON.stringify([...the values of DIGESTED_METADATA_KEYS]) (the exact
//     metadata strings), so no edited scalar goes unnoticed,
//   checksums: JSON object {tensorName: sha256 hex of that tensor's data bytes}, computed while each
//     tensor is being written; the header is written with zeros there first and rewritten at the end.
import { createHash } from 'node:crypto';
import type { StorageDType } from '../dtypes';

export type { StorageDType };
/** The dtype of a store() backup: the parameters' precision. */
export type CollectedDType = 'float32' | 'float64';

export const CHECKPOINT_FORMAT = 'model-ema';
export const CHECKPOINT_FORMAT_VERSION = '3';
/**
 * Version 1 (before schedules) has no schedule and counter keys, version 2 no non-finite
 * statistics (they read as 0); both still load.
 */
export const READABLE_FORMAT_VERSIONS = ['1', '2', '3'] as const;

/** The metadata keys that metadata_sha256 covers, in the order they are written and digested. */
export const DIGESTED_METADATA_KEYS = [
  'format', 'format_version', 'decay', 'num_updates', 'dtype', 'collected_dtype', 'names', 'schedule', 'step', 'samples', 'seconds',
  'skipped_updates', 'skipped_elements',
] as const;
/** Every metadata key of a checkpoint, in the order they are written. */
export const METADATA_KEYS = [...DIGESTED_METADATA_KEYS, 'metadata_sha256', 'checksums'] as const;
export type DigestedMetadataKey = (typeof DIGESTED_METADATA_KEYS)[number];
/** The schedule and counter keys, which version 1 lacks. */
export const SCHEDULE_METADATA_KEYS = ['schedule', 'step', 'samples', 'seconds'] as const;
/** The non-finite statistics keys, which versions 1 and 2 lack. */
export const NON_FINITE_METADATA_KEYS = ['skipped_updates', 'skipped_elements'] as const;

/** The digested keys of a format version. */
export function digestedKeys(version: string): readonly DigestedMetadataKey[] {
  const absent: readonly string[] =
    version === '1' ? [...SCHEDULE_METADATA_KEYS, ...NON_FINITE_METADATA_KEYS] : version === '2' ? NON_FINITE_METADATA_KEYS : [];
  return DIGESTED_METADATA_KEYS.filter((key) => !absent.includes(key));
}

/** Updates skipped and elements left out by the non-finite guard; zeros in a version 1 or 2 file. */
export interface CheckpointNonFiniteStats {
  skippedUpdates: number;
  skippedElements: number;
}

/** The schedule (plain JSON data) and counters a checkpoint holds; null in a version 1 file. */
export interface CheckpointProgress {
  schedule: unknown;
  step: number;
  samples: number;
  seconds: number;
}
export type MetadataKey = (typeof METADATA_KEYS)[number];

/** Prefixes of the two tensor groups: shadows, and the store() backup ("collected" in torch_ema). */
export const SHADOW_PREFIX = 'shadow.';
export const COLLECTED_PREFIX = 'collected.';

/** What a checkpoint is written from. Tensor data is read lazily, one parameter at a time. */
export interface CheckpointSource {
  decay: number;
  numUpdates: number | null;
  progress: CheckpointProgress;
  /** Default: zeros. */
  nonFiniteStats?: CheckpointNonFiniteStats;
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
  /**
   * Optional, preferred by file writers over shadowBytes: copies parameter `index`'s shadow bytes
   * from `byteOffset` on into `out` (whole elements), so that a save streams through one small buffer.
   */
  shadowInto?(index: number, out: Uint8Array, byteOffset: number): void;
  /** The store() backup (`into` as shadowInto), or null when nothing is stored. */
  collected: { dtype: CollectedDType; bytes(index: number): ArrayBufferView; into?(index: number, out: Uint8Array, byteOffset: number): void } | null;
}

/** Where a long save() or load() is: tensor data bytes of `file` written or read so far, of `totalBytes`. */
export interface TransferProgress {
  file: string;
  bytes: number;
  totalBytes: number;
}
/** Called after each tensor written (save) or each group of tensors read (load); a throw aborts the transfer. */
export type ProgressListener = (progress: TransferProgress) => void;

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
  /**
   * Each parameter's real shape where the EMA knows it (else null). A tensor saved with a shape of
   * rank other than 1 must have exactly this shape (a [16, 8] tensor is not an [8, 16] kernel); a
   * 1-D tensor (every file from before shapes were saved) loads whenever its element count fits.
   */
  shapes?: readonly (readonly number[] | null)[];
  /** Reports the reading of the file's tensor data (load()'s onProgress). */
  onProgress?: ProgressListener;
}

/** A validated checkpoint's scalars. */
export interface CheckpointFields {
  decay: number;
  numUpdates: number | null;
  /** Null for a file written before schedules (format version 1). */
  progress: CheckpointProgress | null;
  nonFiniteStats: CheckpointNonFiniteStats;
  dtype: StorageDType;
  collectedDType: CollectedDType | null;
}

/** A validated checkpoint. Byte arrays are one per parameter, in the file's dtype. */
export interface DecodedCheckpoint extends CheckpointFields {
  shadow: Uint8Array[];
  collected: Uint8Array[] | null;
}

/**
 * Where a streamed load puts one group's tensors (the shadows, or the backup) as they arrive: new
 * arenas for load(), byte arrays for loadCheckpoint().
 */
export interface TensorStore {
  /**
   * Copies `bytes` (whole elements, in the file's dtype; a view of a SharedArrayBuffer that stays
   * unchanged until the returned promise settles) to byte `byteOffset` of tensor `index`.
   */
  write(index: number, byteOffset: number, bytes: Uint8Array): void | Promise<void>;
}

/** A validated checkpoint whose tensors were streamed into stores. */
export interface StreamedCheckpoint<S extends TensorStore> extends CheckpointFields {
  shadow: S;
  collected: S | null;
}

/**
 * Makes the stores of a checkpoint whose header passed every check, before any tensor data is read:
 * the shadows in `dtype`, the backup in `collectedDType` (none when null). Stores it made are the
 * caller's to free if the load fails later.
 */
export type StoresFor<S extends TensorStore> = (dtypes: { dtype: StorageDType; collectedDType: CollectedDType | null }) => { shadow: S; collected: S | null };

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

export function sha256(view: ArrayBufferView): string {
  return createHash('sha256').update(new Uint8Array(view.buffer, view.byteOffset, view.byteLength)).digest('hex');
}

export function metadataDigest(m: Readonly<Partial<Record<DigestedMetadataKey, string>>>, version = CHECKPOINT_FORMAT_VERSION): string {
  const text = JSON.stringify(digestedKeys(version).map((key) => m[key]));
  return createHash('sha256').update(text, 'utf8').digest('hex');
}
