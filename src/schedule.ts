// The decay schedule: pure functions of the schedule, the EMA's decay (the upper bound), the counters
// and the progress of one update. What one update applies is an UpdateDescription, handed as it is to
// the native update (arenas.ts's updateShadows): one decay per update, computed here in float64 as the
// product of the per-step decays of the k steps it covers (SPEC "Decay schedules and training progress").
import { invalidArgument } from './errors';
import type { UpdateDescription } from './native';
import { parseProgress, type ParsedSchedule } from './schedule_options';
import { MAX_NUM_UPDATES } from './state_rules';
export type { UpdateDescription };

/** Training progress so far: state, checkpointed. numUpdates is torch_ema's counter (null for other schedules). */
export interface Counters {
  numUpdates: number | null;
  step: number;
  samples: number;
  seconds: number;
}

/** One update's progress, every input fixed: seconds is the given value or the clock's. */
export interface UpdateProgress {
  steps: number;
  samples: number | undefined;
  seconds: number;
  /** updateAsync(): false reads SharedArrayBuffer-backed parameters in place (see ema.ts). */
  snapshot?: boolean;
}

export function initialCounters(schedule: ParsedSchedule): Counters {
  return { numUpdates: schedule.kind === 'torch_ema' ? 0 : null, step: 0, samples: 0, seconds: 0 };
}

/**
 * The product over the integers i in [lo, hi] of min(bound, f(i)), for a nondecreasing f whose
 * product over [a, b] is closed(a, b): f below the bound up to some c, the bound from c on.
 */
function boundedProduct(lo: number, hi: number, bound: number, f: (i: number) => number, closed: (a: number, b: number) => number): number {
  if (hi < lo) return 1;
  if (hi === lo) return Math.min(bound, f(lo)); // one step: the formula itself, bit for bit
  let first = lo;
  let last = hi + 1; // the first i with f(i) >= bound is in [first, last]
  while (first < last) {
    const mid = Math.floor((first + last) / 2);
    if (f(mid) >= bound) last = mid;
    else first = mid + 1;
  }
  return (first > lo ? closed(lo, first - 1) : 1) * bound ** (hi - first + 1);
}

function loopProduct(f: (i: number) => number): (a: number, b: number) => number {
  return (a, b) => {
    let product = 1;
    for (let i = a; i <= b && product !== 0; i++) product *= f(i);
    return product;
  };
}

const torchEma = (n: number): number => (1 + n) / (10 + n);
// prod_{n=a..b} (1 + n) / (10 + n) telescopes to prod_{j=1..9} (a + j) / (b + 1 + j).
function torchEmaProduct(a: number, b: number): number {
  let product = 1;
  for (let j = 1; j <= 9; j++) product *= (a + j) / (b + 1 + j);
  return product;
}

// H(n) - H(m), harmonic numbers, for n > m >= 100000 (asymptotic series; error far below 1e-20).
function harmonicDifference(m: number, n: number): number {
  const tail = (x: number): number => 1 / (2 * x) - 1 / (12 * x * x) + 1 / (120 * x ** 4);
  return Math.log1p((n - m) / m) + tail(n) - tail(m);
}

/** The decay of an update covering `progress`, given the counters before it. */
export function decayOf(schedule: ParsedSchedule, decay: number, before: Counters, progress: UpdateProgress): number {
  const k = progress.steps;
  const s0 = before.step;
  switch (schedule.kind) {
    case 'constant':
      return decay ** k;
    case 'torch_ema': {
      const n0 = before.numUpdates ?? 0;
      const hi = Math.min(n0 + k, MAX_NUM_UPDATES);
      return boundedProduct(n0 + 1, hi, decay, torchEma, torchEmaProduct) * decay ** (n0 + k - hi);
    }
    case 'inverse-gamma': {
      const { gamma, power, minDecay, startStep } = schedule;
      const f = (step: number): number => {
        const j = Math.max(0, step - startStep - 1);
        return j === 0 ? 0 : Math.max(minDecay, 1 - (1 + j / gamma) ** -power);
      };
      return boundedProduct(s0 + 1, s0 + k, decay, f, loopProduct(f));
    }
    case 'power-function': {
      const e = schedule.gamma + 1;
      if (schedule.unit === 'samples') {
        // t counts samples: (1 - dt / t)^e for the samples this update covers, exact for any dt.
        const dt = progress.samples!;
        const t = before.samples + dt;
        return Math.min(decay ** k, dt === 0 ? 1 : ((t - dt) / t) ** e);
      }
      // prod_{t=a..b} (1 - 1/t)^e telescopes to ((a - 1) / b)^e.
      return boundedProduct(s0 + 1, s0 + k, decay, (t) => (1 - 1 / t) ** e, (a, b) => ((a - 1) / b) ** e);
    }
    case 'half-life': {
      const { halfLife, rampUp, unit } = schedule;
      const h = (t: number): number => (rampUp === null ? halfLife : Math.min(halfLife, rampUp * t));
      if (unit === 'steps') {
        const f = (t: number): number => 0.5 ** (1 / h(t));
        const ramped = rampUp === null ? 0 : Math.ceil(halfLife / rampUp); // from here on h(t) = halfLife
        // prod 0.5^(1 / h(t)) = 0.5^(sum 1 / h(t)): 1 / (rampUp * t) while ramping up, then 1 / halfLife.
        const closed = (a: number, b: number): number => {
          const end = Math.min(b, ramped - 1);
          const direct = Math.min(end, a + 100_000);
          let sum = 0;
          for (let t = a; t <= direct; t++) sum += 1 / (rampUp! * t);
          if (end > direct) sum += harmonicDifference(direct, end) / rampUp!;
          return 0.5 ** (sum + Math.max(0, b - Math.max(a, ramped) + 1) / halfLife);
        };
        return boundedProduct(s0 + 1, s0 + k, decay, f, closed);
      }
      const dt = unit === 'samples' ? progress.samples! : progress.seconds;
      const t = (unit === 'samples' ? before.samples : before.seconds) + dt;
      return Math.min(decay ** k, dt === 0 ? 1 : 0.5 ** (dt / h(t)));
    }
  }
}

/** The counters after an update covering `progress`. */
export function advance(schedule: ParsedSchedule, before: Counters, progress: UpdateProgress): Counters {
  return {
    numUpdates: schedule.kind === 'torch_ema' ? Math.min((before.numUpdates ?? 0) + progress.steps, MAX_NUM_UPDATES) : null,
    // Saturating, as numUpdates does, so every state stays savable (integers up to 2^53 - 1, finite numbers).
    step: Math.min(before.step + progress.steps, MAX_NUM_UPDATES),
    samples: Math.min(before.samples + (progress.samples ?? 0), Number.MAX_VALUE),
    seconds: Math.min(before.seconds + progress.seconds, Number.MAX_VALUE),
  };
}

/** Fixes every input of an update's progress when it is called; seconds: the given value, else the monotonic clock's. */
export class ProgressClock {
  #last = performance.now(); // when the last update was called, or the EMA made or loaded

  restart(): void {
    this.#last = performance.now();
  }

  fix(schedule: ParsedSchedule, progress: unknown, operation: string): UpdateProgress {
    const { steps, samples, seconds, snapshot } = parseProgress(progress, operation);
    if ((schedule.kind === 'half-life' || schedule.kind === 'power-function') && schedule.unit === 'samples' && samples === undefined) {
      throw invalidArgument(`${operation}: progress.samples is required on every update by schedule ${schedule.kind} with unit 'samples'`);
    }
    const now = performance.now();
    const elapsed = Math.max(0, (now - this.#last) / 1000);
    this.#last = now;
    return { steps, samples, seconds: seconds ?? elapsed, snapshot };
  }
}

/**
 * The decay the next one-step update would use. With a unit of samples or seconds, that step's
 * amount is taken as the average per step so far (none before the first step: the bound, decay).
 */
export function nextOneStepDecay(schedule: ParsedSchedule, decay: number, counters: Counters): number {
  const average = (total: number): number => (counters.step > 0 ? total / counters.step : 0);
  return decayOf(schedule, decay, counters, { steps: 1, samples: average(counters.samples), seconds: average(counters.seconds) });
}

/** The next update and the counters once it has been applied. */
export function nextUpdate(
  schedule: ParsedSchedule,
  decay: number,
  before: Counters,
  progress: UpdateProgress,
  perElement: Omit<UpdateDescription, 'decay'>,
): { update: UpdateDescription; counters: Counters } {
  return { update: { ...perElement, decay: decayOf(schedule, decay, before, progress) }, counters: advance(schedule, before, progress) };
}
