// Reading half of the safetensors container: validating a header read from an untrusted file (see
// safetensors.ts for the format). Every field is checked before it is used; the tensors must tile
// the data buffer exactly.
import { isSafetensorsDType, listOfDTypes, SAFETENSORS_BYTES, type SafetensorsDType } from '../dtypes';
import { codedError } from '../errors';
import { describeJsonValue, elementCount, findDuplicateKey, isCount, isObject, LONE_SURROGATE } from './untrusted';

/** Largest header accepted when reading (the official implementation uses the same cap). */
export const MAX_HEADER_BYTES = 100_000_000;

/** A tensor's header entry. */
export interface TensorInfo {
  name: string;
  dtype: SafetensorsDType;
  shape: number[];
}

/** A validated header. `tensors` are in data order; `metadata` has a null prototype. */
export interface SafetensorsHeader {
  metadata: Record<string, string>;
  tensors: TensorInfo[];
}

/** A header entry with its byte range in the data buffer. */
export interface HeaderEntry {
  name: string;
  dtype: SafetensorsDType;
  shape: number[];
  begin: number;
  end: number;
}

export function fail(what: string): never {
  throw codedError('INVALID_CHECKPOINT', `Invalid safetensors file: ${what}`);
}

/** The 8-byte length field, checked against the file size and the cap. */
export function checkedHeaderLength(raw: bigint, fileLength: number): number {
  if (raw > BigInt(fileLength - 8)) {
    fail(`the header length field says ${raw} bytes but only ${fileLength - 8} bytes follow it`);
  }
  if (raw > BigInt(MAX_HEADER_BYTES)) fail(`the header length ${raw} exceeds the ${MAX_HEADER_BYTES}-byte limit`);
  return Number(raw);
}

/** Decodes and validates the header JSON; `dataLength` is the size of the data buffer after it. */
export function parseHeader(headerBytes: Uint8Array, dataLength: number): { metadata: Record<string, string>; entries: HeaderEntry[] } {
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
  if (!isSafetensorsDType(dtype)) {
    fail(`${where} has dtype ${describeJsonValue(dtype)}, which is not supported (expected ${listOfDTypes('safetensors')})`);
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
  if (numel * SAFETENSORS_BYTES[dtypeKey] !== end - begin) {
    fail(
      `${where} has shape [${shape.join(', ')}] of ${dtype}, which needs ${numel * SAFETENSORS_BYTES[dtypeKey]} bytes, ` +
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
