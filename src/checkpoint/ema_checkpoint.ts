// An EMA's state as safetensors tensors plus string metadata, and back. The file is untrusted:
// decodeCheckpoint validates every field, name, size and checksum before returning anything.
//
// This file is the checkpoint codec's entry: whole buffers and files. The format (tensor names,
// metadata keys, digests) is in checkpoint_format.ts, writing in checkpoint_encode.ts, validation in
// checkpoint_decode.ts.
import { decodeCheckpoint, checkCheckpointHeader } from './checkpoint_decode';
import { encodeCheckpoint } from './checkpoint_encode';
import type { CheckpointSource, DecodedCheckpoint, ExpectedParameters, ProgressListener } from './checkpoint_format';
import { namingPathOnError } from './checkpoint_file';
import { parseSafetensors, readSafetensorsFile, serializeSafetensors, writeSafetensorsFile } from './safetensors';

export { checkCheckpointHeader, decodeCheckpoint } from './checkpoint_decode';
export { encodeCheckpoint } from './checkpoint_encode';
export { CHECKPOINT_FORMAT, CHECKPOINT_FORMAT_VERSION, METADATA_KEYS, parameterKeys } from './checkpoint_format';
export type { CheckpointSource, CollectedDType, DecodedCheckpoint, ExpectedParameters, ProgressListener, StorageDType, TransferProgress } from './checkpoint_format';

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

/** Reads, validates and decodes a checkpoint file. */
export async function loadCheckpoint(path: string, expected: ExpectedParameters): Promise<DecodedCheckpoint> {
  // The header is checked before any tensor data is read: a mismatched file fails fast, however large.
  return namingPathOnError(path, async () => decodeCheckpoint(await readSafetensorsFile(path, (header) => void checkCheckpointHeader(header, expected), expected.onProgress), expected));
}
