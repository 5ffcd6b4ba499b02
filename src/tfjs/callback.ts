// A model.fit() / model.fitDataset() callback that keeps the EMA up to date and, at epoch ends,
// evaluates validation data with the averaged weights.
//
// model.fit() tells callback objects from plain `{ onBatchEnd, ... }` configs with `instanceof` on
// its own tf.Callback class, so the callback's class must extend the Callback of the very tfjs copy
// the model comes from: it is built on demand from the `tf` module given (or found), once per module.
import type { ExponentialMovingAverage } from '../ema';
import { describe, expectedRangeError, expectedTypeError, invalidArgument, refuseUnknownOptions } from '../errors';
import { isTfjsModule, loadTfjs, TfjsModule } from './module';

/**
 * Data to evaluate with the averaged weights: `[x, y]` or `[x, y, sampleWeight]` tensors (as
 * model.evaluate() takes them), or a tf.data.Dataset (as model.evaluateDataset() takes it).
 */
export type EmaValidationData =
  | readonly [x: unknown, y: unknown]
  | readonly [x: unknown, y: unknown, sampleWeight: unknown]
  | { iterator(): unknown };

export interface EmaCallbackOptions {
  /**
   * The TensorFlow.js module the model was built with (`import * as tf from ...`). Default: the
   * first of @tensorflow/tfjs-node, @tensorflow/tfjs-node-gpu, @tensorflow/tfjs that is installed.
   */
  tf?: TfjsModule;
  /** Update the EMA after every `updateEvery`-th batch. Default 1 (every batch). */
  updateEvery?: number;
  /**
   * Batches to train before the first update, counted over every fit() call this callback takes
   * part in. Default 0. With warm-up on (the EMA's useNumUpdates), the first updates after it
   * mostly forget the starting values.
   */
  startStep?: number;
  /**
   * Evaluated at epoch ends with the averaged weights; the results go into the epoch logs (and so
   * into the History) as `val_<metric>_ema` (`val_loss_ema`, `val_acc_ema`, ...), next to fit()'s
   * own `val_loss` of the raw weights.
   */
  validationData?: EmaValidationData;
  /** Batch size for evaluating tensors. Default 32, as model.evaluate(). */
  validationBatchSize?: number;
  /** For a Dataset: how many batches to evaluate. Default: all of it. */
  validationBatches?: number;
  /** Evaluate every `validationFreq` epochs (after epochs validationFreq, 2 * validationFreq, ...). Default 1. */
  validationFreq?: number;
}

/** A tfjs-layers callback (an instance of the tf.Callback it was built from) driving an EMA. */
export interface EmaCallback {
  readonly ema: ExponentialMovingAverage;
  /** Batches seen so far, over every fit() call. */
  readonly step: number;
  /** Updates this callback has applied. */
  readonly updates: number;
  onTrainBegin(logs?: object): Promise<void>;
  onBatchEnd(batch: number, logs?: object): Promise<void>;
  onEpochEnd(epoch: number, logs?: object): Promise<void>;
}

interface ScalarLike {
  data(): Promise<ArrayLike<number>>;
  dispose(): void;
}

// The part of a tfjs LayersModel used at epoch ends.
interface EvaluableModel {
  readonly metricsNames: string[];
  evaluate(x: unknown, y: unknown, args?: { batchSize?: number; sampleWeight?: unknown }): ScalarLike | ScalarLike[];
  evaluateDataset(dataset: unknown, args?: { batches?: number }): Promise<ScalarLike | ScalarLike[]>;
}

interface Settings {
  updateEvery: number;
  startStep: number;
  validationData: EmaValidationData | undefined;
  validationBatchSize: number | undefined;
  validationBatches: number | undefined;
  validationFreq: number;
}

function integerOption(options: EmaCallbackOptions, key: keyof EmaCallbackOptions, min: number, fallback: number): number;
function integerOption(options: EmaCallbackOptions, key: keyof EmaCallbackOptions, min: number, fallback: undefined): number | undefined;
function integerOption(
  options: EmaCallbackOptions,
  key: keyof EmaCallbackOptions,
  min: number,
  fallback: number | undefined,
): number | undefined {
  const value = options[key];
  if (value === undefined) return fallback;
  const expected = min === 0 ? 'a non-negative integer' : 'a positive integer';
  if (typeof value !== 'number') throw expectedTypeError(expected, key, value);
  if (!Number.isSafeInteger(value) || value < min) throw expectedRangeError(expected, key, describe(value));
  return value;
}

function isValidationData(value: unknown): value is EmaValidationData {
  if (Array.isArray(value)) return value.length === 2 || value.length === 3;
  return typeof value === 'object' && value !== null && typeof (value as { iterator?: unknown }).iterator === 'function';
}

function parseSettings(options: EmaCallbackOptions): Settings {
  const validationData = options.validationData;
  if (validationData !== undefined && !isValidationData(validationData)) {
    throw expectedTypeError('[x, y], [x, y, sampleWeight] or a tf.data.Dataset', 'validationData', validationData);
  }
  return {
    updateEvery: integerOption(options, 'updateEvery', 1, 1),
    startStep: integerOption(options, 'startStep', 0, 0),
    validationData,
    validationBatchSize: integerOption(options, 'validationBatchSize', 1, undefined),
    validationBatches: integerOption(options, 'validationBatches', 1, undefined),
    validationFreq: integerOption(options, 'validationFreq', 1, 1),
  };
}

function evaluate(model: EvaluableModel, settings: Settings): ScalarLike | ScalarLike[] | Promise<ScalarLike | ScalarLike[]> {
  const data = settings.validationData!;
  if (Array.isArray(data)) {
    const [x, y, sampleWeight] = data as readonly unknown[];
    const args: { batchSize?: number; sampleWeight?: unknown } = {};
    if (settings.validationBatchSize !== undefined) args.batchSize = settings.validationBatchSize;
    if (sampleWeight !== undefined) args.sampleWeight = sampleWeight;
    return model.evaluate(x, y, args);
  }
  return model.evaluateDataset(data, settings.validationBatches === undefined ? {} : { batches: settings.validationBatches });
}

async function valuesOf(outputs: ScalarLike | ScalarLike[]): Promise<number[]> {
  const scalars = Array.isArray(outputs) ? outputs : [outputs];
  try {
    return await Promise.all(scalars.map(async (s) => (await s.data())[0]));
  } finally {
    for (const s of scalars) s.dispose();
  }
}

function wrongCopy(hook: string): Error {
  return invalidArgument(
    `EmaCallback.${hook}() was called on an object that is not the callback: model.fit() did not ` +
      'recognise it as a callback, because it was built from another copy of TensorFlow.js than the ' +
      "model's. Create it with createEmaCallback(ema, { tf }), passing the tf module the model was built with.",
    Error,
  );
}

type EmaCallbackClass = new (ema: ExponentialMovingAverage, settings: Settings) => EmaCallback;
type CallbackBase = new () => { model: unknown };

const classes = new WeakMap<object, EmaCallbackClass>();

function emaCallbackClass(tf: TfjsModule): EmaCallbackClass {
  const Base = tf.Callback as unknown as CallbackBase;
  const cached = classes.get(Base);
  if (cached !== undefined) return cached;

  class EmaCallbackImpl extends Base implements EmaCallback {
    readonly #ema: ExponentialMovingAverage;
    readonly #settings: Settings;
    #step = 0;
    #updates = 0;
    #samples: number | undefined = 0; // since the last update; undefined when a batch had no size

    constructor(ema: ExponentialMovingAverage, settings: Settings) {
      super();
      this.#ema = ema;
      this.#settings = settings;
    }

    get ema(): ExponentialMovingAverage {
      return this.#ema;
    }

    get step(): number {
      return this.#step;
    }

    get updates(): number {
      return this.#updates;
    }

    // tf.Callback.setModel() insists on its own LayersModel class; any model with evaluate() will do.
    setModel(model: unknown): void {
      this.model = model;
    }

    async onTrainBegin(): Promise<void> {
      if (!(#ema in this)) throw wrongCopy('onTrainBegin');
    }

    // Synchronous update(): fit() awaits every callback before the next batch anyway, so
    // updateAsync() could not overlap with training; it would only add a thread hop. But when the
    // EMA is busy (a save() started elsewhere and not awaited), the update is queued behind it with
    // updateAsync() and awaited: training waits for the checkpoint instead of failing, the weights
    // do not move until the queued update has read them, and its errors reject fit() as update()'s would.
    // Each update's progress: the batches since the last update (updateEvery) as steps, and the
    // sum of their sizes (tfjs's batch logs `size`) as samples, so the schedule follows training.
    async onBatchEnd(_batch?: number, logs?: object): Promise<void> {
      if (!(#ema in this)) throw wrongCopy('onBatchEnd');
      const step = ++this.#step;
      const { startStep, updateEvery } = this.#settings;
      if (step <= startStep) return;
      const size = (logs as { size?: unknown } | undefined)?.size;
      this.#samples = typeof size === 'number' && this.#samples !== undefined ? this.#samples + size : undefined;
      if ((step - startStep) % updateEvery === 0) {
        const samples = this.#samples;
        this.#samples = 0;
        const progress = samples === undefined ? { steps: updateEvery } : { steps: updateEvery, samples };
        if (this.#ema.busy) await this.#ema.updateAsync(undefined, progress);
        else this.#ema.update(undefined, progress);
        this.#updates += 1;
      }
    }

    async onEpochEnd(epoch: number, logs?: object): Promise<void> {
      if (!(#ema in this)) throw wrongCopy('onEpochEnd');
      const settings = this.#settings;
      if (settings.validationData === undefined || (epoch + 1) % settings.validationFreq !== 0) return;
      const model = this.model as EvaluableModel | null;
      if (model === null || typeof model?.evaluate !== 'function') {
        throw invalidArgument('EmaCallback.onEpochEnd(): no model to evaluate; use the callback in model.fit() or model.fitDataset()', Error);
      }
      // A checkpoint in flight first settles (scopes open only on an idle EMA). The averaged
      // weights are in place only while this runs; the raw ones are back before fit() goes on,
      // even when evaluation throws.
      while (this.#ema.busy) await this.#ema.settled();
      const outputs = await this.#ema.withAveragedParameters(() => evaluate(model, settings));
      const values = await valuesOf(outputs);
      if (logs === undefined || logs === null) return;
      const names = model.metricsNames;
      values.forEach((value, i) => {
        (logs as Record<string, number>)[`val_${names[i] ?? `metric${i}`}_ema`] = value;
      });
    }
  }

  classes.set(Base, EmaCallbackImpl);
  return EmaCallbackImpl;
}

/**
 * A callback for `model.fit(x, y, { callbacks: [callback] })` and model.fitDataset(): after every
 * batch (or every `updateEvery`-th, once `startStep` batches have passed) it calls `ema.update()`
 * on the EMA's registered parameters, typically `new ExponentialMovingAverage(model.trainableWeights,
 * { decay })`. With `validationData`, each epoch end also evaluates the model with the averaged
 * weights swapped in, logs `val_<metric>_ema`, and puts the raw weights back (bit for bit) before
 * training goes on.
 *
 * Pass `tf` (the module the model was built with) so that the callback extends that module's
 * tf.Callback; without it, tfjs-node, tfjs-node-gpu or tfjs is loaded, whichever is installed first.
 */
const CALLBACK_OPTION_KEYS = ['tf', 'updateEvery', 'startStep', 'validationData', 'validationBatchSize', 'validationBatches', 'validationFreq'] as const satisfies readonly (keyof EmaCallbackOptions)[];

export function createEmaCallback<TF extends TfjsModule>(
  ema: ExponentialMovingAverage,
  options: EmaCallbackOptions & { tf: TF },
): EmaCallback & InstanceType<TF['Callback']>;
export function createEmaCallback(ema: ExponentialMovingAverage, options?: EmaCallbackOptions): EmaCallback;
export function createEmaCallback(ema: ExponentialMovingAverage, options: EmaCallbackOptions = {}): EmaCallback {
  if (typeof ema !== 'object' || ema === null || typeof ema.update !== 'function' || typeof ema.withAveragedParameters !== 'function') {
    throw expectedTypeError('an ExponentialMovingAverage', 'ema', ema);
  }
  if (typeof options !== 'object' || options === null) throw expectedTypeError('an options object', 'options', options);
  refuseUnknownOptions(options, CALLBACK_OPTION_KEYS, 'options');
  if (options.tf !== undefined && !isTfjsModule(options.tf)) {
    throw expectedTypeError('a TensorFlow.js module (with Callback)', 'tf', options.tf);
  }
  const settings = parseSettings(options);
  const Impl = emaCallbackClass(options.tf ?? loadTfjs());
  return new Impl(ema, settings);
}
