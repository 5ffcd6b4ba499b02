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
import { checkCheckpointHeader } from './checkpoint_decode';
import { encodeCheckpoint } from './checkpoint_encode';
import { fileKind, namingPathOnError, readingPrefix } from './checkpoint_file';
import { CHECKPOINT_FORMAT, metadataDigest, parameterKeys, type CheckpointFields, type CheckpointSource, type DigestedMetadataKey, type ExpectedParameters, type ProgressListener, type StoresFor, type StreamedCheckpoint, type TensorStore } from './checkpoint_format';
import { streamCheckpoint } from './checkpoint_stream';
import { writeSafetensorsFile } from './safetensors';
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
function indexScalars(index: ShardIndex): CheckpointFields {
  const digested: Record<string, string> = { ...index.shared, format: CHECKPOINT_FORMAT, names: '[]', skipped_elements: '0' };
  const metadata = { ...digested, metadata_sha256: metadataDigest(digested as Record<DigestedMetadataKey, string>, index.shared.format_version), checksums: '{}' };
  const header = checkCheckpointHeader({ metadata, tensors: [] }, { names: [], sizes: [] });
  return { decay: header.decay, numUpdates: header.numUpdates, progress: header.progress, nonFiniteStats: header.nonFiniteStats, dtype: header.dtype, collectedDType: header.collectedDType };
}

/**
 * Loads the parameters `plan.own` of a sharded checkpoint into stores made once (by `stores`, from
 * the index's dtypes) and filled by every shard read, reading only the shards that hold them; every
 * tensor of a shard read is checked (checksums), kept or not. Nothing is returned unless every
 * check passed; on failure the stores made are the caller's to free.
 */
export async function loadShardedCheckpoint<S extends TensorStore>(indexPath: string, plan: LoadPlan, stores: StoresFor<S>): Promise<StreamedCheckpoint<S>> {
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
  const made = stores(scalars);
  let skippedElements = 0;
  const needed = [...new Set(own.map((g) => index.fileOf[g]))].sort();
  for (const file of needed) {
    const inFile = members.get(file)!;
    const expected = { names: inFile.map((g) => index.parameters[g]), sizes: inFile.map((g) => sizes[g]), shapes: inFile.map((g) => shapes[g]), matchNames: true, onProgress };
    const shard = await streamCheckpoint(path.join(folder, file), {
      expected,
      checkHeader: (header) => checkAgainstIndex(header.metadata, index, indexPath),
      place: (k) => position.get(inFile[k]) ?? null,
      stores: () => made, // the index's dtypes, which checkAgainstIndex holds every shard to
    });
    skippedElements += shard.nonFiniteStats.skippedElements;
  }
  return { ...scalars, nonFiniteStats: { skippedUpdates: scalars.nonFiniteStats.skippedUpdates, skippedElements }, shadow: made.shadow, collected: made.collected };
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

// A shard's metadata must agree with the index's (dtypes included) before any of its tensor data is read.
function checkAgainstIndex(metadata: Record<string, string>, index: ShardIndex, indexPath: string): void {
  for (const key of SHARED_METADATA_KEYS) {
    if (metadata[key] !== index.shared[key]) {
      throw codedError(
        'INVALID_CHECKPOINT',
        `Invalid model-ema checkpoint shard: metadata ${key} is ${JSON.stringify(metadata[key])} but the index '${indexPath}' says ${JSON.stringify(index.shared[key])} (a shard saved at another step, or by another run)`,
      );
    }
  }
}
