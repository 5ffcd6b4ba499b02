// The one way into an ExponentialMovingAverage that EmaTracks has beyond the public API: what a
// fused update of several EMAs (one native pass) and an all-or-nothing load of several need of
// each. Keyed by a symbol that only the package knows; users never see an EMA of a track.
import type { StagedCheckpoint } from '../checkpoint_glue';
import type { ShadowArena } from '../native';
import type { LoadOptions } from '../options';
import type { Parameter, ResolvedParameters } from '../parameters';
import type { TrainingState } from '../training_state';

export const TRACK_ACCESS: unique symbol = Symbol('model-ema track access');

export interface TrackAccess {
  /** Fixes each update's inputs and plans its description; commits what the native pass reported. */
  readonly state: TrainingState;
  /** The parameters of an update, as update() resolves them (none given: the registered ones). */
  resolve(parameters: Iterable<Parameter> | undefined, operation: string): ResolvedParameters;
  /** The shadows, after the checks update() makes: open, not busy, no averageParameters() scope open. */
  shadows(operation: string): ShadowArena;
  /** What update() does once the shadows changed (publishEvery). */
  afterUpdate(shadows: ShadowArena): void;
  scopesOpen(): boolean;
  /** Streams and checks a save()d file into arenas beside this EMA's own (nothing changes yet). */
  stage(path: string, options: LoadOptions | undefined): Promise<StagedCheckpoint>;
  /** Swaps in what stage() read, with its scalars. */
  install(staged: StagedCheckpoint, operation: string): void;
}
