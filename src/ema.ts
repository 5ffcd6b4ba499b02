// ExponentialMovingAverage: the public class. It owns the native arenas (the shadows, and the backup
// store() takes) and turns every operation into one fused native call after all checks have passed
// (all-or-nothing). Collaborators do the work: training_state.ts (decay, schedule, counters), arenas.ts,
// resolve.ts, scope_stack.ts, serial_queue.ts, relocation.ts, state_dict.ts, checkpoint_glue.ts,
// publish/ (published snapshots) and shard/ (data-parallel ranks); ARCHITECTURE.md maps them.
import { types } from 'node:util';
import { backupDType, backupOf, EmaArenas, newArena, updateShadows, type CurrentArenas } from './arenas';
import { deserializeCheckpoint, serializeCheckpoint, type DecodedCheckpoint, type ExpectedParameters } from './checkpoint/ema_checkpoint';
import { checkpointScalars, checkpointSource, copiedCheckpoint, expectedParameters, installCheckpoint, saveCopiedCheckpoint, stageCheckpoint, type StagedCheckpoint, type CheckpointScalars } from './checkpoint_glue';
import { Device, deviceIndex } from './device';
import { codedError, disposedError, expectedTypeError } from './errors';
import { checkFloat16Range } from './float16_range';
import type { StorageDType } from './native';
import { checkFilePath, EmaOptions, LoadOptions, parseEmaOptions, parseSaveOptions, parseToOptions, SaveOptions, ToOptions } from './options';
import { Parameter, ResolvedParameters } from './parameters';
import { WeightsPublisher, type PublishedWeightsHandle } from './publish/publisher';
import { RegisteredParameters } from './registered';
import { entriesToRegister } from './registration';
import { relocateArenas } from './relocation';
import { resolveParameters } from './resolve';
import type { AsyncProgress, ParsedSchedule, Progress } from './schedule_options';
import { asyncInputs, QueuedSnapshots, updateFrom, type AsyncInputs } from './async_inputs';
import { AveragedParametersScope, runInScope } from './scope';
import { ScopeStack } from './scope_stack';
import { SerialQueue } from './serial_queue';
import type { ShardInfo, ShardLayout } from './shard/layout';
import { EmaStateDict, installStateDict, stateDictOf, validateStateDict } from './state_dict';
import { TrainingState, type FixedCall, type NonFiniteStats } from './training_state';
import { TRACK_ACCESS, type TrackAccess } from './tracks/track_access';

export type { EmaOptions, LoadOptions, SaveOptions, ToOptions } from './options';
export type { AsyncProgress, Progress, Schedule } from './schedule_options';
export type { NonFiniteStats } from './training_state';

export class ExponentialMovingAverage implements Disposable {
  readonly #state: TrainingState;
  #device: Device;
  readonly #arenas: EmaArenas;
  readonly #sizes: readonly number[];
  readonly #registered: RegisteredParameters;
  readonly #scopes: ScopeStack;
  readonly #queue = new SerialQueue();
  readonly #queuedSnapshots = new QueuedSnapshots();
  readonly #publisher: WeightsPublisher;
  readonly #shard: ShardLayout | null;

  /**
   * @param parameters any iterable of Float32Array/Float64Array, `{ name, value }`, or tfjs
   *   variables (model.trainableWeights); read once. The EMA keeps only weak references to them.
   */
  constructor(parameters: Iterable<Parameter>, options: EmaOptions) {
    const { decay, schedule, dtype, device, perElement, publishEvery, shard } = parseEmaOptions(options);
    const { entries, layout } = entriesToRegister(parameters, shard); // with shard, this rank's only
    this.#shard = layout;
    const values = entries.map((e) => e.kind.read(e.value));
    this.#sizes = Object.freeze(entries.map((e) => e.kind.numel(e.value)));
    this.#state = new TrainingState(decay, schedule, perElement);
    if (dtype === 'float16') checkFloat16Range(values.length, (i) => values[i], (i) => entries[i].name, 'parameters');
    this.#arenas = new EmaArenas(newArena(dtype, this.#sizes, deviceIndex(device), (arena) => arena.copyFrom(values)));
    this.#device = device;
    this.#registered = new RegisteredParameters(entries);
    this.#scopes = new ScopeStack(this.#sizes);
    this.#publisher = new WeightsPublisher(this.#sizes, this.#registered.names, publishEvery);
  }

  /** Weight of the old average, in [0, 1]; may be changed between updates. */
  get decay(): number { return this.#state.decay; }
  set decay(value: number) {
    this.#state.decay = value;
  }

  /** Updates applied with warm-up on (saturates at 2^53 - 1, see MAX_NUM_UPDATES); null when warm-up is off. */
  get numUpdates(): number | null { return this.#state.counters.numUpdates; }

  /** The decay schedule, defaults applied (sigmaRel given as its gamma). */
  get schedule(): ParsedSchedule { return this.#state.schedule; }

  /** Training so far: each update adds its progress.steps (default 1), .samples, and .seconds (default: the time since the last update). */
  get step(): number { return this.#state.counters.step; }
  get samples(): number { return this.#state.counters.samples; }
  get seconds(): number { return this.#state.counters.seconds; }

  /** Updates skipped whole (nonFinite 'skip-update') and parameter elements left out ('skip-element'), so far. */
  get nonFiniteStats(): NonFiniteStats { return this.#state.nonFiniteStats; }

  get dtype(): StorageDType { return this.#open('dtype').shadows.dtype; }

  get device(): Device { return this.#device; }

  /** Number of parameters (shadows). */
  get size(): number { return this.#sizes.length; }

  /** With options.shard: this rank's parameters (positions in the full list) and counts; else null. */
  get shardInfo(): ShardInfo | null { return this.#shard?.info ?? null; }

  /** Element count of each shadow. */
  get sizes(): readonly number[] { return this.#sizes; }

  /** Each registered parameter's name, or null. */
  get names(): (string | null)[] { return this.#registered.names; }

  /** True while an updateAsync() or load() (or a save() waiting to copy the state) is queued or running: synchronous methods throw. */
  get busy(): boolean { return this.#queue.busy; }

  /** Resolves (never rejects) once the async work queued so far has settled. */
  settled(): Promise<void> { return this.#queue.settled(); }

  get disposed(): boolean { return this.#arenas.current === null; }

  /** The decay the next one-step update will use (after warm-up). */
  get currentDecay(): number { return this.#state.currentDecay; }

  /**
   * s = s - (1 - d) * (s - p) for every shadow, in one native pass. `progress` is the training since
   * the last update, `{ steps = 1, samples?, seconds? }`; d is the product of its steps' decays.
   */
  update(parameters?: Iterable<Parameter>, progress?: Progress): void {
    const { shadows } = this.#idle('update()');
    this.#scopes.refuseUpdate('update()');
    const resolved = this.#resolve(parameters, 'update()');
    const { update, commit } = this.#state.plan(this.#state.fix(progress, 'update()'));
    commit(updateShadows(shadows, resolved.read(), update, false));
    this.#publisher.afterUpdate(shadows);
  }

  /**
   * update() off the JS thread. The parameters are read (snapshotted) before this returns when no
   * other updateAsync() is in flight; a queued call copies them then. `{ snapshot: false }` reads
   * typed arrays over SharedArrayBuffers in place instead (no copy; do not write them until the
   * promise settles); see async_inputs.ts. Calls on one EMA run in call order; other methods
   * throw until the returned promise settles.
   */
  updateAsync(parameters?: Iterable<Parameter>, progress?: AsyncProgress): Promise<void> {
    // Every input is fixed at the call (decay, schedule, progress, and a copy of queued parameters).
    let call: FixedCall;
    let queued: AsyncInputs | undefined;
    const inputs = (isQueued: boolean): AsyncInputs =>
      asyncInputs(this.#resolve(parameters, 'updateAsync()'), call.progress.snapshot !== false, isQueued ? this.#queuedSnapshots : null, 'updateAsync()');
    try {
      call = this.#state.fix(progress, 'updateAsync()');
      if (this.#queue.busy && this.#open('updateAsync()')) queued = inputs(true);
    } catch (error) {
      return Promise.reject(error);
    }
    return this.#queue.run(async () => {
      const { shadows } = this.#open('updateAsync()');
      this.#scopes.refuseUpdate('updateAsync()');
      const taken = queued ?? inputs(false);
      const { update, commit } = this.#state.plan(call);
      commit(await updateFrom(shadows, taken, update));
      this.#publisher.afterUpdate(shadows);
    });
  }

  /** Copies the shadows (as float32) into the shared region that shareable() hands out; returns the version (1, 2, ...). */
  publish(): number { return this.#publisher.publish(this.#idle('publish()').shadows); }

  /** The published region, for `new PublishedWeightsReader(handle)` in this thread or a worker (postMessage it). */
  shareable(): PublishedWeightsHandle { return this.#open('shareable()') && this.#publisher.shareable(); }

  /** Writes the shadows into the parameters (converted to each parameter's type). */
  copyTo(parameters?: Iterable<Parameter>): void {
    const { shadows } = this.#idle('copyTo()');
    this.#resolve(parameters, 'copyTo()').write((targets) => shadows.copyTo(targets));
  }

  /** Saves a copy of the parameters' current values (replacing an earlier store()). */
  store(parameters?: Iterable<Parameter>): void {
    this.#idle('store()');
    const arrays = this.#resolve(parameters, 'store()').read();
    this.#arenas.replace(({ shadows, backup }, track) => {
      if (backup?.dtype === backupDType(arrays, shadows.dtype)) {
        backup.copyFrom(arrays); // reuse: fresh pages cost more than the copy
        return {};
      }
      return { backup: track(backupOf(arrays, shadows.dtype, this.#sizes, shadows.device)) };
    });
  }

  /** Writes the store()d values back into the parameters; may be repeated. */
  restore(parameters?: Iterable<Parameter>): void {
    const { backup } = this.#idle('restore()');
    if (backup === null) throw codedError('NOTHING_STORED', 'restore(): nothing is stored; call store() first');
    this.#resolve(parameters, 'restore()').write((targets) => backup.copyTo(targets));
  }

  /**
   * Stores the parameters and copies the shadows in; the returned scope puts the raw values back
   * when disposed (`using scope = ema.averageParameters();`). Scopes nest, each with its own backup.
   */
  averageParameters(parameters?: Iterable<Parameter>): AveragedParametersScope {
    const { shadows } = this.#idle('averageParameters()');
    return this.#scopes.open(shadows, this.#resolve(parameters, 'averageParameters()'));
  }

  /** Runs `fn` (sync or async) with the averaged weights swapped in; restores however it ends. */
  withAveragedParameters<R>(fn: () => R, parameters?: Iterable<Parameter>): R {
    if (typeof fn !== 'function') throw expectedTypeError('a function', 'fn', fn);
    return runInScope(this.averageParameters(parameters), fn);
  }

  /** Moves the shadows (and any store()d backup) to another storage dtype and/or device. */
  to(options: ToOptions): this {
    const { shadows } = this.#idle('to()');
    const { device, dtype } = parseToOptions(options, { device: this.#device, dtype: shadows.dtype });
    if (dtype === 'float16' && shadows.dtype !== 'float16') checkFloat16Range(this.size, (i) => shadows.read(i), (i) => this.names[i], 'shadows');
    relocateArenas(this.#arenas, dtype, deviceIndex(device));
    this.#device = device;
    return this;
  }

  /** The state as plain data the caller owns (copies, never views of native memory). */
  stateDict(): EmaStateDict {
    const arenas = this.#idle('stateDict()');
    return stateDictOf({ ...this.#state.scalars(), names: this.#registered.names }, arenas, this.#sizes);
  }

  /**
   * Loads a stateDict() after checking all of it. Values are converted to this EMA's dtype; a
   * numUpdates of null turns warm-up off, a number turns it on. Names are not matched.
   */
  loadStateDict(state: EmaStateDict): void {
    this.#idle('loadStateDict()');
    const valid = validateStateDict(state, this.#sizes);
    installStateDict(this.#arenas, valid, this.#sizes);
    this.#state.install(valid);
  }

  /**
   * Writes the state to a safetensors file (Python's `safetensors` reads it) atomically (temporary file,
   * fsync, rename), from a copy taken at the call (after queued updateAsync()/load()): updates go on.
   * With options.shard, `path` is a prefix: this rank's shard, and the index from rank 0.
   */
  save(path: string, options?: SaveOptions): Promise<void> {
    try {
      const { onProgress } = parseSaveOptions(path, options);
      const copy = this.#queue.atItsTurn(() => this.#checkpoint((scalars) => copiedCheckpoint(scalars, this.#arenas), this.#open('save()')));
      return this.#queue.background(async () => saveCopiedCheckpoint(path, await copy, this.#shard, onProgress));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Loads a save()d file, or a sharded checkpoint (prefix or index, any world size), into this EMA
   * after checking all of it (as loadStateDict does). Names must equal this EMA's unless `matchNames`
   * is false (then by position, sizes still checked: tfjs's generated layer names differ between runs).
   */
  load(path: string, options?: LoadOptions): Promise<void> {
    let expected: ExpectedParameters;
    try {
      checkFilePath(path);
      expected = expectedParameters(options, this.#registered, this.#sizes);
    } catch (error) {
      return Promise.reject(error);
    }
    return this.#queue.run(async () => {
      this.#open('load()');
      this.#installStaged(await this.#stage(path, expected), 'load()');
    }, true);
  }

  /** The bytes save() would write. */
  serialize(): Uint8Array {
    return serializeCheckpoint(this.#checkpoint(checkpointSource, this.#idle('serialize()')));
  }

  /** Loads serialize()d bytes, with the checks and options of load(). */
  deserialize(bytes: Uint8Array, options?: LoadOptions): void {
    this.#idle('deserialize()');
    if (!types.isUint8Array(bytes)) throw expectedTypeError('a Uint8Array', 'bytes', bytes);
    const expected = expectedParameters(options, this.#registered, this.#sizes);
    this.#applyCheckpoint(deserializeCheckpoint(bytes, expected), 'deserialize()');
  }

  /** Frees the native memory now. Later calls throw (dispose() itself may be repeated). */
  dispose(): void {
    if (this.#arenas.current === null) return;
    if (this.#queue.busy) {
      throw codedError('BUSY', 'Cannot dispose the ExponentialMovingAverage while updateAsync(), save() or load() is running; await it first');
    }
    this.#arenas.dispose();
    this.#publisher.close();
  }

  [Symbol.dispose](): void { this.dispose(); }

  /** @internal EmaTracks' way in (tracks/): what a fused update and a load of several EMAs need of each. */
  [TRACK_ACCESS](): TrackAccess {
    return {
      state: this.#state,
      resolve: (parameters, operation) => this.#resolve(parameters, operation),
      shadows: (operation) => {
        const { shadows } = this.#idle(operation);
        this.#scopes.refuseUpdate(operation);
        return shadows;
      },
      afterUpdate: (shadows) => this.#publisher.afterUpdate(shadows),
      scopesOpen: () => this.#scopes.size > 0,
      stage: (path, options) => this.#stage(path, expectedParameters(options, this.#registered, this.#sizes)),
      install: (staged, operation) => this.#installStaged(staged, operation),
    };
  }

  #checkpoint<T>(make: (scalars: CheckpointScalars, arenas: CurrentArenas) => T, arenas: CurrentArenas): T {
    return make({ ...this.#state.scalars(), names: this.#registered.names, sizes: this.#sizes, shapes: this.#registered.shapes }, arenas);
  }

  #stage(path: string, expected: ExpectedParameters): Promise<StagedCheckpoint> {
    return stageCheckpoint(this.#arenas, path, expected, this.#shard, { sizes: this.#sizes, names: this.#registered.names });
  }

  #installStaged(staged: StagedCheckpoint, operation: string): void {
    this.#open(operation);
    staged.install();
    this.#state.install(staged.scalars);
  }

  #applyCheckpoint(decoded: DecodedCheckpoint, operation: string): void {
    this.#open(operation);
    const scalars = checkpointScalars(decoded);
    installCheckpoint(this.#arenas, decoded, this.#sizes, this.#registered.names);
    this.#state.install(scalars);
  }

  #open(operation: string): CurrentArenas {
    const arenas = this.#arenas.current;
    if (arenas === null) throw disposedError(operation);
    return arenas;
  }

  // Open and not in the middle of an updateAsync(), save() or load(): what every synchronous operation needs.
  #idle(operation: string): CurrentArenas {
    const arenas = this.#open(operation);
    if (this.#queue.busy) {
      throw codedError('BUSY', `${operation}: an updateAsync(), save() or load() is still running on this EMA; await it first`);
    }
    return arenas;
  }

  // Resolving runs the caller's iterator and getters, which may dispose this EMA.
  #resolve(parameters: Iterable<Parameter> | undefined, operation: string): ResolvedParameters {
    const resolved = this.#shard && parameters !== undefined ? this.#shard.resolve(parameters, operation) : resolveParameters(this.#registered, this.#sizes, parameters, operation);
    if (this.#arenas.current === null) {
      throw disposedError(operation, "was disposed during the call (by the parameters' iterator or getters)");
    }
    return resolved;
  }
}
