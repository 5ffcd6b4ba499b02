// save() and load() for every EMA, sharded or not. An unsharded EMA saves and loads single files as
// it always did, and also loads a sharded checkpoint (through its index, or the prefix when no file
// has that name). A sharded EMA saves to a prefix (its shard, plus the index from rank 0) and loads
// any checkpoint: a sharded one of any world size, or a single file, keeping its own parameters.
import { stat } from 'node:fs/promises';
import { saveCheckpoint, streamCheckpoint, type CheckpointSource, type ExpectedParameters, type ProgressListener, type StoresFor, type StreamedCheckpoint, type TensorStore } from '../checkpoint/ema_checkpoint';
import { loadShardedCheckpoint, saveShardedCheckpoint, type LoadPlan } from '../checkpoint/sharded';
import { indexPathOf, isIndexPath } from '../checkpoint/sharded_index';
import type { ShardLayout } from './layout';

export function saveEmaCheckpoint(path: string, source: CheckpointSource, shard: ShardLayout | null, onProgress?: ProgressListener): Promise<void> {
  return shard === null ? saveCheckpoint(path, source, onProgress) : saveShardedCheckpoint(path, source, shard, onProgress);
}

const isFile = (path: string): Promise<boolean> => stat(path).then((s) => s.isFile(), () => false);

/**
 * `path` ending in `.index.json` is an index; a path naming a file is a single checkpoint; else a
 * prefix whose `<prefix>.safetensors.index.json` exists is a sharded checkpoint (and when that is
 * missing too, the single-file load reports the missing path, as it always did).
 */
async function indexOf(path: string): Promise<string | null> {
  if (isIndexPath(path)) return path;
  if (await isFile(path)) return null;
  return (await isFile(indexPathOf(path))) ? indexPathOf(path) : null;
}

/**
 * Streams the checkpoint at `path` (a file, a prefix or an index) into the stores `stores` makes:
 * all of it for an unsharded EMA, this rank's own parameters for a sharded one (every tensor read
 * is checked, kept or not).
 */
export async function loadEmaCheckpoint<S extends TensorStore>(path: string, expected: ExpectedParameters, shard: ShardLayout | null, stores: StoresFor<S>): Promise<StreamedCheckpoint<S>> {
  const index = await indexOf(path);
  if (index === null && shard === null) return streamCheckpoint(path, { expected, stores });
  const matchNames = expected.matchNames !== false;
  const onProgress = expected.onProgress ?? ((): void => {});
  const plan: LoadPlan =
    shard === null
      ? { names: expected.names, sizes: expected.sizes, shapes: expected.shapes ?? expected.names.map(() => null), matchNames, own: expected.sizes.map((_, i) => i), onProgress }
      : { names: shard.names, sizes: shard.sizes, shapes: shard.shapes, matchNames, own: shard.own, onProgress };
  if (index !== null) return loadShardedCheckpoint(index, plan, stores);
  const position = new Map(plan.own.map((g, j) => [g, j]));
  return streamCheckpoint(path, { expected: plan, place: (i) => position.get(i) ?? null, stores });
}
