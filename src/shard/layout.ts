// options.shard: which parameters this rank keeps. Every rank computes the same assignment from
// the full parameter list alone (no communication): largest first, each to the least-loaded rank
// by element count, ties to the lower rank (and equal sizes in list order).
import { parameterKeys } from '../checkpoint/checkpoint_format';
import { describe, expectedRangeError, expectedTypeError, invalidArgument, refuseUnknownOptions } from '../errors';
import { parameterLabel, ResolvedParameters, toEntry, type ParameterEntry } from '../parameters';

export interface ShardOptions {
  /** This process's rank, an integer in [0, worldSize - 1]. */
  rank: number;
  /** Number of ranks, an integer in [1, 99999] (checkpoint file names have 5 digits). */
  worldSize: number;
}

/** What `ema.shardInfo` tells: this rank's share of the full parameter list. */
export interface ShardInfo {
  rank: number;
  worldSize: number;
  /** Positions (in the full parameter list) of the parameters this rank keeps, ascending. */
  indices: readonly number[];
  /** Elements this rank keeps. */
  elements: number;
  totalParameters: number;
  totalElements: number;
}

export const MAX_WORLD_SIZE = 99999;

/** options.shard, checked; `nonFinite` is the parsed policy (skip-update cannot be decided by one rank). */
export function parseShardOption(value: unknown, nonFinite: string | undefined): ShardOptions | null {
  if (value === undefined) return null;
  if (typeof value !== 'object' || value === null) throw expectedTypeError('{ rank, worldSize }', 'shard', value);
  refuseUnknownOptions(value, ['rank', 'worldSize'], 'options.shard');
  const { rank, worldSize } = value as Partial<Record<keyof ShardOptions, unknown>>;
  if (typeof worldSize !== 'number') throw expectedTypeError(`an integer in [1, ${MAX_WORLD_SIZE}]`, 'shard.worldSize', worldSize);
  if (!(Number.isInteger(worldSize) && worldSize >= 1 && worldSize <= MAX_WORLD_SIZE)) {
    throw expectedRangeError(`an integer in [1, ${MAX_WORLD_SIZE}]`, 'shard.worldSize', describe(worldSize));
  }
  if (typeof rank !== 'number') throw expectedTypeError(`an integer in [0, ${worldSize - 1}]`, 'shard.rank', rank);
  if (!(Number.isInteger(rank) && rank >= 0 && rank < worldSize)) {
    throw expectedRangeError(`an integer in [0, ${worldSize - 1}] (worldSize is ${worldSize})`, 'shard.rank', describe(rank));
  }
  if (nonFinite === 'skip-update') {
    throw invalidArgument(
      "nonFinite 'skip-update' cannot be used with shard: each rank sees only its own parameters, so ranks would skip different updates and their counters drift apart; use 'skip-element' or 'propagate'",
    );
  }
  return { rank, worldSize };
}

/** The rank of each parameter: largest first, to the least-loaded rank, ties to the lower rank. */
export function assignRanks(sizes: readonly number[], worldSize: number): number[] {
  const order = sizes.map((_, i) => i).sort((a, b) => sizes[b] - sizes[a] || a - b);
  const load = new Array<number>(worldSize).fill(0);
  const owner = new Array<number>(sizes.length);
  for (const index of order) {
    let best = 0;
    for (let r = 1; r < worldSize; r++) if (load[r] < load[best]) best = r;
    owner[index] = best;
    load[best] += sizes[index];
  }
  return owner;
}

/** The full parameter list as every rank sees it (names, sizes, shapes, checkpoint keys) and this rank's part. */
export class ShardLayout {
  readonly rank: number;
  readonly worldSize: number;
  readonly names: readonly (string | null)[];
  readonly sizes: readonly number[];
  readonly shapes: readonly (readonly number[] | null)[];
  /** Checkpoint keys of the full list (tensor `shadow.<key>`), unique. */
  readonly keys: readonly string[];
  /** Rank of each parameter. */
  readonly owner: readonly number[];
  /** This rank's parameters' positions in the full list, ascending. */
  readonly own: readonly number[];
  readonly info: ShardInfo;

  constructor({ rank, worldSize }: ShardOptions, all: readonly ParameterEntry[], numel: (entry: ParameterEntry) => number) {
    this.rank = rank;
    this.worldSize = worldSize;
    this.names = Object.freeze(all.map((e) => e.name ?? null));
    this.sizes = Object.freeze(all.map(numel));
    this.shapes = Object.freeze(all.map((e) => e.shape ?? null));
    this.keys = Object.freeze(parameterKeys(this.names));
    this.owner = Object.freeze(assignRanks(this.sizes, worldSize));
    this.own = Object.freeze(this.owner.flatMap((r, i) => (r === rank ? [i] : [])));
    const sum = (indices: readonly number[]): number => indices.reduce((n, i) => n + this.sizes[i], 0);
    this.info = Object.freeze({
      rank, worldSize, indices: this.own, elements: sum(this.own), totalParameters: all.length, totalElements: sum(this.sizes.map((_, i) => i)),
    });
  }

  /** This rank's items of a full list. */
  pick<T>(all: readonly T[]): T[] {
    return this.own.map((i) => all[i]);
  }

  /**
   * This rank's parameters out of a full list passed to a method: the count is checked against the
   * full list, and only this rank's parameters are classified and size-checked (errors give their
   * position in the full list).
   */
  resolve(parameters: unknown, operation: string): ResolvedParameters {
    return new ResolvedParameters(this.#select(parameters, operation), this.pick(this.sizes), 'parameters');
  }

  #select(parameters: unknown, operation: string): ParameterEntry[] {
    if (parameters === null || typeof parameters !== 'object' || typeof (parameters as Iterable<unknown>)[Symbol.iterator] !== 'function' || ArrayBuffer.isView(parameters)) {
      throw expectedTypeError('an iterable of parameters', 'parameters', parameters);
    }
    const list = Array.from(parameters as Iterable<unknown>);
    if (list.length !== this.sizes.length) {
      throw expectedRangeError(
        `the full list of ${this.sizes.length} parameters (with shard, every rank passes all of them; this is rank ${this.rank} of ${this.worldSize})`,
        `parameters of ${operation}`,
        String(list.length),
      );
    }
    return this.own.map((i) => {
      const entry = toEntry(list[i], `parameters[${i}]`); // refuses unusable values
      const name = entry.name ?? this.names[i] ?? undefined;
      const numel = entry.kind.numel(entry.value);
      // 0 elements: lost contents, which ResolvedParameters reports as such.
      if (numel !== this.sizes[i] && numel !== 0) {
        throw expectedRangeError(`${this.sizes[i]} elements (the size of its shadow)`, `${parameterLabel(i, name)} of parameters`, String(numel));
      }
      return { ...entry, name };
    });
  }
}
