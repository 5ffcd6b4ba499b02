// EmaTracks: several EMAs (tracks) of the same parameters, each with its own decay and schedule,
// updated together by one native pass that reads each parameter once (4 + 8T bytes per float32
// element for T float32 tracks, instead of 12T for T separate update() calls). Each track is an
// ExponentialMovingAverage that no user sees; `track(name)` gives its read side. Updates, moves,
// state and checkpoints go through here, so the tracks always share one layout, dtype and device.
import { asyncInputs, QueuedSnapshots, type AsyncInputs } from '../async_inputs';
import type { StagedCheckpoint } from '../checkpoint_glue';
import { ExponentialMovingAverage } from '../ema';
import { codedError, expectedTypeError, invalidArgument } from '../errors';
import { checkFloat16Range } from '../float16_range';
import type { ShadowArena, StorageDType } from '../native';
import { checkFilePath, parseLoadOptions, parseSaveOptions, parseToOptions, type LoadOptions, type SaveOptions, type ToOptions } from '../options';
import type { Parameter } from '../parameters';
import type { AsyncProgress, Progress } from '../schedule_options';
import { SerialQueue } from '../serial_queue';
import { validateStateDict, type EmaStateDict } from '../state_dict';
import type { FixedCall } from '../training_state';
import type { Device } from '../device';
import { EmaTrack } from './track';
import { TRACK_ACCESS, type TrackAccess } from './track_access';
import { commitManifest, newManifest, prepareFolderSync, readManifest, removeTrackFiles, trackFiles } from './tracks_checkpoint';
import { parseTracksOptions, type EmaTracksOptions } from './tracks_options';

export type { EmaTracksOptions, TrackOptions } from './tracks_options';
export { EmaTrack } from './track';

/** stateDict() of an EmaTracks: each track's ExponentialMovingAverage state, by name. */
/** @internal PostHocEma's way in: work run inside an updateAsync()'s turn, right before and after its update. */
export interface UpdateHook {
  before(): void;
  /** `states()`: every track's stateDict() (copies), readable although this very call makes the EmaTracks busy. */
  after(states: () => EmaStateDict[]): void;
}
/** @internal updateAsync() with an UpdateHook, and save() whose manifest waits for a promise (both for PostHocEma). */
export const UPDATE_WITH_HOOK: unique symbol = Symbol('model-ema tracks update hook');
export const SAVE_AFTER: unique symbol = Symbol('model-ema tracks save after');

export interface EmaTracksStateDict {
  tracks: Record<string, EmaStateDict>;
}

interface Track {
  readonly name: string;
  readonly ema: ExponentialMovingAverage;
  readonly access: TrackAccess;
  readonly view: EmaTrack;
}

export class EmaTracks implements Disposable {
  readonly #tracks: readonly Track[];
  readonly #queue = new SerialQueue();
  readonly #queuedSnapshots = new QueuedSnapshots(); // the copies queued updateAsync() calls read
  #disposed = false;

  /**
   * @param parameters as for ExponentialMovingAverage (read once; held weakly).
   * @param options `{ tracks: { name: { decay, schedule? }, ... }, dtype?, device?, nonFinite?, rounding?, seed? }`.
   */
  constructor(parameters: Iterable<Parameter>, options: EmaTracksOptions) {
    const { tracks } = parseTracksOptions(options);
    // Every track reads the same parameters: a one-shot iterable (a generator) is read once here.
    const list = parameters !== null && typeof (parameters as Partial<Iterable<Parameter>>)?.[Symbol.iterator] === 'function' ? [...parameters] : parameters;
    const made: Track[] = [];
    try {
      for (const { name, options: own } of tracks) {
        const ema = new ExponentialMovingAverage(list, own);
        made.push({ name, ema, access: ema[TRACK_ACCESS](), view: new EmaTrack(name, ema, this.#owner) });
      }
    } catch (error) {
      for (const t of made) t.ema.dispose();
      throw error;
    }
    this.#tracks = made;
  }

  /** The tracks' names, in the order of options.tracks. */
  get trackNames(): string[] { return this.#tracks.map((t) => t.name); }
  get dtype(): StorageDType { return this.#open('dtype').ema.dtype; }
  get device(): Device { return this.#tracks[0].ema.device; }
  get sizes(): readonly number[] { return this.#tracks[0].ema.sizes; }
  get names(): (string | null)[] { return this.#tracks[0].ema.names; }
  /** True while an updateAsync() or load() (or a save() waiting to copy) is queued or running. */
  get busy(): boolean { return this.#queue.busy; }
  get disposed(): boolean { return this.#disposed; }
  /** Resolves (never rejects) once the async work queued so far has settled. */
  settled(): Promise<void> { return this.#queue.settled(); }

  /** The read side of one track. */
  track(name: string): EmaTrack {
    this.#open('track()');
    const found = this.#tracks.find((t) => t.name === name);
    if (found === undefined) {
      throw invalidArgument(`Expected one of ${this.trackNames.map((n) => JSON.stringify(n)).join(', ')} for name but received ${JSON.stringify(name)}`, RangeError);
    }
    return found.view;
  }

  /** Every track's update (each with its own decay and schedule), in one pass over the parameters. */
  update(parameters?: Iterable<Parameter>, progress?: Progress): void {
    const operation = 'update()';
    this.#idle(operation);
    this.#shadows(operation); // refuse (open scope, ...) before running the parameters' getters
    const arrays = this.#tracks[0].access.resolve(parameters, operation).read();
    const calls = this.#tracks.map((t) => t.access.state.fix(progress, operation));
    const shadows = this.#shadows(operation);
    const plans = this.#tracks.map((t, i) => t.access.state.plan(calls[i]));
    this.#commit(shadows, plans, shadows[0].updateTracks(arrays, plans.map((p) => p.update), shadows.slice(1)));
  }

  /** update() off the JS thread, as ExponentialMovingAverage.updateAsync() (snapshot, queueing, `{ snapshot: false }`). */
  updateAsync(parameters?: Iterable<Parameter>, progress?: AsyncProgress): Promise<void> {
    return this.#updateAsync(parameters, progress);
  }

  /** @internal updateAsync() with `hook` run in its turn: nothing else (a queued update, a save's copy) runs in between. */
  [UPDATE_WITH_HOOK](parameters: Iterable<Parameter> | undefined, progress: AsyncProgress | undefined, hook: UpdateHook): Promise<void> {
    return this.#updateAsync(parameters, progress, hook);
  }

  #updateAsync(parameters: Iterable<Parameter> | undefined, progress: AsyncProgress | undefined, hook?: UpdateHook): Promise<void> {
    const operation = 'updateAsync()';
    let calls: FixedCall[];
    let queued: AsyncInputs | undefined;
    const inputs = (isQueued: boolean): AsyncInputs =>
      asyncInputs(this.#tracks[0].access.resolve(parameters, operation), calls[0].progress.snapshot !== false, isQueued ? this.#queuedSnapshots : null, operation);
    try {
      this.#open(operation);
      calls = this.#tracks.map((t) => t.access.state.fix(progress, operation));
      if (this.#queue.busy) queued = inputs(true);
    } catch (error) {
      return Promise.reject(error);
    }
    return this.#queue.run(async () => {
      this.#open(operation);
      this.#shadows(operation);
      const taken = queued ?? inputs(false);
      try {
        const shadows = this.#shadows(operation); // again: the parameters' getters ran
        hook?.before();
        const plans = this.#tracks.map((t, i) => t.access.state.plan(calls[i]));
        this.#commit(shadows, plans, await shadows[0].updateTracksAsync(taken.arrays, plans.map((p) => p.update), shadows.slice(1), taken.inPlace));
        hook?.after(() => this.#tracks.map((t) => t.ema.stateDict()));
      } finally {
        taken.snapshot?.from.give(taken.snapshot.arrays); // a queued call's copies, kept for the next one
      }
    });
  }

  /** Moves every track's shadows (and backups) to another dtype and/or device; all or none. */
  to(options: ToOptions): this {
    const first = this.#idle('to()').ema;
    const target = parseToOptions(options, { device: first.device, dtype: first.dtype });
    if (target.dtype === 'float16' && first.dtype !== 'float16') {
      for (const t of this.#tracks) {
        const shadows = t.access.shadows('to()');
        checkFloat16Range(shadows.sizes.length, (i) => shadows.read(i), (i) => t.ema.names[i], `track ${JSON.stringify(t.name)} shadows`);
      }
    }
    const previous = { device: first.device, dtype: first.dtype };
    const moved: ExponentialMovingAverage[] = [];
    try {
      for (const t of this.#tracks) moved.push(t.ema.to(target));
    } catch (error) {
      for (const ema of moved) ema.to(previous); // only memory can fail here, after the range check
      throw error;
    }
    return this;
  }

  /** Every track's state, by name (copies). */
  stateDict(): EmaTracksStateDict {
    this.#idle('stateDict()');
    return { tracks: Object.fromEntries(this.#tracks.map((t) => [t.name, t.ema.stateDict()])) };
  }

  /** Loads a stateDict() after checking all of it: the same track names, each a valid EMA state. */
  loadStateDict(state: EmaTracksStateDict): void {
    this.#idle('loadStateDict()');
    const states = (state as Partial<EmaTracksStateDict> | null)?.tracks;
    if (typeof states !== 'object' || states === null) throw expectedTypeError('an object { tracks: { name: state } }', 'state', state);
    const given = Object.keys(states);
    if (given.length !== this.#tracks.length || this.#tracks.some((t) => !given.includes(t.name))) {
      throw invalidArgument(`Expected the tracks ${JSON.stringify(this.trackNames)} for state.tracks but received ${JSON.stringify(given)}`);
    }
    for (const t of this.#tracks) {
      try {
        validateStateDict(states[t.name], t.ema.sizes);
      } catch (error) {
        (error as Error).message = `state.tracks[${JSON.stringify(t.name)}]: ${(error as Error).message}`;
        throw error;
      }
    }
    for (const t of this.#tracks) t.ema.loadStateDict(states[t.name]);
  }

  /**
   * Writes every track into the folder `dir` (created if missing): one EMA checkpoint per track and
   * `tracks.json`, replaced as a set. The state is copied at the call (after queued work); updates go on.
   */
  save(dir: string, options?: SaveOptions): Promise<void> {
    return this.#save(dir, options, undefined);
  }

  /** @internal save(), copied at the call, whose manifest is written only once `gate` resolved (else the files are removed). */
  [SAVE_AFTER](dir: string, options: SaveOptions | undefined, gate: Promise<unknown>): Promise<void> {
    return this.#save(dir, options, gate);
  }

  #save(dir: string, options: SaveOptions | undefined, gate: Promise<unknown> | undefined): Promise<void> {
    try {
      parseSaveOptions(dir, options);
      this.#open('save()');
      const manifest = newManifest(this.trackNames);
      const files = trackFiles(dir, manifest, this.trackNames);
      const copies = this.#queue.atItsTurn(() => {
        this.#open('save()');
        prepareFolderSync(dir); // the copies are taken now (each track's save() copies at its call)
        return Promise.allSettled(this.#tracks.map((t, i) => t.ema.save(files[i], options)));
      });
      return this.#queue.background(async () => {
        try {
          // Every track's write settled (none still writing) before its files may be removed.
          const failed = (await copies).find((r): r is PromiseRejectedResult => r.status === 'rejected');
          if (failed !== undefined) throw failed.reason;
          await gate;
          await commitManifest(dir, manifest);
        } catch (error) {
          await removeTrackFiles(dir, files);
          throw error;
        }
      });
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** Loads a folder save() wrote, after checking every track's file (as ExponentialMovingAverage.load() does); all or nothing. */
  load(dir: string, options?: LoadOptions): Promise<void> {
    try {
      checkFilePath(dir);
      parseLoadOptions(options);
      this.#open('load()');
    } catch (error) {
      return Promise.reject(error);
    }
    return this.#queue.run(async () => {
      this.#open('load()');
      const files = trackFiles(dir, await readManifest(dir), this.trackNames);
      const staged: StagedCheckpoint[] = [];
      try {
        for (const [i, t] of this.#tracks.entries()) staged.push(await t.access.stage(files[i], options));
        this.#open('load()');
      } catch (error) {
        for (const s of staged) s.discard();
        throw error;
      }
      this.#tracks.forEach((t, i) => t.access.install(staged[i], 'load()'));
    }, true);
  }

  /** Frees every track's native memory now. Later calls throw (dispose() itself may be repeated). */
  dispose(): void {
    if (this.#disposed) return;
    if (this.#queue.busy) throw codedError('BUSY', 'Cannot dispose the EmaTracks while updateAsync(), save() or load() is running; await it first');
    for (const t of this.#tracks) t.ema.dispose();
    this.#disposed = true;
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  readonly #owner = {
    checkIdle: (operation: string): void => void this.#idle(operation),
    refuseOtherScopes: (track: string, operation: string): void => {
      const other = this.#tracks.find((t) => t.name !== track && t.access.scopesOpen());
      if (other !== undefined) {
        throw codedError('SCOPE_OPEN', `${operation}: track ${JSON.stringify(other.name)} has an averageParameters() scope open over the parameters; close it first`);
      }
    },
  };

  #shadows(operation: string): ShadowArena[] {
    return this.#tracks.map((t) => t.access.shadows(operation));
  }

  #commit(shadows: ShadowArena[], plans: { commit: (nonFinite: number) => void }[], counts: number[]): void {
    plans.forEach((p, i) => p.commit(counts[i]));
    this.#tracks.forEach((t, i) => t.access.afterUpdate(shadows[i]));
  }

  #open(operation: string): Track {
    if (this.#disposed) throw codedError('DISPOSED', `${operation}: this EmaTracks has been disposed`);
    return this.#tracks[0];
  }

  #idle(operation: string): Track {
    const first = this.#open(operation);
    if (this.#queue.busy) throw codedError('BUSY', `${operation}: an updateAsync(), save() or load() is still running on this EmaTracks; await it first`);
    return first;
  }
}
