// What an EMA knows about training, apart from the shadows themselves: the decay (upper bound), the
// schedule, the counters, the clock that times updates, the per-element options every update passes
// to the kernels, and the non-finite statistics. ema.ts asks it for each update's description and
// tells it what the native pass reported; it never computes a decay itself.
import { checkUnitInterval } from './errors';
import type { PerElementOptions } from './options';
import { initialCounters, nextOneStepDecay, nextUpdate, ProgressClock, type Counters, type UpdateDescription, type UpdateProgress } from './schedule';
import type { ParsedSchedule } from './schedule_options';
import type { ScheduleState } from './schedule_state';
import { MAX_NUM_UPDATES } from './state_rules';

/** Updates skipped whole ('skip-update') and parameter elements left out ('skip-element'), so far. */
export interface NonFiniteStats {
  skippedUpdates: number;
  skippedElements: number;
}

/** Every input of one update, fixed when it is called (the queue may run it later). */
export interface FixedCall {
  readonly decay: number;
  readonly schedule: ParsedSchedule;
  readonly progress: UpdateProgress;
}

/** The scalars of the state: what stateDict() and checkpoints hold besides tensors. */
export interface TrainingScalars extends ScheduleState {
  decay: number;
  nonFiniteStats: NonFiniteStats;
}

export class TrainingState {
  #decay: number;
  #schedule: ParsedSchedule;
  #counters: Counters;
  #stats: NonFiniteStats = { skippedUpdates: 0, skippedElements: 0 };
  readonly #perElement: PerElementOptions;
  readonly #clock = new ProgressClock();

  constructor(decay: number, schedule: ParsedSchedule, perElement: PerElementOptions) {
    this.#decay = decay;
    this.#schedule = schedule;
    this.#counters = initialCounters(schedule);
    this.#perElement = perElement;
  }

  get decay(): number {
    return this.#decay;
  }
  set decay(value: number) {
    this.#decay = checkUnitInterval(value, 'decay');
  }

  get schedule(): ParsedSchedule {
    return { ...this.#schedule };
  }
  get counters(): Readonly<Counters> {
    return this.#counters;
  }
  get nonFiniteStats(): NonFiniteStats {
    return { ...this.#stats };
  }
  get perElement(): PerElementOptions {
    return this.#perElement;
  }
  get currentDecay(): number {
    return nextOneStepDecay(this.#schedule, this.#decay, this.#counters);
  }

  /** Fixes an update's inputs now: the decay, the schedule, and the progress (the clock is read here). */
  fix(progress: unknown, operation: string): FixedCall {
    return { decay: this.#decay, schedule: this.#schedule, progress: this.#clock.fix(this.#schedule, progress, operation) };
  }

  /**
   * The description of a fixed call's update, from the counters as they are when it runs, and
   * `commit`, to call with the native pass's count of non-finite parameter elements once it
   * has returned: the counters advance unless 'skip-update' skipped it.
   */
  plan(call: FixedCall): { update: UpdateDescription; commit: (nonFinite: number) => void } {
    const next = nextUpdate(call.schedule, call.decay, this.#counters, call.progress, this.#perElement);
    // The update index of stochastic rounding: the step counter before the update.
    const update = this.#perElement.rounding === 'stochastic' ? { ...next.update, updateIndex: this.#counters.step } : next.update;
    const commit = (nonFinite: number): void => {
      const policy = this.#perElement.nonFinite ?? 'propagate';
      if (policy === 'propagate') {
        this.#counters = next.counters;
        return;
      }
      const skipped = policy === 'skip-update' && nonFinite > 0;
      this.#stats = {
        skippedUpdates: Math.min(this.#stats.skippedUpdates + (skipped ? 1 : 0), MAX_NUM_UPDATES),
        skippedElements: Math.min(this.#stats.skippedElements + nonFinite, MAX_NUM_UPDATES),
      };
      if (!skipped) this.#counters = next.counters;
    };
    return { update, commit };
  }

  scalars(): TrainingScalars {
    return { decay: this.#decay, schedule: this.#schedule, counters: this.#counters, nonFiniteStats: this.nonFiniteStats };
  }

  /** Installs checked state (stateDict, checkpoint); the clock restarts. */
  install(state: TrainingScalars): void {
    this.#decay = state.decay;
    this.#schedule = state.schedule;
    this.#counters = state.counters;
    this.#stats = { ...state.nonFiniteStats };
    this.#clock.restart();
  }
}
