// Sharded checkpoints: each rank writes its parameters as one ordinary model-ema checkpoint file
// (`<prefix>-0000r-of-0000w.safetensors`, tensor names from the full list's keys, so that names
// never collide across shards) and rank 0 also writes the index (sharded_index.ts). A loader of any
// world size reads the index, checks that every file it names exists, and reads only the files
// holding its own parameters, each checked in full (checksums) and against the index's scalars.
import { stat } from 'node:fs/promises';
import * as path from 'node:path';
import { SAFETENSORS_BYTES, SAFETENSORS_CODE } from '../dtypes';
import { codedError } from '../errors';
import { writeFileAtomic } from './atomic_write';
import { checkCheckpointHeader, decodeCheckpoint } from './checkpoint_decode';
import { encodeCheckpoint } from './checkpoint_encode';
import { fileKind, namingPathOnError, readingPrefix } from './checkpoint_file';
import { CHECKPOINT_FORMAT, metadataDigest, parameterKeys, type CheckpointSource, type DecodedCheckpoint, type DigestedMetadataKey, type ExpectedParameters, type ProgressListener } from './checkpoint_format';
import { readSafetensorsFile, writeSafetensorsFile } from './safetensors';
import { encodeShardIndex, indexPathOf, readShardIndex, SHARED_METADATA_KEYS, shardFileName, type ShardIndex } from './sharded_index';

/** The deterministic layout every rank shares (ShardLayout satisfies it). */
export interface ShardPlan {
  rank: number;
  worldSize: number;
  keys: readonly string[];
  sizes: readonly number[];
  owner: readonly number[];
  own: readonly number[];
}

/** The loading EMA: the full list (names, sizes, shapes) and the positions it keeps. */
export interface LoadPlan extends Required<ExpectedParameters> {
  own: readonly number[];
}

/**
 * Writes this rank's shard (its own parameters, `source` holds them) and, on rank 0, the index;
 * each file atomically. `prefix` is a path without an extension ('ckpt/ema').
 */
export async function saveShardedCheckpoint(prefix: string, source: CheckpointSource, plan: ShardPlan, onProgress?: ProgressListener): Promise<void> {
  const base = path.basename(prefix);
  if (base === '' || prefix.endsWith('/') || /\.(safetensors|json)$/.test(base)) {
    throw codedError(
      'INVALID_ARGUMENT',
      `Cannot save to '${prefix}': a sharded EMA saves to a prefix without extension ('ckpt/ema' writes ckpt/ema-00001-of-00002.safetensors, ... and ckpt/ema.safetensors.index.json)`,
    );
  }
  const { tensors, metadata } = encodeCheckpoint({ ...source, names: plan.own.map((i) => plan.keys[i]) });
  await writeSafetensorsFile(shardFileName(prefix, plan.rank, plan.worldSize), tensors, metadata, onProgress);
  if (plan.rank !== 0) return;
  const bytesOf = (dtype: keyof typeof SAFETENSORS_CODE): number => SAFETENSORS_BYTES[SAFETENSORS_CODE[dtype]] * plan.sizes.reduce((n, s) => n + s, 0);
  const text = encodeShardIndex({
    worldSize: plan.worldSize,
    keys: plan.keys,
    owner: plan.owner,
    fileOfRank: (rank) => path.basename(shardFileName(prefix, rank, plan.worldSize)),
    totalSize: bytesOf(source.dtype) + (source.collected === null ? 0 : bytesOf(source.collected.dtype)),
    collected: source.collected !== null,
    metadata: metadata.placeholder,
  });
  await writeFileAtomic(indexPathOf(prefix), (sink) => sink.append(Buffer.from(text, 'utf8')));
}

function invalid(indexPath: string, what: string): never {
  throw codedError('INVALID_CHECKPOINT', `${readingPrefix(indexPath)}Invalid sharded checkpoint: ${what}`);
}

/** The index's scalars, parsed and checked exactly as a shard's header would be. */
function indexScalars(index: ShardIndex): Omit<DecodedCheckpoint, 'shadow' | 'collected'> {
  const digested: Record<string, string> = { ...index.shared, format: CHECKPOINT_FORMAT, names: '[]', skipped_elements: '0' };
  const metadata = { ...digested, metadata_sha256: metadataDigest(digested as Record<DigestedMetadataKey, string>, index.shared.format_version), checksums: '{}' };
  const header = checkCheckpointHeader({ metadata, tensors: [] }, { names: [], sizes: [] });
  return { decay: header.decay, numUpdates: header.numUpdates, progress: header.progress, nonFiniteStats: header.nonFiniteStats, dtype: header.dtype, collectedDType: header.collectedDType };
}

/**
 * Loads the parameters `plan.own` of a sharded checkpoint, reading only the shards that hold them.
 * Nothing is returned unless every check passed (so the caller changes nothing on failure).
 */
export async function loadShardedCheckpoint(indexPath: string, plan: LoadPlan): Promise<DecodedCheckpoint> {
  const index = await namingPathOnError(indexPath, () => readShardIndex(indexPath));
  const scalars = await namingPathOnError(indexPath, async () => indexScalars(index));
  const { names, sizes, shapes, own, matchNames, onProgress } = plan;
  if (index.parameters.length !== sizes.length) invalid(indexPath, `the checkpoint has ${index.parameters.length} parameters but this EMA has ${sizes.length}`);
  if (matchNames) {
    const keys = parameterKeys(names);
    index.parameters.forEach((key, i) => {
      if (key !== keys[i]) invalid(indexPath, `parameter ${i} is ${JSON.stringify(key)} in the checkpoint but ${JSON.stringify(keys[i])} in this EMA (pass { matchNames: false } to match by position)`);
    });
  }
  const folder = path.dirname(indexPath);
  const members = new Map<string, number[]>();
  index.fileOf.forEach((file, i) => members.set(file, [...(members.get(file) ?? []), i]));
  for (const file of members.keys()) await checkShardExists(indexPath, folder, file);

  const position = new Map(own.map((g, j) => [g, j]));
  const shadow = new Array<Uint8Array>(own.length);
  const collected = scalars.collectedDType === null ? null : new Array<Uint8Array>(own.length);
  let skippedElements = 0;
  const needed = [...new Set(own.map((g) => index.fileOf[g]))].sort();
  for (const file of needed) {
    const inFile = members.get(file)!;
    const expected = { names: inFile.map((g) => index.parameters[g]), sizes: inFile.map((g) => sizes[g]), shapes: inFile.map((g) => shapes[g]), matchNames: true, onProgress };
    const decoded = await readShard(path.join(folder, file), expected, index, indexPath);
    skippedElements += decoded.nonFiniteStats.skippedElements;
    const partial = inFile.length !== inFile.filter((g) => position.has(g)).length;
    // Copies when the file holds others' tensors too, so that their bytes can be freed.
    const keep = (bytes: Uint8Array): Uint8Array => (partial ? bytes.slice() : bytes);
    inFile.forEach((g, k) => {
      const j = position.get(g);
      if (j === undefined) return;
      shadow[j] = keep(decoded.shadow[k]);
      if (collected !== null) collected[j] = keep(decoded.collected![k]);
    });
  }
  return { ...scalars, nonFiniteStats: { skippedUpdates: scalars.nonFiniteStats.skippedUpdates, skippedElements }, shadow, collected };
}

async function checkShardExists(indexPath: string, folder: string, file: string): Promise<void> {
  const full = path.join(folder, file);
  let stats;
  try {
    stats = await stat(full);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    invalid(indexPath, `shard '${full}' named by the index ${code === 'ENOENT' ? 'does not exist' : `cannot be read (${code})`}`);
  }
  if (!stats.isFile()) invalid(indexPath, `shard '${full}' named by the index is ${fileKind(stats)}, not a regular file`);
}

// One shard, checked in full, and against the index before any of its tensor data is read.
async function readShard(file: string, expected: Required<ExpectedParameters>, index: ShardIndex, indexPath: string): Promise<DecodedCheckpoint> {
  return namingPathOnError(file, async () => {
    const parsed = await readSafetensorsFile(file, (header) => {
      checkCheckpointHeader(header, expected);
      for (const key of SHARED_METADATA_KEYS) {
        if (header.metadata[key] !== index.shared[key]) {
          throw codedError(
            'INVALID_CHECKPOINT',
            `Invalid model-ema checkpoint shard: metadata ${key} is ${JSON.stringify(header.metadata[key])} but the index '${indexPath}' says ${JSON.stringify(index.shared[key])} (a shard saved at another step, or by another run)`,
          );
        }
      }
    }, expected.onProgress);
    return decodeCheckpoint(parsed, expected);
  });
}
