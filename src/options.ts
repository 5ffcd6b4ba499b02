// The options the public methods take: their types and their checks. Each parser checks in the order
// the EMA always has, and throws an error naming the option and the value received.
import type { ProgressListener } from './checkpoint/checkpoint_format';
import { assertDeviceAvailable, type Device, parseDevice } from './device';
import { parseStorageDType, type StorageDType } from './dtypes';
import { checkUnitInterval, describe, expectedRangeError, expectedTypeError, invalidArgument, isNonNegativeInteger, refuseUnknownOptions } from './errors';
import type { UpdateDescription } from './native';
import { parsePublishEvery } from './publish/publisher';
import { scheduleFromOptions, type ParsedSchedule, type Schedule } from './schedule_options';
import { parseShardOption, type ShardOptions } from './shard/layout';

export interface EmaOptions {
  /** Weight of the old average in each update, in [0, 1] (typical: 0.999 or 0.9999). */
  decay: number;
  /** Warm up with min(decay, (1 + n) / (10 + n)) over the first updates. Default true. With a schedule: omit it, or make it agree. */
  useNumUpdates?: boolean;
  /** The decay schedule; `decay` is its upper bound. Default 'torch_ema' ('constant' with useNumUpdates false). */
  schedule?: Schedule;
  /** Storage of the shadows. Default 'float32'. Arithmetic is float32 or wider regardless. */
  dtype?: StorageDType;
  /** Where the shadows live. Default 'cpu'. */
  device?: Device;
  /**
   * What an update does with NaN or infinite parameter elements. 'propagate' (default, as
   * torch_ema): they flow into the shadows. 'skip-update': the whole update is skipped (no shadow
   * and no counter changes). 'skip-element': those elements keep their shadows, the rest update.
   * `nonFiniteStats` counts what was skipped.
   */
  nonFinite?: NonFinitePolicy;
  /**
   * How float16/bfloat16 shadows are rounded: 'nearest' (default) or 'stochastic' (unbiased: keeps
   * a low-precision average moving where nearest rounding freezes it). Only with such a dtype.
   */
  rounding?: RoundingMode;
  /** Stochastic rounding's seed, an integer in [0, 2^53 - 1]. Default 0. */
  seed?: number;
  /** Publish (see publish()) after every this many updates. Default: only when publish() is called. */
  publishEvery?: number;
  /** Data-parallel ranks: keep only this rank's share of the parameters (see `shardInfo`); save() takes a prefix. */
  shard?: ShardOptions;
}

export type NonFinitePolicy = 'propagate' | 'skip-update' | 'skip-element';
export type RoundingMode = 'nearest' | 'stochastic';
const NON_FINITE_POLICIES: readonly NonFinitePolicy[] = ['propagate', 'skip-update', 'skip-element'];
const ROUNDING_MODES: readonly RoundingMode[] = ['nearest', 'stochastic'];

export interface LoadOptions {
  /** Default true: the file's parameter names must equal this EMA's. False: match by position. */
  matchNames?: boolean;
  /** load(): called with `{ file, bytes, totalBytes }` as tensor data is read; a throw aborts the load (nothing changes). */
  onProgress?: ProgressListener;
}

export interface SaveOptions {
  /** Called with `{ file, bytes, totalBytes }` after each tensor is written; a throw aborts the save (the old file stays). */
  onProgress?: ProgressListener;
}

export interface ToOptions {
  device?: Device;
  dtype?: StorageDType;
}

/**
 * The per-element options of every update: the fields of the native UpdateDescription other than
 * the decay, which the schedule computes per update. A new per-element option is parsed here and
 * reaches the kernels without touching ema.ts or schedule.ts (nextUpdate spreads it in).
 */
export type PerElementOptions = Omit<UpdateDescription, 'decay'>;

/** What parseEmaOptions returns. */
export interface ParsedEmaOptions extends Required<Pick<EmaOptions, 'decay' | 'dtype' | 'device'>> {
  schedule: ParsedSchedule;
  perElement: PerElementOptions;
  publishEvery: number | undefined;
  shard: ShardOptions | null;
}

export const EMA_OPTION_KEYS = ['decay', 'useNumUpdates', 'schedule', 'dtype', 'device', 'nonFinite', 'rounding', 'seed', 'publishEvery', 'shard'] as const satisfies readonly (keyof EmaOptions)[];
const TO_OPTION_KEYS = ['device', 'dtype'] as const satisfies readonly (keyof ToOptions)[];

/** The constructor's options with defaults applied; the device is known to be available. */
export function parseEmaOptions(options: unknown): ParsedEmaOptions {
  if (typeof options !== 'object' || options === null) throw expectedTypeError('an options object with decay', 'options', options);
  refuseUnknownOptions(options, EMA_OPTION_KEYS, 'options');
  const o = options as Partial<Record<keyof EmaOptions, unknown>>;
  const decay = checkUnitInterval(o.decay, 'decay');
  const schedule = scheduleFromOptions(o.schedule, o.useNumUpdates);
  const dtype = o.dtype === undefined ? 'float32' : parseStorageDType(o.dtype, 'dtype');
  const device = o.device === undefined ? 'cpu' : parseDevice(o.device, 'device');
  const perElement = parsePerElement(o, dtype);
  const publishEvery = parsePublishEvery(o.publishEvery);
  const shard = parseShardOption(o.shard, perElement.nonFinite);
  assertDeviceAvailable(device);
  return { decay, schedule, dtype, device, perElement, publishEvery, shard };
}

function oneOf<T extends string>(value: unknown, choices: readonly T[], fallback: T, option: string): T {
  if (value === undefined) return fallback;
  const expected = `one of ${choices.map((c) => `'${c}'`).join(', ')}`;
  if (typeof value !== 'string') throw expectedTypeError(expected, option, value);
  if (!(choices as readonly string[]).includes(value)) throw expectedRangeError(expected, option, describe(value));
  return value as T;
}

// nonFinite, rounding and seed: what every update passes to the kernels besides its decay.
function parsePerElement(o: Partial<Record<keyof EmaOptions, unknown>>, dtype: StorageDType): PerElementOptions {
  const nonFinite = oneOf(o.nonFinite, NON_FINITE_POLICIES, 'propagate', 'nonFinite');
  const rounding = oneOf(o.rounding, ROUNDING_MODES, 'nearest', 'rounding');
  if (rounding === 'stochastic' && dtype !== 'float16' && dtype !== 'bfloat16') {
    throw invalidArgument(`rounding 'stochastic' needs dtype 'float16' or 'bfloat16' (float32 and float64 shadows hold the average as computed), but dtype is '${dtype}'`);
  }
  const seed = o.seed ?? 0;
  if (typeof seed !== 'number') throw expectedTypeError('an integer in [0, 2^53 - 1]', 'seed', seed);
  if (!isNonNegativeInteger(seed)) throw expectedRangeError('an integer in [0, 2^53 - 1]', 'seed', describe(seed));
  // Defaults are left out: the addon reads an absent field as its default, fastest.
  const perElement: PerElementOptions = {};
  if (nonFinite !== 'propagate') perElement.nonFinite = nonFinite;
  if (rounding === 'stochastic') Object.assign(perElement, { rounding, seed });
  return perElement;
}

/** to()'s target: each option defaults to where the shadows are now. */
export function parseToOptions(options: unknown, current: Required<ToOptions>): Required<ToOptions> {
  if (typeof options !== 'object' || options === null) throw expectedTypeError('{ device?, dtype? }', 'options', options);
  refuseUnknownOptions(options, TO_OPTION_KEYS, 'options');
  const o = options as Partial<Record<keyof ToOptions, unknown>>;
  const device = o.device === undefined ? current.device : parseDevice(o.device, 'device');
  const dtype = o.dtype === undefined ? current.dtype : parseStorageDType(o.dtype, 'dtype');
  assertDeviceAvailable(device);
  return { device, dtype };
}

function checkProgressListener(value: unknown): ProgressListener | undefined {
  if (value !== undefined && typeof value !== 'function') throw expectedTypeError('a function', 'options.onProgress', value);
  return value as ProgressListener | undefined;
}

/** load()'s and deserialize()'s options (deserialize() reads no file: it has no progress to report). */
export function parseLoadOptions(options: unknown): { matchNames: boolean; onProgress: ProgressListener | undefined } {
  if (options !== undefined && (typeof options !== 'object' || options === null)) {
    throw expectedTypeError('{ matchNames?: boolean, onProgress?: function }', 'options', options);
  }
  if (options !== undefined) refuseUnknownOptions(options, ['matchNames', 'onProgress'], 'options');
  const matchNames = (options as LoadOptions | undefined)?.matchNames ?? true;
  if (typeof matchNames !== 'boolean') throw expectedTypeError('a boolean', 'options.matchNames', matchNames);
  return { matchNames, onProgress: checkProgressListener((options as LoadOptions | undefined)?.onProgress) };
}

/** save()'s path and options. */
export function parseSaveOptions(path: unknown, options: unknown): { onProgress: ProgressListener | undefined } {
  checkFilePath(path);
  if (options === undefined) return { onProgress: undefined };
  if (typeof options !== 'object' || options === null) throw expectedTypeError('{ onProgress?: function }', 'options', options);
  refuseUnknownOptions(options, ['onProgress'], 'options');
  return { onProgress: checkProgressListener((options as SaveOptions).onProgress) };
}

/** save()'s and load()'s path. */
export function checkFilePath(path: unknown): string {
  if (typeof path !== 'string' || path === '') throw expectedTypeError('a file path', 'path', path);
  return path;
}
