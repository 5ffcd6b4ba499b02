// The EMA's state as plain data (stateDict() / loadStateDict()), and its validation. Validation
// returns a normalised copy or throws naming the field and index; the EMA applies it only after
// (installStateDict).
import { backupOf, type CurrentArenas, type EmaArenas } from './arenas';
import { parseStorageDType, type StorageDType } from './dtypes';
import { checkFloat16Range } from './float16_range';
import { checkUnitInterval, expectedRangeError, expectedTypeError } from './errors';
import type { ParsedSchedule, Schedule } from './schedule_options';
import { checkScheduleState } from './schedule_state';
import { checkParameterName, isValidNumUpdates } from './state_rules';
import type { NonFiniteStats, TrainingScalars } from './training_state';
import { isParamArray, type ParamArray } from './parameter_kinds';

export interface EmaStateDict {
  decay: number;
  /** Updates so far with warm-up on; null when warm-up is off. */
  numUpdates: number | null;
  /** One copy per parameter: Float64Array for float64 storage, Float32Array otherwise (exact). */
  shadowParams: ParamArray[];
  /** The store()d backup, in the parameters' precision, or null when nothing is stored. */
  collectedParams: ParamArray[] | null;
  /** Each parameter's name, or null for unnamed ones. Informational: loading does not match names. */
  names: (string | null)[];
  /** The storage dtype the shadows were in. Informational: loading converts to the EMA's dtype. */
  dtype: StorageDType;
  /** The decay schedule (defaults applied). Absent in a state from before schedules: 'torch_ema' or 'constant' by numUpdates. */
  schedule?: ParsedSchedule | Schedule;
  /** Steps, samples and seconds of training so far (absent: numUpdates ?? 0, 0, 0). */
  step?: number;
  samples?: number;
  seconds?: number;
  /** What the non-finite guard skipped so far (absent: zeros). */
  nonFiniteStats?: NonFiniteStats;
}

/** A checked state dict: every field present, the schedule and counters normalised. */
export type ValidStateDict = Omit<EmaStateDict, 'schedule' | 'step' | 'samples' | 'seconds' | 'nonFiniteStats'> & TrainingScalars;

function checkNonFiniteStats(value: unknown): NonFiniteStats {
  if (value === undefined) return { skippedUpdates: 0, skippedElements: 0 };
  if (typeof value !== 'object' || value === null) throw expectedTypeError('{ skippedUpdates, skippedElements }', 'state.nonFiniteStats', value);
  const v = value as Partial<Record<keyof NonFiniteStats, unknown>>;
  const count = (key: keyof NonFiniteStats): number => {
    if (!isValidNumUpdates(v[key])) throw expectedTypeError('a non-negative integer', `state.nonFiniteStats.${key}`, v[key]);
    return v[key] as number;
  };
  return { skippedUpdates: count('skippedUpdates'), skippedElements: count('skippedElements') };
}

function checkTensorList(value: unknown, field: string, sizes: readonly number[]): ParamArray[] {
  if (!Array.isArray(value)) throw expectedTypeError('an array of Float32Array or Float64Array', field, value);
  if (value.length !== sizes.length) {
    throw expectedRangeError(`${sizes.length} tensors (one per parameter)`, field, String(value.length));
  }
  return value.map((tensor: unknown, i) => {
    if (!isParamArray(tensor)) {
      throw expectedTypeError('a Float32Array or Float64Array', `${field}[${i}]`, tensor);
    }
    if (tensor.length !== sizes[i]) {
      throw expectedRangeError(`${sizes[i]} elements`, `${field}[${i}]`, String(tensor.length));
    }
    return tensor;
  });
}

/** Checks every field of a state dict against an EMA with these tensor sizes. */
export function validateStateDict(state: unknown, sizes: readonly number[]): ValidStateDict {
  if (typeof state !== 'object' || state === null) throw expectedTypeError('a state dict object', 'state', state);
  const s = state as Partial<Record<keyof EmaStateDict, unknown>>;
  const decay = checkUnitInterval(s.decay, 'state.decay');
  const numUpdates = s.numUpdates;
  if (numUpdates !== null && !isValidNumUpdates(numUpdates)) {
    throw expectedTypeError('null or a non-negative integer', 'state.numUpdates', numUpdates);
  }
  const { schedule, counters } = checkScheduleState(s.schedule, numUpdates, s, 'state');
  const nonFiniteStats = checkNonFiniteStats(s.nonFiniteStats);
  const shadowParams = checkTensorList(s.shadowParams, 'state.shadowParams', sizes);
  const collectedParams =
    s.collectedParams === null || s.collectedParams === undefined
      ? null
      : checkTensorList(s.collectedParams, 'state.collectedParams', sizes);
  const dtype = s.dtype === undefined ? 'float32' : parseStorageDType(s.dtype, 'state.dtype');
  let names: (string | null)[] = sizes.map(() => null);
  if (s.names !== undefined) {
    if (!Array.isArray(s.names) || s.names.length !== sizes.length) {
      throw expectedTypeError(`an array of ${sizes.length} names (string or null)`, 'state.names', s.names);
    }
    s.names.forEach((name: unknown, i) => {
      if (name !== null && typeof name !== 'string') throw expectedTypeError('a string or null', `state.names[${i}]`, name);
      checkParameterName(name, `state.names[${i}]`);
    });
    names = s.names as (string | null)[];
  }
  return { decay, numUpdates, shadowParams, collectedParams, names, dtype, schedule, counters, nonFiniteStats };
}

/** The state as copies the caller owns (never views of native memory). */
export function stateDictOf(
  scalars: Pick<EmaStateDict, 'names'> & TrainingScalars,
  { shadows, backup }: CurrentArenas,
  sizes: readonly number[],
): EmaStateDict {
  return {
    decay: scalars.decay,
    numUpdates: scalars.counters.numUpdates,
    shadowParams: sizes.map((_, i) => shadows.read(i)),
    collectedParams: backup === null ? null : sizes.map((_, i) => backup.read(i)),
    names: scalars.names,
    dtype: shadows.dtype,
    schedule: { ...scalars.schedule },
    step: scalars.counters.step,
    samples: scalars.counters.samples,
    seconds: scalars.counters.seconds,
    nonFiniteStats: { ...scalars.nonFiniteStats },
  };
}

/** Writes a validated state's tensors into the arenas: shadows converted in place, a new backup (or none). */
export function installStateDict(arenas: EmaArenas, valid: ValidStateDict, sizes: readonly number[]): void {
  arenas.replace(({ shadows }, track) => {
    if (shadows.dtype === 'float16') checkFloat16Range(sizes.length, (i) => valid.shadowParams[i], (i) => valid.names[i], 'state.shadowParams');
    const backup = valid.collectedParams && track(backupOf(valid.collectedParams, shadows.dtype, sizes, shadows.device));
    shadows.copyFrom(valid.shadowParams);
    return { backup };
  });
}
