// The index of a sharded checkpoint, as Hugging Face writes one (`<prefix>.safetensors.index.json`:
// `{ "metadata": { "total_size" }, "weight_map": { tensor: file } }`), plus what a model-ema loader
// checks the shards against: the parameter keys in order and the scalars every shard must share.
// The index is untrusted: every field is checked, and it may only name files inside its own folder.
import * as path from 'node:path';
import { codedError } from '../errors';
import { openRegularFile } from './checkpoint_file';
import { COLLECTED_PREFIX, SHADOW_PREFIX } from './checkpoint_format';
import { describeJsonValue, findDuplicateKey, isCount, isObject } from './untrusted';

export const SHARDED_FORMAT = 'model-ema-sharded';
export const SHARDED_FORMAT_VERSION = '1';
/**
 * Shard metadata that must be equal in every shard and in the index: a shard saved at another step
 * or by another run differs in at least one. `seconds` (wall clock by default, per process) and
 * `skipped_elements` (counted per rank) are not compared; the index holds rank 0's `seconds`.
 */
export const SHARED_METADATA_KEYS = ['format_version', 'decay', 'num_updates', 'dtype', 'collected_dtype', 'schedule', 'step', 'samples', 'skipped_updates'] as const;
export const INDEX_METADATA_KEYS = [...SHARED_METADATA_KEYS, 'seconds'] as const;
/** An index larger than this is refused unread (a million parameters need about 100 MB). */
export const MAX_INDEX_BYTES = 256 << 20;

/** `<prefix>-0000r-of-0000w.safetensors`, 1-based as Hugging Face numbers them. */
export function shardFileName(prefix: string, rank: number, worldSize: number): string {
  return `${prefix}-${String(rank + 1).padStart(5, '0')}-of-${String(worldSize).padStart(5, '0')}.safetensors`;
}

export function indexPathOf(prefix: string): string {
  return `${prefix}.safetensors.index.json`;
}

export function isIndexPath(file: string): boolean {
  return file.endsWith('.index.json');
}

/** What an index says, checked. `fileOf[i]` is the file (relative to the index's folder) holding parameter i. */
export interface ShardIndex {
  parameters: string[];
  fileOf: string[];
  collected: boolean;
  /** The shared metadata strings (INDEX_METADATA_KEYS). */
  shared: Record<string, string>;
  totalSize: number;
}

export interface IndexSource {
  worldSize: number;
  keys: readonly string[];
  owner: readonly number[];
  fileOfRank: (rank: number) => string;
  totalSize: number;
  collected: boolean;
  metadata: Readonly<Record<string, string>>;
}

/** The index's JSON text, from the deterministic layout alone (no other rank is asked). */
export function encodeShardIndex(source: IndexSource): string {
  const weightMap: Record<string, string> = {};
  for (const prefix of source.collected ? [SHADOW_PREFIX, COLLECTED_PREFIX] : [SHADOW_PREFIX]) {
    source.keys.forEach((key, i) => (weightMap[`${prefix}${key}`] = source.fileOfRank(source.owner[i])));
  }
  const checkpoint = Object.fromEntries(INDEX_METADATA_KEYS.map((key) => [key, source.metadata[key]]));
  const metadata = { total_size: source.totalSize, format: SHARDED_FORMAT, format_version: SHARDED_FORMAT_VERSION, world_size: source.worldSize, parameters: source.keys, checkpoint };
  return `${JSON.stringify({ metadata, weight_map: weightMap }, null, 2)}\n`;
}

function fail(what: string): never {
  throw codedError('INVALID_CHECKPOINT', `Invalid sharded checkpoint index: ${what}`);
}

/**
 * A file named by the index, relative to its folder. Absolute paths, `..`, `.` and empty segments,
 * backslashes and NUL are refused: the index never makes the loader read outside its folder.
 */
export function checkConfinedName(file: unknown, tensor: string): string {
  if (typeof file !== 'string') fail(`weight_map[${describeJsonValue(tensor)}] is ${describeJsonValue(file)}, expected a file name`);
  const segments = file.split('/');
  if (path.posix.isAbsolute(file) || path.win32.isAbsolute(file) || /[\\\0]/.test(file) || segments.some((s) => s === '' || s === '.' || s === '..')) {
    fail(`weight_map[${describeJsonValue(tensor)}] names ${describeJsonValue(file)}, which is not a plain path inside the index's folder (absolute paths and '..' are refused)`);
  }
  return file;
}

/** Parses and checks an index's text. */
export function decodeShardIndex(text: string): ShardIndex {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    fail('it is not valid JSON');
  }
  const duplicate = findDuplicateKey(text);
  if (duplicate !== undefined) fail(`key ${describeJsonValue(duplicate)} appears twice`);
  if (!isObject(value) || !isObject(value.metadata) || !isObject(value.weight_map)) fail('expected { "metadata": {...}, "weight_map": {...} }');
  const { metadata, weight_map: weightMap } = value;
  if (metadata.format !== SHARDED_FORMAT) fail(`metadata.format is ${describeJsonValue(metadata.format)}, expected "${SHARDED_FORMAT}" (not written by model-ema)`);
  if (metadata.format_version !== SHARDED_FORMAT_VERSION) fail(`metadata.format_version is ${describeJsonValue(metadata.format_version)}, expected "${SHARDED_FORMAT_VERSION}"`);
  if (!isCount(metadata.total_size)) fail(`metadata.total_size is ${describeJsonValue(metadata.total_size)}, expected a byte count`);
  const parameters = metadata.parameters;
  if (!Array.isArray(parameters) || !parameters.every((k) => typeof k === 'string')) fail('metadata.parameters must be an array of strings');
  if (new Set(parameters).size !== parameters.length) fail('metadata.parameters has a key twice');
  const checkpoint = metadata.checkpoint;
  if (!isObject(checkpoint)) fail('metadata.checkpoint must be an object');
  const shared: Record<string, string> = {};
  for (const key of INDEX_METADATA_KEYS) {
    const field = checkpoint[key];
    if (typeof field !== 'string') fail(`metadata.checkpoint.${key} is ${describeJsonValue(field)}, expected a string`);
    shared[key] = field;
  }
  const collected = shared.collected_dtype !== 'none';
  const fileOf = (parameters as string[]).map((key) => {
    const name = `${SHADOW_PREFIX}${key}`;
    if (!Object.hasOwn(weightMap, name)) fail(`weight_map has no entry for ${describeJsonValue(name)}`);
    const file = checkConfinedName(weightMap[name], name);
    if (collected && weightMap[`${COLLECTED_PREFIX}${key}`] !== file) {
      fail(`weight_map[${describeJsonValue(`${COLLECTED_PREFIX}${key}`)}] must name the file of ${describeJsonValue(name)}, ${describeJsonValue(file)} (collected_dtype is ${shared.collected_dtype})`);
    }
    return file;
  });
  const entries = Object.keys(weightMap).length;
  if (entries !== parameters.length * (collected ? 2 : 1)) {
    fail(`weight_map has ${entries} entries, expected ${parameters.length * (collected ? 2 : 1)} (${parameters.length} parameters, collected_dtype ${shared.collected_dtype})`);
  }
  return { parameters: parameters as string[], fileOf, collected, shared, totalSize: metadata.total_size };
}

/** Reads (at most MAX_INDEX_BYTES, regular files only) and checks an index file. */
export async function readShardIndex(indexPath: string): Promise<ShardIndex> {
  const { file, size } = await openRegularFile(indexPath);
  try {
    if (size > MAX_INDEX_BYTES) fail(`it has ${size} bytes, more than the ${MAX_INDEX_BYTES} an index may have`);
    const buffer = Buffer.alloc(size);
    let done = 0;
    while (done < size) {
      const { bytesRead } = await file.read(buffer, done, size - done, done);
      if (bytesRead === 0) fail(`the file ended at byte ${done} of ${size} (it shrank while being read)`);
      done += bytesRead;
    }
    return decodeShardIndex(buffer.toString('utf8'));
  } finally {
    await file.close();
  }
}
