// Writing half of the safetensors container: the tensors' layout in the data buffer and the header
// that describes it (see safetensors.ts for the format). Names, dtypes, shapes and the produced
// bytes are checked here, so a writer never emits a file its own reader would refuse.
import { isSafetensorsDType, SAFETENSORS_BYTES, type SafetensorsDType } from '../dtypes';
import { codedError } from '../errors';
import { describeJsonValue, elementCount, LONE_SURROGATE } from './untrusted';

/** One tensor to write. Its bytes are produced lazily so a large state never sits in memory at once. */
export interface TensorSource {
  name: string;
  dtype: SafetensorsDType;
  shape: readonly number[];
  /**
   * The raw little-endian data (any typed array or view; its bytes are taken as they are). Called
   * exactly once, when this tensor is written, in the order the tensors were given. The bytes must
   * stay unchanged until the next tensor's bytes() is called or the write ends (so one staging
   * buffer can be reused for every tensor).
   */
  bytes(): ArrayBufferView;
  /**
   * Optional, for large tensors: copies the tensor's bytes from `byteOffset` on into `out` (whole
   * elements, within the tensor). When present, the streamed writer calls this instead of bytes(),
   * so that the tensor goes to the file through a small reused buffer.
   */
  readInto?(out: Uint8Array, byteOffset: number): void;
  /**
   * Optional: called with each piece of the tensor's bytes, in order, right after it was handed to
   * the writer, while the write is still in flight, so work such as checksumming overlaps the I/O.
   * The view is valid only during the call.
   */
  written?(bytes: Uint8Array): void;
  /** Optional: called once all of the tensor's bytes went to written() (also for a tensor of 0 bytes). */
  finished?(): void;
}

/**
 * Metadata whose final values are known only once every tensor's bytes were produced (checksums
 * computed while streaming). The header is written with `placeholder` first and overwritten in place
 * with `final()` at the end; `final()`'s header must not be longer than the placeholder's (it is
 * padded with spaces to the same length), so give placeholders of the final values' exact length.
 */
export interface DeferredMetadata {
  placeholder: Record<string, string>;
  final(): Record<string, string>;
}

export interface TensorLayout {
  entries: string[]; // `"name":{...}` JSON members, in the given order
  byteLengths: number[];
  dataLength: number;
}

/** Where each tensor goes in the data buffer, and its header entry; throws on anything a reader would refuse. */
export function layoutTensors(tensors: readonly TensorSource[]): TensorLayout {
  const cannot = (what: string): never => {
    throw codedError('INTERNAL', `Cannot write safetensors: ${what}`);
  };
  const seen = new Set<string>();
  const entries: string[] = [];
  const byteLengths: number[] = [];
  let offset = 0;
  for (const { name, dtype, shape } of tensors) {
    if (typeof name !== 'string' || LONE_SURROGATE.test(name)) cannot(`invalid tensor name ${describeJsonValue(name)}`);
    if (name === '__metadata__') cannot('a tensor cannot be named "__metadata__"');
    if (seen.has(name)) cannot(`the tensor name ${JSON.stringify(name)} is used twice`);
    seen.add(name);
    if (!isSafetensorsDType(dtype)) cannot(`tensor ${JSON.stringify(name)} has unsupported dtype ${describeJsonValue(dtype)}`);
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      cannot(`tensor ${JSON.stringify(name)} has shape ${describeJsonValue(shape)}; expected non-negative integers`);
    }
    const byteLength = elementCount(shape) * SAFETENSORS_BYTES[dtype];
    if (!Number.isSafeInteger(offset + byteLength)) cannot(`tensor ${JSON.stringify(name)} is too large`);
    entries.push(`${JSON.stringify(name)}:${JSON.stringify({ dtype, shape, data_offsets: [offset, offset + byteLength] })}`);
    byteLengths.push(byteLength);
    offset += byteLength;
  }
  return { entries, byteLengths, dataLength: offset };
}

const utf8 = new TextEncoder();

/** Length field + header JSON padded with spaces to `paddedLength` (default: the next multiple of 8). */
export function encodeHeader(entries: readonly string[], metadata: Record<string, string>, paddedLength?: number): Uint8Array {
  const members = Object.keys(metadata).map((key) => {
    const value = metadata[key];
    if (typeof value !== 'string' || LONE_SURROGATE.test(value) || LONE_SURROGATE.test(key)) {
      throw codedError('INTERNAL', `Cannot write safetensors: metadata ${JSON.stringify(key)} must be a well-formed string, received ${describeJsonValue(value)}`);
    }
    return `${JSON.stringify(key)}:${JSON.stringify(value)}`;
  });
  const json = utf8.encode(`{"__metadata__":{${members.join(',')}}${entries.map((e) => `,${e}`).join('')}}`);
  const length = paddedLength ?? Math.ceil(json.length / 8) * 8;
  if (json.length > length) {
    throw codedError('INTERNAL', `Cannot write safetensors: the final header (${json.length} bytes) is longer than its placeholder (${length} bytes)`);
  }
  const out = new Uint8Array(8 + length);
  new DataView(out.buffer).setBigUint64(0, BigInt(length), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.length);
  return out;
}

/** The bytes tensor.bytes() produced, as a Uint8Array view, checked against the layout. */
export function producedBytes(tensor: TensorSource, expectedLength: number): Uint8Array {
  const view = tensor.bytes();
  if (!ArrayBuffer.isView(view)) {
    throw codedError('INTERNAL', `Cannot write safetensors: bytes() of tensor ${JSON.stringify(tensor.name)} returned ${describeJsonValue(view)}, not a typed array`);
  }
  if (view.byteLength !== expectedLength) {
    throw codedError(
      'INTERNAL',
      `Cannot write safetensors: tensor ${JSON.stringify(tensor.name)} (${tensor.dtype}, shape [${tensor.shape.join(', ')}]) ` +
        `needs ${expectedLength} bytes but bytes() returned ${view.byteLength}`,
    );
  }
  return new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
}

export function isDeferred(metadata: Record<string, string> | DeferredMetadata): metadata is DeferredMetadata {
  return typeof (metadata as Partial<DeferredMetadata>).final === 'function';
}

export function placeholderOf(metadata: Record<string, string> | DeferredMetadata): Record<string, string> {
  return isDeferred(metadata) ? metadata.placeholder : metadata;
}
