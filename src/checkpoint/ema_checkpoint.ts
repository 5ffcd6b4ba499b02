// An EMA's state as safetensors tensors plus string metadata, and back. The file is untrusted:
// decodeCheckpoint validates every field, name, size and checksum before returning anything.
//
// This file is the checkpoint codec's entry: whole buffers and files, and streamed loads. The format (tensor names,
// metadata keys, digests) is in checkpoint_format.ts, writing in checkpoint_encode.ts, validation in
// checkpoint_decode.ts.
import { decodeCheckpoint } from './checkpoint_decode';
import { encodeCheckpoint } from './checkpoint_encode';
import type { CheckpointSource, DecodedCheckpoint, ExpectedParameters, ProgressListener } from './checkpoint_format';
import { byteStores, streamCheckpoint } from './checkpoint_stream';
import { parseSafetensors, serializeSafetensors, writeSafetensorsFile } from './safetensors';

export { checkCheckpointHeader, decodeCheckpoint } from './checkpoint_decode';
export { encodeCheckpoint } from './checkpoint_encode';
export { CHECKPOINT_FORMAT, CHECKPOINT_FORMAT_VERSION, METADATA_KEYS, parameterKeys } from './checkpoint_format';
export { streamCheckpoint, type StreamPlan } from './checkpoint_stream';
export type { CheckpointFields, CheckpointSource, CollectedDType, DecodedCheckpoint, ExpectedParameters, ProgressListener, StorageDType, StoresFor, StreamedCheckpoint, TensorStore, TransferProgress } from './checkpoint_format';

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
export async function saveCheckpoint(path: string, source: CheckpointSource, onProgress?: ProgressListener): Promise<void> {
  const { tensors, metadata } = encodeCheckpoint(source);
  await writeSafetensorsFile(path, tensors, metadata, onProgress);
}

/**
 * Reads, validates and decodes a checkpoint file into memory (load() streams into arenas instead:
 * streamCheckpoint). The header is checked before any tensor data is read: a mismatched file fails
 * fast, however large.
 */
export async function loadCheckpoint(path: string, expected: ExpectedParameters): Promise<DecodedCheckpoint> {
  const loaded = await streamCheckpoint(path, { expected, stores: byteStores(expected.sizes) });
  return { ...loaded, shadow: loaded.shadow.tensors, collected: loaded.collected && loaded.collected.tensors };
}
