// The decay schedules (options.schedule) and training progress (update()'s progress): their types,
// their checks, and EDM2's sigmaRel -> gamma. The decays themselves are in schedule.ts.
import { describe, expectedRangeError, expectedTypeError, invalidArgument, isNonNegativeInteger, refuseUnknownOptions } from './errors';

export interface InverseGammaSchedule { kind: 'inverse-gamma'; gamma?: number; power?: number; minDecay?: number; startStep?: number }
export type PowerFunctionSchedule = ({ kind: 'power-function'; gamma: number } | { kind: 'power-function'; sigmaRel: number }) & { unit?: 'steps' | 'samples' };
export interface HalfLifeSchedule { kind: 'half-life'; halfLife: number; unit: 'steps' | 'samples' | 'seconds'; rampUp?: number }
/** options.schedule (SPEC "Decay schedules and training progress"). */
export type Schedule = 'constant' | 'torch_ema' | InverseGammaSchedule | PowerFunctionSchedule | HalfLifeSchedule;

/** A schedule with every default applied (sigmaRel turned into gamma): what state and checkpoints hold. */
export type ParsedSchedule =
  | { kind: 'constant' }
  | { kind: 'torch_ema' }
  | { kind: 'inverse-gamma'; gamma: number; power: number; minDecay: number; startStep: number }
  | { kind: 'power-function'; gamma: number; unit?: 'samples' } // t counts steps, or samples with unit 'samples'
  | { kind: 'half-life'; halfLife: number; unit: 'steps' | 'samples' | 'seconds'; rampUp: number | null };

/** How much training happened since the last update. */
export interface Progress { steps?: number; samples?: number; seconds?: number }
/** updateAsync()'s progress: also whether to snapshot the parameters (default true; see updateAsync). */
export interface AsyncProgress extends Progress { snapshot?: boolean }
export interface ParsedProgress { steps: number; samples: number | undefined; seconds: number | undefined; snapshot: boolean }

const SIGMA_REL_MAX = Math.sqrt(1 / 12); // 0.28867...: the sigmaRel of gamma -> 0

/** EDM2: the largest real root of g^3 + 7g^2 + (16 - s^-2) g + (12 - s^-2) = 0, for 0 < s < 0.2887. */
export function sigmaRelToGamma(sigmaRel: number): number {
  if (typeof sigmaRel !== 'number') throw expectedTypeError('a number in (0, 0.2887)', 'schedule.sigmaRel', sigmaRel);
  if (!(sigmaRel > 0 && sigmaRel < SIGMA_REL_MAX)) throw expectedRangeError('a number in (0, 0.2887)', 'schedule.sigmaRel', describe(sigmaRel));
  const c = 1 / (sigmaRel * sigmaRel);
  const f = (g: number): number => ((g + 7) * g + (16 - c)) * g + (12 - c);
  // f(0) = 12 - c < 0 here and f grows without bound, so the largest root is the one in (0, hi].
  let lo = 0;
  let hi = 1;
  while (f(hi) < 0) hi *= 2;
  for (let i = 0; i < 200 && hi - lo > 1e-15 * hi; i++) {
    const mid = (lo + hi) / 2;
    if (f(mid) < 0) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}

function positive(value: unknown, name: string): number {
  if (typeof value !== 'number') throw expectedTypeError('a positive number', name, value);
  if (!(value > 0 && value < Infinity)) throw expectedRangeError('a positive finite number', name, describe(value));
  return value;
}

function inRange(value: unknown, fallback: number, name: string, lo: number, hi: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number') throw expectedTypeError(`a number in [${lo}, ${hi}]`, name, value);
  if (!(value >= lo && value <= hi)) throw expectedRangeError(`a number in [${lo}, ${hi}]`, name, describe(value));
  return value;
}

function refuseUnknownKeys(o: object, allowed: readonly string[], kind: string): void {
  for (const key of Object.keys(o)) {
    if (!allowed.includes(key)) throw invalidArgument(`Unknown option schedule.${key} for schedule kind ${JSON.stringify(kind)} (allowed: ${allowed.join(', ')})`);
  }
}

const EXPECTED_SCHEDULE = "'constant', 'torch_ema', or { kind: 'inverse-gamma' | 'power-function' | 'half-life', ... }";

/** Checks options.schedule (or a state's schedule: `name` says which) and applies its defaults. */
export function parseSchedule(value: unknown, name = 'schedule'): ParsedSchedule {
  if (value === 'constant' || value === 'torch_ema') return { kind: value };
  if (typeof value !== 'object' || value === null) throw expectedTypeError(EXPECTED_SCHEDULE, name, value);
  const o = value as Record<string, unknown>;
  switch (o.kind) {
    case 'constant':
    case 'torch_ema':
      refuseUnknownKeys(o, ['kind'], o.kind);
      return { kind: o.kind };
    case 'inverse-gamma': {
      refuseUnknownKeys(o, ['kind', 'gamma', 'power', 'minDecay', 'startStep'], o.kind);
      const gamma = o.gamma === undefined ? 1 : positive(o.gamma, `${name}.gamma`);
      const power = o.power === undefined ? 2 / 3 : positive(o.power, `${name}.power`);
      const minDecay = inRange(o.minDecay, 0, `${name}.minDecay`, 0, 1);
      const startStep = o.startStep ?? 0;
      if (!isNonNegativeInteger(startStep)) throw expectedTypeError('a non-negative integer', `${name}.startStep`, startStep);
      return { kind: 'inverse-gamma', gamma, power, minDecay, startStep };
    }
    case 'power-function': {
      refuseUnknownKeys(o, ['kind', 'gamma', 'sigmaRel', 'unit'], o.kind);
      if ((o.gamma === undefined) === (o.sigmaRel === undefined)) {
        throw invalidArgument(`Expected exactly one of ${name}.gamma and ${name}.sigmaRel for schedule kind 'power-function' but received ${o.gamma === undefined ? 'neither' : 'both'}`);
      }
      if (o.unit !== undefined && o.unit !== 'steps' && o.unit !== 'samples') throw expectedTypeError("'steps' or 'samples'", `${name}.unit`, o.unit);
      const gamma = o.sigmaRel !== undefined ? sigmaRelToGamma(o.sigmaRel as number) : positive(o.gamma, `${name}.gamma`);
      return o.unit === 'samples' ? { kind: 'power-function', gamma, unit: 'samples' } : { kind: 'power-function', gamma };
    }
    case 'half-life': {
      refuseUnknownKeys(o, ['kind', 'halfLife', 'unit', 'rampUp'], o.kind);
      const halfLife = positive(o.halfLife, `${name}.halfLife`);
      if (o.unit !== 'steps' && o.unit !== 'samples' && o.unit !== 'seconds') {
        throw expectedTypeError("'steps', 'samples' or 'seconds'", `${name}.unit`, o.unit);
      }
      const rampUp = o.rampUp === undefined || o.rampUp === null ? null : positive(o.rampUp, `${name}.rampUp`);
      return { kind: 'half-life', halfLife, unit: o.unit, rampUp };
    }
    default:
      throw expectedTypeError(EXPECTED_SCHEDULE, `${name}.kind`, o.kind);
  }
}

/** The schedule from options.schedule and options.useNumUpdates (which must agree when both are given). */
export function scheduleFromOptions(schedule: unknown, useNumUpdates: unknown): ParsedSchedule {
  if (useNumUpdates !== undefined && typeof useNumUpdates !== 'boolean') throw expectedTypeError('a boolean', 'useNumUpdates', useNumUpdates);
  if (schedule === undefined) return { kind: useNumUpdates === false ? 'constant' : 'torch_ema' };
  const parsed = parseSchedule(schedule);
  if (useNumUpdates !== undefined && useNumUpdates !== (parsed.kind === 'torch_ema')) {
    throw invalidArgument(
      `useNumUpdates: ${useNumUpdates} disagrees with schedule ${describeSchedule(parsed)}: useNumUpdates true goes only with ` +
        "schedule 'torch_ema', false only with another schedule; omit useNumUpdates when giving a schedule",
    );
  }
  return parsed;
}

export function describeSchedule(schedule: ParsedSchedule): string {
  return schedule.kind === 'constant' || schedule.kind === 'torch_ema' ? `'${schedule.kind}'` : JSON.stringify(schedule);
}

function amount(value: unknown, name: string): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'number') throw expectedTypeError('a non-negative finite number', name, value);
  if (!(value >= 0 && value < Infinity)) throw expectedRangeError('a non-negative finite number', name, describe(value));
  return value;
}

/** update()'s progress: { steps = 1, samples?, seconds? }. */
export function parseProgress(progress: unknown, operation: string): ParsedProgress {
  if (progress === undefined) return { steps: 1, samples: undefined, seconds: undefined, snapshot: true };
  if (typeof progress !== 'object' || progress === null) throw expectedTypeError('{ steps?, samples?, seconds? }', `${operation} progress`, progress);
  // updateAsync() also takes `snapshot` (SPEC).
  const isAsync = operation === 'updateAsync()';
  refuseUnknownOptions(progress, isAsync ? ['steps', 'samples', 'seconds', 'snapshot'] : ['steps', 'samples', 'seconds'], `${operation} progress`);
  const snapshot = (progress as { snapshot?: unknown }).snapshot;
  if (isAsync && snapshot !== undefined && typeof snapshot !== 'boolean') throw expectedTypeError('a boolean', `${operation} progress.snapshot`, snapshot);
  const p = progress as Record<string, unknown>;
  const steps = p.steps ?? 1;
  if (!isNonNegativeInteger(steps)) throw expectedTypeError('a non-negative integer', `${operation} progress.steps`, steps);
  return { steps, samples: amount(p.samples, `${operation} progress.samples`), seconds: amount(p.seconds, `${operation} progress.seconds`), snapshot: snapshot !== false };
}
