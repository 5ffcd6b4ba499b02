// ExponentialMovingAverage: the public class. It owns one native arena of shadows (plus an
// optional backup arena for store/restore), keeps the decay schedule and counters in JS, and turns
// every operation into one fused native call after all checks have passed (all-or-nothing).
import { types } from 'node:util';
import {
  CheckpointSource,
  DecodedCheckpoint,
  deserializeCheckpoint,
  ExpectedParameters,
  loadCheckpoint,
  saveCheckpoint,
  serializeCheckpoint,
} from './checkpoint/ema_checkpoint';
import { assertDeviceAvailable, Device, deviceIndex, parseDevice } from './device';
import { checkUnitInterval, expectedTypeError } from './errors';
import { binding, ShadowArena, StorageDType } from './native';
import { isDetached, ParamArray, Parameter, ParameterEntry, ResolvedParameters, toEntries } from './parameters';
import { RegisteredParameters } from './registered';
import { AveragedParametersScope, runInScope } from './scope';
import { EmaStateDict, parseStorageDType, validateStateDict } from './state_dict';
import { nextNumUpdates } from './state_rules';

export interface EmaOptions {
  /** Weight of the old average in each update, in [0, 1] (typical: 0.999 or 0.9999). */
  decay: number;
  /** Warm up with min(decay, (1 + n) / (10 + n)) over the first updates. Default true. */
  useNumUpdates?: boolean;
  /** Storage of the shadows. Default 'float32'. Arithmetic is float32 or wider regardless. */
  dtype?: StorageDType;
  /** Where the shadows live. Default 'cpu'. */
  device?: Device;
}

export interface LoadOptions {
  /** Default true: the file's parameter names must equal this EMA's. False: match by position. */
  matchNames?: boolean;
}

export interface ToOptions {
  device?: Device;
  dtype?: StorageDType;
}

// A backup must give the raw weights back bit-for-bit: float64 parameters need a float64 backup.
function backupDType(arrays: readonly ParamArray[], storage: StorageDType): StorageDType {
  return storage === 'float64' || arrays.some((a) => types.isFloat64Array(a)) ? 'float64' : 'float32';
}

// A new arena, filled by `fill`; disposed at once if filling fails, rather than left to the GC.
function filledArena(dtype: StorageDType, sizes: readonly number[], device: number | null, fill: (arena: ShadowArena) => void): ShadowArena {
  const arena = new binding.ShadowArena(dtype, sizes, device);
  try {
    fill(arena);
  } catch (error) {
    arena.dispose();
    throw error;
  }
  return arena;
}

// `device`: where the arena lives (null: host memory). store()'s backup lives with the shadows; a
// scope's short-lived backup stays in host memory, next to the parameters it restores.
function snapshot(arrays: readonly ParamArray[], storage: StorageDType, sizes: readonly number[], device: number | null = null): ShadowArena {
  return filledArena(backupDType(arrays, storage), sizes, device, (arena) => arena.copyFrom(arrays));
}

/** A scope still open, with the raw values it will put back. */
interface OpenScope {
  scope: AveragedParametersScope;
  backup: ShadowArena;
  parameters: ResolvedParameters;
}

// A new arena holding raw little-endian tensors of `dtype`, converted to `target` if it differs.
function arenaFromBytes(dtype: StorageDType, tensors: readonly Uint8Array[], sizes: readonly number[], target: StorageDType, device: number | null): ShadowArena {
  const arena = filledArena(dtype, sizes, device, (a) => tensors.forEach((bytes, i) => a.writeBytes(i, bytes)));
  if (dtype === target) return arena;
  try {
    return arena.cast(target);
  } finally {
    arena.dispose();
  }
}

// `arena` as `dtype` on `device` (null: host memory): a new arena, or `arena` itself when neither
// changes. Converts where the arena is, then moves; a failure disposes whatever it made.
function moveArena(arena: ShadowArena, dtype: StorageDType, device: number | null): ShadowArena {
  const cast = arena.dtype === dtype ? arena : arena.cast(dtype);
  if (cast.device === device) return cast;
  try {
    return cast.toDevice(device);
  } finally {
    if (cast !== arena) cast.dispose();
  }
}

export class ExponentialMovingAverage implements Disposable {
  #decay: number;
  #numUpdates: number | null; // null: warm-up off
  #device: Device = 'cpu';
  #shadows: ShadowArena | null;
  #collected: ShadowArena | null = null;
  readonly #sizes: readonly number[];
  readonly #registered: RegisteredParameters;
  readonly #scopes: OpenScope[] = [];
  #queue: Promise<void> = Promise.resolve();
  #asyncInFlight = 0;

  /**
   * @param parameters any iterable of Float32Array/Float64Array, `{ name, value }`, or tfjs
   *   variables (model.trainableWeights); read once. The EMA keeps only weak references to them.
   */
  constructor(parameters: Iterable<Parameter>, options: EmaOptions) {
    if (typeof options !== 'object' || options === null) throw expectedTypeError('an options object with decay', 'options', options);
    this.#decay = checkUnitInterval(options.decay, 'decay');
    const useNumUpdates = options.useNumUpdates ?? true;
    if (typeof useNumUpdates !== 'boolean') throw expectedTypeError('a boolean', 'useNumUpdates', useNumUpdates);
    const dtype = options.dtype === undefined ? 'float32' : parseStorageDType(options.dtype, 'dtype');
    const device = options.device === undefined ? 'cpu' : parseDevice(options.device, 'device');
    assertDeviceAvailable(device);
    const entries = toEntries(parameters, 'parameters');
    entries.forEach((e, i) => {
      if (ArrayBuffer.isView(e.value) && isDetached(e.value.buffer)) {
        throw new TypeError(`parameters[${i}] is a typed array whose buffer was detached (transferred away)`);
      }
    });
    this.#sizes = Object.freeze(entries.map((e) => e.kind.numel(e.value)));
    this.#numUpdates = useNumUpdates ? 0 : null;
    const values = entries.map((e) => e.kind.read(e.value));
    this.#shadows = filledArena(dtype, this.#sizes, deviceIndex(device), (arena) => arena.copyFrom(values));
    this.#device = device;
    this.#registered = new RegisteredParameters(entries);
  }

  /** Weight of the old average, in [0, 1]; may be changed between updates. */
  get decay(): number {
    return this.#decay;
  }
  set decay(value: number) {
    this.#decay = checkUnitInterval(value, 'decay');
  }

  /** Updates applied with warm-up on (saturates at 2^53 - 1, see MAX_NUM_UPDATES); null when warm-up is off. */
  get numUpdates(): number | null {
    return this.#numUpdates;
  }

  get dtype(): StorageDType {
    return this.#open('dtype').dtype;
  }

  get device(): Device {
    return this.#device;
  }

  /** Number of parameters (shadows). */
  get size(): number {
    return this.#sizes.length;
  }

  /** Element count of each shadow. */
  get sizes(): readonly number[] {
    return this.#sizes;
  }

  /** Each registered parameter's name, or null. */
  get names(): (string | null)[] {
    return this.#registered.names;
  }

  get disposed(): boolean {
    return this.#shadows === null;
  }

  /** The decay the next update will use (after warm-up). */
  get currentDecay(): number {
    return this.#decayFor(nextNumUpdates(this.#numUpdates));
  }

  /** s = s - (1 - d) * (s - p) for every shadow, in one native pass. */
  update(parameters?: Iterable<Parameter>): void {
    const shadows = this.#idle('update()');
    this.#refuseInScope('update()');
    const resolved = this.#resolve(parameters, 'update()');
    const next = nextNumUpdates(this.#numUpdates);
    shadows.update(resolved.read(), this.#decayFor(next));
    this.#numUpdates = next;
  }

  /**
   * update() off the JS thread. The parameters are read (snapshotted) before this returns when no
   * other updateAsync() is in flight; queued calls read them when their turn comes. Calls on one
   * EMA run in call order; other methods throw until the returned promise settles.
   */
  updateAsync(parameters?: Iterable<Parameter>): Promise<void> {
    return this.#enqueue(async () => {
      const shadows = this.#open('updateAsync()');
      this.#refuseInScope('updateAsync()');
      const resolved = this.#resolve(parameters, 'updateAsync()');
      const next = nextNumUpdates(this.#numUpdates);
      await shadows.updateAsync(resolved.read(), this.#decayFor(next));
      this.#numUpdates = next;
    });
  }

  /** Writes the shadows into the parameters (converted to each parameter's type). */
  copyTo(parameters?: Iterable<Parameter>): void {
    const shadows = this.#idle('copyTo()');
    this.#resolve(parameters, 'copyTo()').write((targets) => shadows.copyTo(targets));
  }

  /** Saves a copy of the parameters' current values (replacing an earlier store()). */
  store(parameters?: Iterable<Parameter>): void {
    const shadows = this.#idle('store()');
    const arrays = this.#resolve(parameters, 'store()').read();
    const dtype = backupDType(arrays, shadows.dtype);
    if (this.#collected?.dtype === dtype) {
      this.#collected.copyFrom(arrays); // reuse: fresh pages cost more than the copy
    } else {
      const backup = snapshot(arrays, shadows.dtype, this.#sizes, shadows.device);
      this.#collected?.dispose();
      this.#collected = backup;
    }
  }

  /** Writes the store()d values back into the parameters; may be repeated. */
  restore(parameters?: Iterable<Parameter>): void {
    this.#idle('restore()');
    const collected = this.#collected;
    if (collected === null) throw new Error('restore(): nothing is stored; call store() first');
    this.#resolve(parameters, 'restore()').write((targets) => collected.copyTo(targets));
  }

  /**
   * Stores the parameters and copies the shadows in; the returned scope puts the raw values back
   * when disposed (`using scope = ema.averageParameters();`). Scopes nest, each with its own backup.
   */
  averageParameters(parameters?: Iterable<Parameter>): AveragedParametersScope {
    const shadows = this.#idle('averageParameters()');
    const resolved = this.#resolve(parameters, 'averageParameters()');
    const backup = snapshot(resolved.read(), shadows.dtype, this.#sizes);
    try {
      resolved.write((targets) => shadows.copyTo(targets));
    } catch (error) {
      try {
        resolved.write((targets) => backup.copyTo(targets)); // undo what was written, if anything
      } finally {
        backup.dispose();
      }
      throw error;
    }
    // The scope keeps the resolved parameters (strongly, for its short life) to restore into them.
    const scope = new AveragedParametersScope((closing) => this.#closeScope(closing));
    this.#scopes.push({ scope, backup, parameters: resolved });
    return scope;
  }

  // Closing the innermost scope writes its backup back. Closing another one (async callbacks
  // overlap and finish in any order) writes nothing: the parameters hold what the scope opened
  // just after it swapped in, so that scope inherits this backup, the raw values, to restore later.
  #closeScope(closing: AveragedParametersScope): void {
    const index = this.#scopes.findIndex((open) => open.scope === closing);
    if (index === -1) return; // closed already, by a restore that failed midway
    const open = this.#scopes[index];
    if (index < this.#scopes.length - 1) {
      const next = this.#scopes[index + 1];
      next.backup.dispose(); // it held this scope's averaged values
      next.backup = open.backup;
      this.#scopes.splice(index, 1);
      return;
    }
    // Checked before anything changes: if the parameters cannot take the values (a buffer was
    // detached, a variable disposed), the scope stays open and its backup is kept.
    const target = new ResolvedParameters([...open.parameters.entries], this.#sizes, "the scope's parameters");
    this.#scopes.pop();
    try {
      target.write((targets) => open.backup.copyTo(targets));
    } finally {
      open.backup.dispose();
    }
  }

  /** Runs `fn` (sync or async) with the averaged weights swapped in; restores however it ends. */
  withAveragedParameters<R>(fn: () => R, parameters?: Iterable<Parameter>): R {
    if (typeof fn !== 'function') throw expectedTypeError('a function', 'fn', fn);
    return runInScope(this.averageParameters(parameters), fn);
  }

  /** Moves the shadows (and any store()d backup) to another storage dtype and/or device. */
  to(options: ToOptions): this {
    const shadows = this.#idle('to()');
    if (typeof options !== 'object' || options === null) throw expectedTypeError('{ device?, dtype? }', 'options', options);
    const device = options.device === undefined ? this.#device : parseDevice(options.device, 'device');
    const dtype = options.dtype === undefined ? shadows.dtype : parseStorageDType(options.dtype, 'dtype');
    assertDeviceAvailable(device);
    // Build the new arenas first; only then swap them in (all-or-nothing).
    const collected = this.#collected;
    const nextShadows = moveArena(shadows, dtype, deviceIndex(device));
    let nextCollected: ShadowArena | null;
    try {
      nextCollected = collected && moveArena(collected, collected.dtype, deviceIndex(device));
    } catch (error) {
      if (nextShadows !== shadows) nextShadows.dispose();
      throw error;
    }
    if (nextShadows !== shadows) shadows.dispose();
    if (nextCollected !== collected) collected?.dispose();
    this.#shadows = nextShadows;
    this.#collected = nextCollected;
    this.#device = device;
    return this;
  }

  /** The state as plain data the caller owns (copies, never views of native memory). */
  stateDict(): EmaStateDict {
    const shadows = this.#idle('stateDict()');
    const collected = this.#collected;
    return {
      decay: this.#decay,
      numUpdates: this.#numUpdates,
      shadowParams: this.#sizes.map((_, i) => shadows.read(i)),
      collectedParams: collected === null ? null : this.#sizes.map((_, i) => collected.read(i)),
      names: this.#registered.names,
      dtype: shadows.dtype,
    };
  }

  /**
   * Loads a stateDict() after checking all of it. Values are converted to this EMA's dtype; a
   * numUpdates of null turns warm-up off, a number turns it on. Names are not matched.
   */
  loadStateDict(state: EmaStateDict): void {
    const shadows = this.#idle('loadStateDict()');
    const valid = validateStateDict(state, this.#sizes);
    const collected = valid.collectedParams && snapshot(valid.collectedParams, shadows.dtype, this.#sizes, shadows.device);
    try {
      shadows.copyFrom(valid.shadowParams);
    } catch (error) {
      collected?.dispose();
      throw error;
    }
    this.#collected?.dispose();
    this.#collected = collected;
    this.#decay = valid.decay;
    this.#numUpdates = valid.numUpdates;
  }

  /**
   * Writes the state to a safetensors file (Python's `safetensors` reads it), atomically: a
   * temporary file in the same folder, fsync, rename. Streams one tensor at a time. Queued with
   * updateAsync(); synchronous methods throw until it settles, so the file is never torn.
   */
  save(path: string): Promise<void> {
    if (typeof path !== 'string' || path === '') return Promise.reject(expectedTypeError('a file path', 'path', path));
    return this.#enqueue(async () => saveCheckpoint(path, this.#checkpointSource(this.#open('save()'))));
  }

  /**
   * Loads a save()d file into this EMA, after checking all of it (as loadStateDict does). The
   * file's parameter names must equal this EMA's unless `matchNames` is false (then parameters
   * match by position, sizes still checked: tfjs's generated layer names differ between runs).
   */
  load(path: string, options?: LoadOptions): Promise<void> {
    if (typeof path !== 'string' || path === '') return Promise.reject(expectedTypeError('a file path', 'path', path));
    let expected: ExpectedParameters;
    try {
      expected = this.#expectedParameters(options);
    } catch (error) {
      return Promise.reject(error);
    }
    return this.#enqueue(async () => {
      this.#open('load()');
      this.#applyCheckpoint(await loadCheckpoint(path, expected), 'load()');
    });
  }

  /** The bytes save() would write. */
  serialize(): Uint8Array {
    return serializeCheckpoint(this.#checkpointSource(this.#idle('serialize()')));
  }

  /** Loads serialize()d bytes, with the checks and options of load(). */
  deserialize(bytes: Uint8Array, options?: LoadOptions): void {
    this.#idle('deserialize()');
    if (!types.isUint8Array(bytes)) throw expectedTypeError('a Uint8Array', 'bytes', bytes);
    this.#applyCheckpoint(deserializeCheckpoint(bytes, this.#expectedParameters(options)), 'deserialize()');
  }

  #expectedParameters(options: LoadOptions | undefined): ExpectedParameters {
    if (options !== undefined && (typeof options !== 'object' || options === null)) {
      throw expectedTypeError('{ matchNames?: boolean }', 'options', options);
    }
    const matchNames = options?.matchNames ?? true;
    if (typeof matchNames !== 'boolean') throw expectedTypeError('a boolean', 'options.matchNames', matchNames);
    return { names: this.#registered.names, sizes: this.#sizes, matchNames };
  }

  /** Frees the native memory now. Later calls throw (dispose() itself may be repeated). */
  dispose(): void {
    if (this.#shadows === null) return;
    if (this.#asyncInFlight > 0) {
      throw new Error('Cannot dispose the ExponentialMovingAverage while updateAsync(), save() or load() is running; await it first');
    }
    this.#shadows.dispose();
    this.#collected?.dispose();
    this.#shadows = null;
    this.#collected = null;
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  #checkpointSource(shadows: ShadowArena): CheckpointSource {
    const collected = this.#collected;
    return {
      decay: this.#decay,
      numUpdates: this.#numUpdates,
      dtype: shadows.dtype,
      names: this.#registered.names,
      sizes: this.#sizes,
      shadowBytes: (i) => shadows.readBytes(i),
      collected:
        collected === null
          ? null
          : { dtype: collected.dtype as 'float32' | 'float64', bytes: (i) => collected.readBytes(i) },
    };
  }

  // Builds the new arenas first; only then swaps them in (all-or-nothing).
  #applyCheckpoint(decoded: DecodedCheckpoint, operation: string): void {
    const current = this.#open(operation);
    const shadows = arenaFromBytes(decoded.dtype, decoded.shadow, this.#sizes, current.dtype, current.device);
    let collected: ShadowArena | null = null;
    try {
      if (decoded.collected !== null && decoded.collectedDType !== null) {
        collected = arenaFromBytes(decoded.collectedDType, decoded.collected, this.#sizes, decoded.collectedDType, current.device);
      }
    } catch (error) {
      shadows.dispose();
      throw error;
    }
    current.dispose();
    this.#collected?.dispose();
    this.#shadows = shadows;
    this.#collected = collected;
    this.#decay = decoded.decay;
    this.#numUpdates = decoded.numUpdates;
  }

  // Runs async work in call order: at once when nothing is in flight (so updateAsync snapshots
  // the values at call time), else after the work queued before it.
  #enqueue<T>(work: () => Promise<T>): Promise<T> {
    const run = async (): Promise<T> => {
      try {
        return await work();
      } finally {
        this.#asyncInFlight -= 1;
      }
    };
    // The queue moves on before `run` starts: a call made while it runs synchronously (from a
    // parameters iterable, say) must line up behind it, not beside it.
    const previous = this.#queue;
    let settled!: () => void;
    this.#queue = new Promise<void>((resolve) => (settled = resolve));
    const result = this.#asyncInFlight++ === 0 ? run() : previous.then(run);
    result.then(settled, settled);
    return result;
  }

  #decayFor(count: number | null): number {
    return count === null ? this.#decay : Math.min(this.#decay, (1 + count) / (10 + count));
  }

  #open(operation: string): ShadowArena {
    if (this.#shadows === null) throw new Error(`${operation}: this ExponentialMovingAverage has been disposed`);
    return this.#shadows;
  }

  // Open and not in the middle of an updateAsync(): what every synchronous operation needs.
  #idle(operation: string): ShadowArena {
    const shadows = this.#open(operation);
    if (this.#asyncInFlight > 0) {
      throw new Error(`${operation}: an updateAsync(), save() or load() is still running on this EMA; await it first`);
    }
    return shadows;
  }

  #refuseInScope(operation: string): void {
    if (this.#scopes.length > 0) {
      throw new Error(
        `${operation}: an averageParameters() scope is open, so the parameters hold the averaged ` +
          'weights; updating now would average them into themselves. Close the scope first.',
      );
    }
  }

  // Explicit parameters without names of their own are reported under the registered names.
  #withRegisteredNames(entries: ParameterEntry[]): ParameterEntry[] {
    return entries.map((e, i) =>
      e.name === undefined && i < this.#registered.length ? { ...e, name: this.#registered.name(i) } : e,
    );
  }

  #resolve(parameters: Iterable<Parameter> | undefined, operation: string): ResolvedParameters {
    const entries =
      parameters === undefined ? this.#registered.deref(operation) : this.#withRegisteredNames(toEntries(parameters, 'parameters'));
    return new ResolvedParameters(entries, this.#sizes, parameters === undefined ? 'the registered parameters' : 'parameters');
  }
}
