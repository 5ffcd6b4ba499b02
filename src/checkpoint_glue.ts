// Checkpoint glue: an EMA's state as the checkpoint codec's CheckpointSource (read lazily, tensor by
// tensor, from the arenas or from copies of them that save() writes while training goes on), and a
// checkpoint swapped in as new arenas (load() streams the file into them; deserialize() decodes bytes).
import { arenaFromBytes, type ArenaRole, type CurrentArenas, type EmaArenas } from './arenas';
import { type CheckpointFields, type CheckpointSource, type ProgressListener, type CollectedDType, type DecodedCheckpoint, type ExpectedParameters, type TensorStore } from './checkpoint/ema_checkpoint';
import { SAFETENSORS_BYTES, SAFETENSORS_CODE } from './dtypes';
import { ERROR_CODES } from './errors';
import { checkFloat16Range, valuesOfBytes } from './float16_range';
import { newShadowArena, type ShadowArena, type StorageDType } from './native';
import { loadEmaCheckpoint, saveEmaCheckpoint } from './shard/checkpoint';
import type { ShardLayout } from './shard/layout';
import { parseLoadOptions } from './options';
import { checkScheduleState } from './schedule_state';
import type { TrainingScalars } from './training_state';

/** The EMA's scalars and parameter list, as a checkpoint holds them. */
export interface CheckpointScalars extends TrainingScalars {
  names: (string | null)[];
  sizes: readonly number[];
  /** Each parameter's real shape, or null (saved 1-D). */
  shapes?: readonly (readonly number[] | null)[];
}

export function checkpointSource(scalars: CheckpointScalars, { shadows, backup }: CurrentArenas): CheckpointSource {
  return {
    decay: scalars.decay,
    numUpdates: scalars.counters.numUpdates,
    progress: { schedule: scalars.schedule, step: scalars.counters.step, samples: scalars.counters.samples, seconds: scalars.counters.seconds },
    nonFiniteStats: scalars.nonFiniteStats,
    dtype: shadows.dtype,
    names: scalars.names,
    sizes: scalars.sizes,
    shapes: scalars.shapes,
    shadowBytes: (i) => shadows.readBytes(i),
    shadowInto: (i, out, byteOffset) => shadows.readBytesInto(i, byteOffset / elementBytes(shadows.dtype), out),
    collected:
      backup === null
        ? null
        : { dtype: backup.dtype as CollectedDType, bytes: (i) => backup.readBytes(i), into: (i, out, byteOffset) => backup.readBytesInto(i, byteOffset / elementBytes(backup.dtype), out) },
  };
}

/**
 * A decoded checkpoint's scalars: a file from before schedules means 'torch_ema' or 'constant' by
 * its numUpdates, one from before the non-finite guard has statistics of 0.
 */
export function checkpointScalars(decoded: CheckpointFields): TrainingScalars {
  try {
    const state = checkScheduleState(decoded.progress?.schedule, decoded.numUpdates, decoded.progress ?? {}, 'checkpoint');
    return { ...state, decay: decoded.decay, nonFiniteStats: { ...decoded.nonFiniteStats } };
  } catch (error) {
    throw Object.assign(error as Error, { code: ERROR_CODES.INVALID_CHECKPOINT }); // the file's fault, not an argument's
  }
}

/** What a checkpoint must match to load into this EMA (names, sizes, the shapes it knows), with load()'s options checked. */
export function expectedParameters(
  options: unknown,
  { names, shapes }: { names: (string | null)[]; shapes: readonly (readonly number[] | null)[] },
  sizes: readonly number[],
): ExpectedParameters {
  const { matchNames, onProgress } = parseLoadOptions(options);
  return { names, sizes, shapes, matchNames, onProgress };
}

/**
 * Swaps a decoded checkpoint's tensors in: the shadows converted to the current storage dtype, the
 * backup in the dtype it was saved in (it holds raw weights exactly), both where the shadows are.
 */
export function installCheckpoint(arenas: EmaArenas, decoded: DecodedCheckpoint, sizes: readonly number[], names: readonly (string | null)[]): void {
  arenas.replace(({ shadows }, track) => {
    const { dtype } = decoded;
    if (shadows.dtype === 'float16' && dtype !== 'float16') {
      checkFloat16Range(sizes.length, (i) => valuesOfBytes(decoded.shadow[i], dtype), (i) => names[i], 'checkpoint shadows');
    }
    const device = shadows.device;
    const nextShadows = track(arenaFromBytes(decoded.dtype, decoded.shadow, sizes, shadows.dtype, device));
    const backup =
      decoded.collected !== null && decoded.collectedDType !== null
        ? track(arenaFromBytes(decoded.collectedDType, decoded.collected, sizes, decoded.collectedDType, device))
        : null;
    return { shadows: nextShadows, backup };
  });
}

const elementBytes = (dtype: StorageDType): number => SAFETENSORS_BYTES[SAFETENSORS_CODE[dtype]];

/** load()'s store: an arena in the file's dtype, written as the file streams in. */
interface ArenaStore extends TensorStore {
  readonly arena: ShadowArena;
}

function arenaStore(arena: ShadowArena): ArenaStore {
  const bytes = elementBytes(arena.dtype);
  // On libuv's pool: the copy (into fresh pages, the slow part of a load) runs while the next chunk is hashed.
  return { arena, write: (index, byteOffset, data) => arena.writeBytesAtAsync(index, byteOffset / bytes, data) };
}

/** A checkpoint streamed into arenas but not yet swapped in: load() installs it; EmaTracks stages every track's first. */
export interface StagedCheckpoint {
  readonly scalars: TrainingScalars;
  /** Swaps the staged arenas in (the replaced ones become spares or are freed). Cannot fail. */
  install(): void;
  /** Gives the staged arenas back (spares to the spares, new ones freed); nothing changes. */
  discard(): void;
}

/**
 * load()'s first half: streams the checkpoint at `path` straight into arenas on the shadows' device
 * (each tensor checked as it arrives), converted to the shadows' dtype (the backup stays in its saved
 * dtype: it holds raw weights exactly), every check made. The arenas are save()'s spare copies when
 * they fit (no fresh pages), else new ones. On any failure nothing changes and nothing is held.
 */
export async function stageCheckpoint(
  arenas: EmaArenas,
  path: string,
  expected: ExpectedParameters,
  shard: ShardLayout | null,
  { sizes, names }: { sizes: readonly number[]; names: readonly (string | null)[] },
): Promise<StagedCheckpoint> {
  const current = arenas.current;
  const device = current?.shadows.device ?? null;
  const made: ShadowArena[] = [];
  const spares = new Map<ShadowArena, ArenaRole>();
  const store = (role: ArenaRole, dtype: StorageDType): ArenaStore => {
    const spare = arenas.takeSpare(role, dtype, device);
    if (spare !== null) spares.set(spare, role);
    else made.push(newShadowArena(dtype, sizes, device));
    return arenaStore(spare ?? made[made.length - 1]);
  };
  const discard = (): void => {
    for (const arena of made) arena.dispose();
    for (const [arena, role] of spares) arenas.reuse(role, arena);
  };
  try {
    const loaded = await loadEmaCheckpoint(path, expected, shard, ({ dtype, collectedDType }) => ({
      shadow: store('shadows', dtype),
      collected: collectedDType && store('backup', collectedDType),
    }));
    const scalars = checkpointScalars(loaded);
    const shadowDType = arenas.current?.shadows.dtype ?? loaded.dtype;
    const file = loaded.shadow.arena;
    if (shadowDType === 'float16' && loaded.dtype !== 'float16') {
      checkFloat16Range(sizes.length, (i) => file.read(i), (i) => names[i], 'checkpoint shadows');
    }
    const shadows = file.dtype === shadowDType ? file : file.cast(shadowDType);
    if (shadows !== file) made.push(shadows);
    const backup = loaded.collected && loaded.collected.arena;
    return {
      scalars,
      install: () => {
        arenas.replace(() => ({ shadows, backup }), new Set(spares.values()));
        for (const arena of [...made, ...spares.keys()]) if (arena !== shadows && arena !== backup) arena.dispose();
      },
      discard,
    };
  } catch (error) {
    discard();
    throw error;
  }
}

/** A checkpoint over copies of the arenas, and what frees the copies. */
export interface CopiedCheckpoint {
  source: CheckpointSource;
  release(): void;
}

/**
 * The checkpoint of this moment over copies of the arenas (each one native copy, in its dtype and
 * on its device, into a spare arena of an earlier save when one fits), so that save() writes the
 * state at its call while updates go on. `release` hands the copies back as spares.
 */
export function copiedCheckpoint(scalars: CheckpointScalars, arenas: EmaArenas): CopiedCheckpoint {
  const shadows = arenas.copy('shadows')!;
  let backup: ShadowArena | null;
  try {
    backup = arenas.copy('backup');
  } catch (error) {
    arenas.reuse('shadows', shadows);
    throw error;
  }
  const release = (): void => {
    arenas.reuse('shadows', shadows);
    if (backup !== null) arenas.reuse('backup', backup);
  };
  return { source: checkpointSource({ ...scalars, names: [...scalars.names] }, { shadows, backup }), release };
}

/**
 * Writes a copied checkpoint to `path` (atomically; with a shard layout, `path` is the prefix of
 * this rank's shard and, from rank 0, the index), then frees the copies however it ends.
 */
export async function saveCopiedCheckpoint(path: string, copy: CopiedCheckpoint, shard: ShardLayout | null, onProgress?: ProgressListener): Promise<void> {
  try {
    await saveEmaCheckpoint(path, copy.source, shard, onProgress);
  } finally {
    copy.release();
  }
}
