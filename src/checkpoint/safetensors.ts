// The safetensors container (https://github.com/huggingface/safetensors), so that Python's
// `safetensors` reads our checkpoints. Layout: an 8-byte little-endian header length N, N bytes of
// UTF-8 JSON `{"__metadata__": {string: string}, "<name>": {dtype, shape, data_offsets}, ...}` padded
// with spaces, then the data buffer; data_offsets are relative to the start of the data buffer.
//
// Files are untrusted: every field is checked before it is used, and nothing is allocated before its
// size has been checked against the bytes actually present.
//
// This file reads and writes whole files and buffers; safetensors_encode.ts lays out and encodes the
// header, safetensors_decode.ts validates one.
import type { ProgressListener } from './checkpoint_format';
import { constants as bufferConstants } from 'node:buffer';
import { codedError } from '../errors';
import { writeFileAtomic } from './atomic_write';
import { checkedHeaderLength, fail, parseHeader, type SafetensorsHeader, type TensorInfo } from './safetensors_decode';
import { streamSafetensorsFile } from './safetensors_stream_read';
import { writeTensorData } from './safetensors_stream_write';
import { encodeHeader, isDeferred, layoutTensors, placeholderOf, producedBytes, type DeferredMetadata, type TensorSource } from './safetensors_encode';
import { describeJsonValue } from './untrusted';

export type { SafetensorsDType } from '../dtypes';
export { MAX_HEADER_BYTES } from './safetensors_decode';
export type { SafetensorsHeader, TensorInfo } from './safetensors_decode';
export type { DeferredMetadata, TensorSource } from './safetensors_encode';

/** One tensor read from a file. */
export interface ParsedTensor extends TensorInfo {
  /** The tensor's raw little-endian data: a view into the parsed bytes (or into the data read from a file). */
  bytes: Uint8Array;
}

/** A parsed file. `tensors` are in data order; `metadata` has a null prototype. */
export interface ParsedSafetensors extends SafetensorsHeader {
  tensors: ParsedTensor[];
}

/** Serializes to one in-memory buffer (for small states; use {@link writeSafetensorsFile} for large ones). */
export function serializeSafetensors(
  tensors: readonly TensorSource[],
  metadata: Record<string, string> | DeferredMetadata,
): Uint8Array {
  const layout = layoutTensors(tensors);
  const header = encodeHeader(layout.entries, placeholderOf(metadata));
  const out = new Uint8Array(header.length + layout.dataLength);
  out.set(header);
  let offset = header.length;
  tensors.forEach((tensor, i) => {
    const bytes = producedBytes(tensor, layout.byteLengths[i]);
    out.set(bytes, offset);
    tensor.written?.(bytes);
    tensor.finished?.();
    offset += bytes.length;
  });
  if (isDeferred(metadata)) out.set(encodeHeader(layout.entries, metadata.final(), header.length - 8));
  return out;
}

/**
 * Writes `path` atomically (see `writeFileAtomic`) and streamed: the header, then the tensors'
 * bytes through two reused buffers (writeTensorData), so no tensor's data is held at once.
 */
export async function writeSafetensorsFile(
  path: string,
  tensors: readonly TensorSource[],
  metadata: Record<string, string> | DeferredMetadata,
  onProgress?: ProgressListener,
): Promise<void> {
  const layout = layoutTensors(tensors);
  const header = encodeHeader(layout.entries, placeholderOf(metadata));
  const totalBytes = layout.byteLengths.reduce((n, b) => n + b, 0);
  let sum = 0;
  const ends = layout.byteLengths.map((b) => (sum += b)); // where each tensor's data ends
  await writeFileAtomic(path, async (sink) => {
    await sink.append(header);
    // A listener's throw abandons the temporary file.
    await writeTensorData(sink, tensors, layout.byteLengths, (i) => onProgress?.({ file: path, bytes: ends[i], totalBytes }));
    if (isDeferred(metadata)) await sink.writeAt(encodeHeader(layout.entries, metadata.final(), header.length - 8), 0);
  });
}

/** Parses and validates a whole file held in memory. Tensor bytes are views into `input`. */
export function parseSafetensors(input: Uint8Array): ParsedSafetensors {
  // isView rather than instanceof: Buffers from another realm (vm contexts, jest) are Uint8Arrays too.
  if (!ArrayBuffer.isView(input)) fail(`expected a Uint8Array but received ${describeJsonValue(input)}`);
  const bytes = new Uint8Array(input.buffer, input.byteOffset, input.byteLength);
  if (bytes.length < 8) fail(`the file has ${bytes.length} bytes, fewer than the 8-byte header length field`);
  const raw = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
  const headerLength = checkedHeaderLength(raw, bytes.length);
  const dataStart = 8 + headerLength;
  const header = parseHeader(bytes.subarray(8, dataStart), bytes.length - dataStart);
  return {
    metadata: header.metadata,
    tensors: header.entries.map(({ name, dtype, shape, begin, end }) => ({
      name, dtype, shape, bytes: bytes.subarray(dataStart + begin, dataStart + end),
    })),
  };
}

/**
 * Reads and validates a whole file into memory (streamSafetensorsFile does the reading): the
 * length field and header first, then (only if the header is valid and `checkHeader` did not throw)
 * each tensor's data into a buffer of exactly its size.
 */
export async function readSafetensorsFile(
  path: string,
  /** Called with the validated header before any tensor data is read; throw to stop there. */
  checkHeader?: (header: SafetensorsHeader) => void,
  onProgress?: ProgressListener,
): Promise<ParsedSafetensors> {
  const tensors: ParsedTensor[] = [];
  const { metadata } = await streamSafetensorsFile(path, (header) => {
    checkHeader?.(header);
    return ({ name, dtype, shape, begin, end }) => {
      if (end - begin > bufferConstants.MAX_LENGTH) {
        throw codedError('INVALID_CHECKPOINT', `Cannot read safetensors: tensor ${JSON.stringify(name)} has ${end - begin} bytes, more than one Buffer can hold`);
      }
      const bytes = new Uint8Array(end - begin);
      tensors.push({ name, dtype, shape, bytes });
      return { chunk: (piece, offset) => bytes.set(piece, offset), end: () => undefined };
    };
  }, onProgress);
  return { metadata, tensors };
}
