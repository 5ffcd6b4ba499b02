// The safetensors container (https://github.com/huggingface/safetensors), so that Python's
// `safetensors` reads our checkpoints. Layout: an 8-byte little-endian header length N, N bytes of
// UTF-8 JSON `{"__metadata__": {string: string}, "<name>": {dtype, shape, data_offsets}, ...}` padded
// with spaces, then the data buffer; data_offsets are relative to the start of the data buffer.
//
// Files are untrusted: every field is checked before it is used, and nothing is allocated before its
// size has been checked against the bytes actually present.
import { constants as bufferConstants } from 'node:buffer';
import { type FileHandle } from 'node:fs/promises';
import { writeFileAtomic } from './atomic_write';
import { openRegularFile } from './checkpoint_file';

/** The element types this package reads and writes. */
export type SafetensorsDType = 'F32' | 'F64' | 'F16' | 'BF16';

/** Bytes per element of each supported dtype. */
export const DTYPE_BYTES: Readonly<Record<SafetensorsDType, number>> = { F32: 4, F64: 8, F16: 2, BF16: 2 };

/** Largest header accepted when reading (the official implementation uses the same cap). */
export const MAX_HEADER_BYTES = 100_000_000;

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
   * Optional: called with the tensor's bytes right after they were handed to the writer, while the
   * write is still in flight, so work such as checksumming overlaps the I/O.
   */
  written?(bytes: Uint8Array): void;
}

/** A tensor's header entry. */
export interface TensorInfo {
  name: string;
  dtype: SafetensorsDType;
  shape: number[];
}

/** One tensor read from a file. */
export interface ParsedTensor extends TensorInfo {
  /** The tensor's raw little-endian data: a view into the parsed bytes (or into the data read from a file). */
  bytes: Uint8Array;
}

/** A validated header. `tensors` are in data order; `metadata` has a null prototype. */
export interface SafetensorsHeader {
  metadata: Record<string, string>;
  tensors: TensorInfo[];
}

/** A parsed file. `tensors` are in data order; `metadata` has a null prototype. */
export interface ParsedSafetensors extends SafetensorsHeader {
  tensors: ParsedTensor[];
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
    offset += bytes.length;
  });
  if (isDeferred(metadata)) out.set(encodeHeader(layout.entries, metadata.final(), header.length - 8));
  return out;
}

/**
 * Writes `path` atomically (see `writeFileAtomic`) and streamed: the header, then each tensor's
 * bytes one at a time, so at most one tensor's data is held at once.
 */
export async function writeSafetensorsFile(
  path: string,
  tensors: readonly TensorSource[],
  metadata: Record<string, string> | DeferredMetadata,
): Promise<void> {
  const layout = layoutTensors(tensors);
  const header = encodeHeader(layout.entries, placeholderOf(metadata));
  await writeFileAtomic(path, async (sink) => {
    await sink.append(header);
    for (let i = 0; i < tensors.length; i++) {
      const bytes = producedBytes(tensors[i], layout.byteLengths[i]);
      const writing = sink.append(bytes); // the write runs on libuv's thread pool...
      try {
        tensors[i].written?.(bytes); // ...while this runs here
      } finally {
        await writing;
      }
    }
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
 * Reads and validates a file: the length field and header first, then (only if the header is valid)
 * the tensors' data, allocating exactly the bytes the header assigns to them and the file holds.
 * Tensor bytes are views into a few shared buffers (small tensors are read together).
 */
export async function readSafetensorsFile(
  path: string,
  /** Called with the validated header before any tensor data is read; throw to stop there. */
  checkHeader?: (header: SafetensorsHeader) => void,
): Promise<ParsedSafetensors> {
  const { file, size } = await openRegularFile(path); // refuses FIFOs, devices, directories
  try {
    if (size < 8) fail(`the file has ${size} bytes, fewer than the 8-byte header length field`);
    const prefix = await readExactly(file, 8, 0);
    const raw = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
    const headerLength = checkedHeaderLength(raw, size);
    const dataStart = 8 + headerLength;
    const { metadata, entries } = parseHeader(await readExactly(file, headerLength, 8), size - dataStart);
    checkHeader?.({ metadata, tensors: entries.map(({ name, dtype, shape }) => ({ name, dtype, shape: [...shape] })) });
    // Whole tensors are read in groups of up to READ_GROUP_BYTES: small tensors share one read, and a
    // state larger than one Buffer can be (4 GiB) still loads.
    const tensors: ParsedTensor[] = [];
    for (let first = 0; first < entries.length; ) {
      const start = entries[first].begin;
      let last = first;
      while (last + 1 < entries.length && entries[last + 1].end - start <= READ_GROUP_BYTES) last++;
      const length = entries[last].end - start;
      if (length > bufferConstants.MAX_LENGTH) {
        throw new Error(`Cannot read safetensors: tensor ${JSON.stringify(entries[first].name)} has ${length} bytes, more than one Buffer can hold`);
      }
      const chunk = await readExactly(file, length, dataStart + start);
      for (const { name, dtype, shape, begin, end } of entries.slice(first, last + 1)) {
        tensors.push({ name, dtype, shape, bytes: chunk.subarray(begin - start, end - start) });
      }
      first = last + 1;
    }
    return { metadata, tensors };
  } finally {
    await file.close();
  }
}

const READ_GROUP_BYTES = 256 << 20;

// ---------------------------------------------------------------------------------------------
// Writing

interface TensorLayout {
  entries: string[]; // `"name":{...}` JSON members, in the given order
  byteLengths: number[];
  dataLength: number;
}

const LONE_SURROGATE = /\p{Cs}/u; // JSON can carry these as escapes, but they are not valid UTF-8 text

function layoutTensors(tensors: readonly TensorSource[]): TensorLayout {
  const cannot = (what: string): never => {
    throw new Error(`Cannot write safetensors: ${what}`);
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
    if (!Object.hasOwn(DTYPE_BYTES, dtype)) cannot(`tensor ${JSON.stringify(name)} has unsupported dtype ${describeJsonValue(dtype)}`);
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      cannot(`tensor ${JSON.stringify(name)} has shape ${describeJsonValue(shape)}; expected non-negative integers`);
    }
    const byteLength = elementCount(shape) * DTYPE_BYTES[dtype];
    if (!Number.isSafeInteger(offset + byteLength)) cannot(`tensor ${JSON.stringify(name)} is too large`);
    entries.push(`${JSON.stringify(name)}:${JSON.stringify({ dtype, shape, data_offsets: [offset, offset + byteLength] })}`);
    byteLengths.push(byteLength);
    offset += byteLength;
  }
  return { entries, byteLengths, dataLength: offset };
}

const utf8 = new TextEncoder();

/** Length field + header JSON padded with spaces to `paddedLength` (default: the next multiple of 8). */
function encodeHeader(entries: readonly string[], metadata: Record<string, string>, paddedLength?: number): Uint8Array {
  const members = Object.keys(metadata).map((key) => {
    const value = metadata[key];
    if (typeof value !== 'string' || LONE_SURROGATE.test(value) || LONE_SURROGATE.test(key)) {
      throw new Error(`Cannot write safetensors: metadata ${JSON.stringify(key)} must be a well-formed string, received ${describeJsonValue(value)}`);
    }
    return `${JSON.stringify(key)}:${JSON.stringify(value)}`;
  });
  const json = utf8.encode(`{"__metadata__":{${members.join(',')}}${entries.map((e) => `,${e}`).join('')}}`);
  const length = paddedLength ?? Math.ceil(json.length / 8) * 8;
  if (json.length > length) {
    throw new Error(`Cannot write safetensors: the final header (${json.length} bytes) is longer than its placeholder (${length} bytes)`);
  }
  const out = new Uint8Array(8 + length);
  new DataView(out.buffer).setBigUint64(0, BigInt(length), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.length);
  return out;
}

function producedBytes(tensor: TensorSource, expectedLength: number): Uint8Array {
  const view = tensor.bytes();
  if (!ArrayBuffer.isView(view)) {
    throw new Error(`Cannot write safetensors: bytes() of tensor ${JSON.stringify(tensor.name)} returned ${describeJsonValue(view)}, not a typed array`);
  }
  if (view.byteLength !== expectedLength) {
    throw new Error(
      `Cannot write safetensors: tensor ${JSON.stringify(tensor.name)} (${tensor.dtype}, shape [${tensor.shape.join(', ')}]) ` +
        `needs ${expectedLength} bytes but bytes() returned ${view.byteLength}`,
    );
  }
  return new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
}

function isDeferred(metadata: Record<string, string> | DeferredMetadata): metadata is DeferredMetadata {
  return typeof (metadata as Partial<DeferredMetadata>).final === 'function';
}

function placeholderOf(metadata: Record<string, string> | DeferredMetadata): Record<string, string> {
  return isDeferred(metadata) ? metadata.placeholder : metadata;
}

// ---------------------------------------------------------------------------------------------
// Reading

interface HeaderEntry {
  name: string;
  dtype: SafetensorsDType;
  shape: number[];
  begin: number;
  end: number;
}

function fail(what: string): never {
  throw new Error(`Invalid safetensors file: ${what}`);
}

/** Short, bounded JSON rendering of an untrusted header value for error messages (src/errors.ts describes JS arguments). */
export function describeJsonValue(value: unknown): string {
  let text: string;
  try {
    text = value === undefined ? 'undefined' : typeof value === 'bigint' ? `${value}n` : JSON.stringify(value) ?? String(value);
  } catch {
    text = Object.prototype.toString.call(value);
  }
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

function checkedHeaderLength(raw: bigint, fileLength: number): number {
  if (raw > BigInt(fileLength - 8)) {
    fail(`the header length field says ${raw} bytes but only ${fileLength - 8} bytes follow it`);
  }
  if (raw > BigInt(MAX_HEADER_BYTES)) fail(`the header length ${raw} exceeds the ${MAX_HEADER_BYTES}-byte limit`);
  return Number(raw);
}

function parseHeader(headerBytes: Uint8Array, dataLength: number): { metadata: Record<string, string>; entries: HeaderEntry[] } {
  let text: string;
  try {
    // ignoreBOM: a byte-order mark stays in the text and is rejected below instead of silently skipped.
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(headerBytes);
  } catch {
    fail('the header is not valid UTF-8');
  }
  let end = text.length;
  while (end > 0 && text.charCodeAt(end - 1) === 0x20) end--; // the writer's space padding
  const json = text.slice(0, end);
  if (!json.startsWith('{') || !json.endsWith('}')) fail('the header is not a JSON object (it must start with "{" and end with "}" before the space padding)');
  let root: unknown;
  try {
    root = JSON.parse(json);
  } catch (error) {
    fail(`the header is not valid JSON (${(error as Error).message})`);
  }
  if (!isObject(root)) fail('the header is not a JSON object');
  const duplicate = findDuplicateKey(json);
  if (duplicate !== undefined) fail(`the header has the key ${JSON.stringify(duplicate)} more than once`);

  const metadata: Record<string, string> = Object.create(null) as Record<string, string>;
  const entries: HeaderEntry[] = [];
  for (const [name, value] of Object.entries(root)) {
    if (LONE_SURROGATE.test(name)) fail(`the header key ${JSON.stringify(name)} is not well-formed Unicode`);
    if (name === '__metadata__') {
      if (!isObject(value)) fail(`"__metadata__" must be an object of strings, found ${describeJsonValue(value)}`);
      for (const [key, item] of Object.entries(value)) {
        if (typeof item !== 'string' || LONE_SURROGATE.test(key) || LONE_SURROGATE.test(item)) {
          fail(`metadata ${JSON.stringify(key)} must be a well-formed string, found ${describeJsonValue(item)}`);
        }
        metadata[key] = item;
      }
    } else {
      entries.push(parseEntry(name, value, dataLength));
    }
  }
  checkCoverage(entries, dataLength);
  return { metadata, entries };
}

const ENTRY_FIELDS = ['dtype', 'shape', 'data_offsets'];

function parseEntry(name: string, value: unknown, dataLength: number): HeaderEntry {
  const where = `tensor ${JSON.stringify(name)}`;
  if (!isObject(value)) fail(`${where} must be an object with dtype, shape and data_offsets, found ${describeJsonValue(value)}`);
  for (const key of Object.keys(value)) {
    if (!ENTRY_FIELDS.includes(key)) fail(`${where} has an unknown field ${JSON.stringify(key)}`);
  }
  for (const key of ENTRY_FIELDS) if (!Object.hasOwn(value, key)) fail(`${where} has no ${key}`);
  const { dtype, shape, data_offsets: offsets } = value as { dtype: unknown; shape: unknown; data_offsets: unknown };
  if (typeof dtype !== 'string' || !Object.hasOwn(DTYPE_BYTES, dtype)) {
    fail(`${where} has dtype ${describeJsonValue(dtype)}, which is not supported (expected F32, F64, F16 or BF16)`);
  }
  if (!Array.isArray(shape)) fail(`${where} has shape ${describeJsonValue(shape)}, expected an array of non-negative integers`);
  shape.forEach((dim: unknown, i) => {
    if (!isCount(dim)) fail(`${where} has shape[${i}] = ${describeJsonValue(dim)}, expected a non-negative integer`);
  });
  if (!Array.isArray(offsets) || offsets.length !== 2 || !isCount(offsets[0]) || !isCount(offsets[1])) {
    fail(`${where} has data_offsets ${describeJsonValue(offsets)}, expected [begin, end] with non-negative integers`);
  }
  const [begin, end] = offsets as [number, number];
  if (begin > end) fail(`${where} has data_offsets [${begin}, ${end}] with begin after end`);
  if (end > dataLength) fail(`${where} has data_offsets [${begin}, ${end}] past the end of the ${dataLength}-byte data buffer`);
  const numel = elementCount(shape as number[]);
  const dtypeKey = dtype as SafetensorsDType;
  if (numel * DTYPE_BYTES[dtypeKey] !== end - begin) {
    fail(
      `${where} has shape [${shape.join(', ')}] of ${dtype}, which needs ${numel * DTYPE_BYTES[dtypeKey]} bytes, ` +
        `but data_offsets [${begin}, ${end}] span ${end - begin}`,
    );
  }
  return { name, dtype: dtypeKey, shape: (shape as number[]).map((d) => d + 0), begin: begin + 0, end: end + 0 }; // + 0: -0 to 0
}

/** Sorted by offset, the tensors must tile the data buffer exactly: no overlap, no hole, nothing after. */
function checkCoverage(entries: HeaderEntry[], dataLength: number): void {
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let cursor = 0;
  for (const { name, begin, end } of entries) {
    if (begin < cursor) fail(`tensor ${JSON.stringify(name)} (data_offsets [${begin}, ${end}]) overlaps the data before offset ${cursor}`);
    if (begin > cursor) fail(`data bytes ${cursor} to ${begin} belong to no tensor (a hole before tensor ${JSON.stringify(name)})`);
    cursor = end;
  }
  if (cursor !== dataLength) fail(`the tensors cover ${cursor} bytes but the data buffer has ${dataLength} (trailing bytes)`);
}

/** Number of elements; the shape must already be validated. Overflow only happens for shapes no file can back. */
function elementCount(shape: readonly number[]): number {
  if (shape.includes(0)) return 0;
  let count = 1;
  for (const dim of shape) {
    count *= dim;
    if (!Number.isSafeInteger(count)) return Number.MAX_SAFE_INTEGER; // never matches a real byte span
  }
  return count;
}

function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * First key that occurs twice in one object of `json` (already known to be valid JSON), if any.
 * JSON.parse silently keeps the last duplicate, while other parsers may keep the first or refuse.
 */
export function findDuplicateKey(json: string): string | undefined {
  const objects: (Set<string> | null)[] = []; // null marks an array
  let expectKey = false;
  for (let i = 0; i < json.length; i++) {
    const c = json.charCodeAt(i);
    if (c === 0x22 /* " */) {
      let j = i + 1;
      while (json.charCodeAt(j) !== 0x22) j += json.charCodeAt(j) === 0x5c /* \ */ ? 2 : 1;
      const keys = objects[objects.length - 1];
      if (expectKey && keys) {
        const raw = json.slice(i + 1, j);
        const key = raw.includes('\\') ? (JSON.parse(json.slice(i, j + 1)) as string) : raw;
        if (keys.has(key)) return key;
        keys.add(key);
        expectKey = false;
      }
      i = j;
    } else if (c === 0x7b /* { */) {
      objects.push(new Set());
      expectKey = true;
    } else if (c === 0x5b /* [ */) {
      objects.push(null);
      expectKey = false;
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      objects.pop();
    } else if (c === 0x2c /* , */) {
      expectKey = objects[objects.length - 1] != null;
    }
  }
  return undefined;
}

/** Reads exactly `length` bytes at `position` into a fresh buffer (allocated only after the caller checked `length`). */
async function readExactly(file: FileHandle, length: number, position: number): Promise<Uint8Array> {
  const buffer = Buffer.allocUnsafeSlow(length); // every byte is overwritten below or the buffer is dropped
  let done = 0;
  while (done < length) {
    const { bytesRead } = await file.read(buffer, done, Math.min(length - done, 1 << 30), position + done);
    if (bytesRead === 0) fail(`the file ended at byte ${position + done} while reading ${length} bytes from ${position} (it shrank while being read)`);
    done += bytesRead;
  }
  return buffer;
}
