// The schedule and counters as state (stateDict(), checkpoints): checked together with numUpdates. A
// state written before schedules existed has none, and means 'torch_ema' or 'constant' by its numUpdates.
import { describe, expectedRangeError, expectedTypeError, invalidArgument, isNonNegativeInteger } from './errors';
import type { Counters } from './schedule';
import { describeSchedule, parseSchedule, type ParsedSchedule } from './schedule_options';

export interface ScheduleState {
  schedule: ParsedSchedule;
  counters: Counters;
}

/** The counters' fields as state holds them; absent in a state from before schedules. */
export interface CounterFields {
  step?: unknown;
  samples?: unknown;
  seconds?: unknown;
}

function amount(value: unknown, name: string): number {
  if (value === undefined) return 0;
  if (typeof value !== 'number') throw expectedTypeError('a non-negative finite number', name, value);
  if (!(value >= 0 && value < Infinity)) throw expectedRangeError('a non-negative finite number', name, describe(value));
  return value;
}

/** Checks a state's schedule and counters against its (already checked) numUpdates. `where`: 'state', 'checkpoint'. */
export function checkScheduleState(schedule: unknown, numUpdates: number | null, fields: CounterFields, where: string): ScheduleState {
  const parsed: ParsedSchedule =
    schedule === undefined || schedule === null ? { kind: numUpdates === null ? 'constant' : 'torch_ema' } : parseSchedule(schedule, `${where}.schedule`);
  if ((parsed.kind === 'torch_ema') !== (numUpdates !== null)) {
    throw invalidArgument(
      `${where}.numUpdates ${numUpdates === null ? 'null' : numUpdates} disagrees with ${where}.schedule ${describeSchedule(parsed)}: ` +
        "numUpdates is a number with schedule 'torch_ema' only, null with any other",
    );
  }
  const step = fields.step ?? numUpdates ?? 0;
  if (!isNonNegativeInteger(step)) throw expectedTypeError('a non-negative integer', `${where}.step`, step);
  const samples = amount(fields.samples, `${where}.samples`);
  const seconds = amount(fields.seconds, `${where}.seconds`);
  return { schedule: parsed, counters: { numUpdates, step, samples, seconds } };
}
