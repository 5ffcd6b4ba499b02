// The read side of one track of an EmaTracks: what an ExponentialMovingAverage offers for using its
// average (copyTo, scopes, stateDict, decay), and nothing that updates, moves or loads it; those go
// through the EmaTracks, which keeps every track on one layout and updates them in one pass.
import type { ExponentialMovingAverage, NonFiniteStats } from '../ema';
import type { Parameter } from '../parameters';
import type { ParsedSchedule } from '../schedule_options';
import type { AveragedParametersScope } from '../scope';
import { runInScope } from '../scope';
import type { EmaStateDict } from '../state_dict';
import { expectedTypeError } from '../errors';

/** What a track asks of its EmaTracks before each operation. */
export interface TrackOwner {
  /** Throws unless the EmaTracks is open and idle (no updateAsync(), load() or save() copy pending). */
  checkIdle(operation: string): void;
  /** Throws if another track of this EmaTracks has an averageParameters() scope open. */
  refuseOtherScopes(track: string, operation: string): void;
}

export class EmaTrack {
  readonly #name: string;
  readonly #ema: ExponentialMovingAverage;
  readonly #owner: TrackOwner;

  /** @internal made by EmaTracks only. */
  constructor(name: string, ema: ExponentialMovingAverage, owner: TrackOwner) {
    this.#name = name;
    this.#ema = ema;
    this.#owner = owner;
  }

  get name(): string { return this.#name; }
  /** This track's decay (upper bound of its schedule); may be changed between updates. */
  get decay(): number { return this.#ema.decay; }
  set decay(value: number) { this.#ema.decay = value; }
  /** The decay this track's next one-step update will use. */
  get currentDecay(): number { return this.#ema.currentDecay; }
  get schedule(): ParsedSchedule { return this.#ema.schedule; }
  get numUpdates(): number | null { return this.#ema.numUpdates; }
  get step(): number { return this.#ema.step; }
  get samples(): number { return this.#ema.samples; }
  get seconds(): number { return this.#ema.seconds; }
  get nonFiniteStats(): NonFiniteStats { return this.#ema.nonFiniteStats; }

  /** Writes this track's averages into the parameters (converted to each parameter's type). */
  copyTo(parameters?: Iterable<Parameter>): void {
    this.#owner.checkIdle(this.#what('copyTo()'));
    this.#ema.copyTo(parameters);
  }

  /** As ExponentialMovingAverage.averageParameters(); one track's scopes at a time per EmaTracks. */
  averageParameters(parameters?: Iterable<Parameter>): AveragedParametersScope {
    const operation = this.#what('averageParameters()');
    this.#owner.checkIdle(operation);
    this.#owner.refuseOtherScopes(this.#name, operation);
    return this.#ema.averageParameters(parameters);
  }

  /** Runs `fn` (sync or async) with this track's averages swapped in; restores however it ends. */
  withAveragedParameters<R>(fn: () => R, parameters?: Iterable<Parameter>): R {
    if (typeof fn !== 'function') throw expectedTypeError('a function', 'fn', fn);
    return runInScope(this.averageParameters(parameters), fn);
  }

  /** This track's state, as ExponentialMovingAverage.stateDict() (copies). */
  stateDict(): EmaStateDict {
    this.#owner.checkIdle(this.#what('stateDict()'));
    return this.#ema.stateDict();
  }

  #what(operation: string): string {
    return `track(${JSON.stringify(this.#name)}).${operation}`;
  }
}
