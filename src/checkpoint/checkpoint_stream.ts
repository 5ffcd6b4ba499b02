// Loading a checkpoint file as a stream (the format is in checkpoint_format.ts, the checks in
// checkpoint_decode.ts): the header is checked before any tensor data is read, then each tensor's
// bytes go straight to its store (a new arena, for load()) as they arrive, through a small buffer
// (safetensors_stream_read.ts), while its sha256 is computed; a tensor whose checksum differs fails
// the load as soon as its last byte arrived. Nothing is returned unless every check passed.
import { createHash } from 'node:crypto';
import { SAFETENSORS_BYTES, SAFETENSORS_CODE, type StorageDType } from '../dtypes';
import { checkCheckpointHeader, checksumMismatch } from './checkpoint_decode';
import { namingPathOnError } from './checkpoint_file';
import type { ExpectedParameters, StoresFor, StreamedCheckpoint, TensorStore } from './checkpoint_format';
import type { SafetensorsHeader } from './safetensors_decode';
import { streamSafetensorsFile, type TensorReceiver } from './safetensors_stream_read';

/** What to load from one file, and where to. */
export interface StreamPlan<S extends TensorStore> {
  expected: ExpectedParameters;
  /** Checks beyond checkCheckpointHeader's (a shard against its index); throw to stop before any data is read. */
  checkHeader?(header: SafetensorsHeader): void;
  /** The store position of the file's parameter `index`, or null to check it and keep nothing. Default: `index`. */
  place?(index: number): number | null;
  stores: StoresFor<S>;
}

/**
 * Reads, validates and streams the checkpoint at `path` into the stores `plan.stores` makes. Errors
 * name the path. On failure the stores may hold part of the data: the caller frees them.
 */
export async function streamCheckpoint<S extends TensorStore>(path: string, plan: StreamPlan<S>): Promise<StreamedCheckpoint<S>> {
  return namingPathOnError(path, async () => {
    let loaded: StreamedCheckpoint<S> | undefined;
    await streamSafetensorsFile(path, (header) => {
      const checked = checkCheckpointHeader(header, plan.expected);
      plan.checkHeader?.(header);
      const { decay, numUpdates, progress, nonFiniteStats, dtype, collectedDType } = checked;
      const { shadow, collected } = plan.stores({ dtype, collectedDType });
      loaded = { decay, numUpdates, progress, nonFiniteStats, dtype, collectedDType, shadow, collected };
      const place = plan.place ?? ((index: number) => index);
      const targets = new Map<string, { store: S; index: number | null }>();
      checked.shadowNames.forEach((name, i) => targets.set(name, { store: shadow, index: place(i) }));
      if (collected !== null) checked.collectedNames?.forEach((name, i) => targets.set(name, { store: collected, index: place(i) }));
      return ({ name }) => checkedReceiver(name, checked.digests.get(name)!, targets.get(name)!);
    }, plan.expected.onProgress);
    return loaded!;
  });
}

/** Hashes a tensor's bytes as they arrive and writes them to its store; checks the digest at the end. */
function checkedReceiver(name: string, digest: string, { store, index }: { store: TensorStore; index: number | null }): TensorReceiver {
  const hash = createHash('sha256');
  return {
    chunk(bytes, byteOffset) {
      const writing = index === null ? undefined : store.write(index, byteOffset, bytes); // may run on another thread...
      hash.update(bytes); // ...while this runs here
      return writing;
    },
    end() {
      if (hash.digest('hex') !== digest) checksumMismatch(name);
    },
  };
}

/** Stores in memory: one byte array per tensor of `sizes` elements, allocated once the header passed. */
export function byteStores(sizes: readonly number[]): StoresFor<TensorStore & { tensors: Uint8Array[] }> {
  const store = (bytesPerElement: number): TensorStore & { tensors: Uint8Array[] } => {
    const tensors = sizes.map((n) => new Uint8Array(n * bytesPerElement));
    return { tensors, write: (index, byteOffset, bytes) => tensors[index].set(bytes, byteOffset) };
  };
  const bytesOf = (dtype: StorageDType): number => SAFETENSORS_BYTES[SAFETENSORS_CODE[dtype]];
  return ({ dtype, collectedDType }) => ({ shadow: store(bytesOf(dtype)), collected: collectedDType === null ? null : store(bytesOf(collectedDType)) });
}
