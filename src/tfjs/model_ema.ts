// An EMA over a whole tfjs LayersModel, with a policy for its non-trainable weights (buffers:
// BatchNormalization's moving mean and variance). `model.trainableWeights` leaves them out, so an
// EMA built from it evaluates and saves averaged gamma/beta next to the live statistics of the raw
// weights. The three policies, as the PyTorch libraries have them:
//   'average' (default, timm ModelEma/V2/V3): the buffers are averaged like the weights, so the
//     averaged model gets averaged statistics (in scopes, copyTo(), saveAveragedModel, checkpoints);
//   'copy' (timm ModelEmaV3 exclude_buffers): the buffers are not averaged; the averaged model gets
//     the live model's statistics: in scopes and saveAveragedModel the model keeps them, and
//     copyTo(otherModel) copies them into the other model along with the averaged weights;
//   'ignore': the buffers are no part of the EMA: copyTo(otherModel) leaves the other model's as
//     they are.
import { ExponentialMovingAverage } from '../ema';
import { codedError, expectedRangeError, expectedTypeError, refuseUnknownOptions } from '../errors';
import { EMA_OPTION_KEYS, type EmaOptions } from '../options';
import { type Parameter, ResolvedParameters, toEntries } from '../parameters';

/** What happens to a model's non-trainable weights (BatchNorm statistics). */
export type BufferPolicy = 'average' | 'copy' | 'ignore';

export const BUFFER_POLICIES: readonly BufferPolicy[] = Object.freeze(['average', 'copy', 'ignore'] as const);

export interface EmaForModelOptions extends EmaOptions {
  /** Default 'average' (as timm); 'copy' as timm V3's exclude_buffers; 'ignore' leaves them out. */
  buffers?: BufferPolicy;
}

/** The part of a tfjs LayersModel emaForModel uses: its weights, split as tfjs splits them. */
export interface LayersModelLike {
  readonly trainableWeights: readonly object[];
  readonly nonTrainableWeights: readonly object[];
}

function isModel(value: unknown): value is LayersModelLike {
  const m = value as Partial<LayersModelLike> | null;
  return typeof m === 'object' && m !== null && Array.isArray(m.trainableWeights) && Array.isArray(m.nonTrainableWeights);
}

function parseBuffers(value: unknown): BufferPolicy {
  if (value === undefined) return 'average';
  const expected = "'average', 'copy' or 'ignore'";
  if (typeof value !== 'string') throw expectedTypeError(expected, 'buffers', value);
  if (!(BUFFER_POLICIES as readonly string[]).includes(value)) throw expectedRangeError(expected, 'buffers', JSON.stringify(value));
  return value as BufferPolicy;
}

/** The weights the EMA averages: the trainable ones, and the buffers under 'average'. */
function averagedWeights(model: LayersModelLike, buffers: BufferPolicy): Parameter[] {
  const weights = buffers === 'average' ? [...model.trainableWeights, ...model.nonTrainableWeights] : [...model.trainableWeights];
  // A model's weights are tfjs LayerVariables, a registered kind; the constructor checks each one.
  return weights as Parameter[];
}

/** An ExponentialMovingAverage over a LayersModel's weights, made by emaForModel(). */
export class ModelEma extends ExponentialMovingAverage {
  /** What this EMA does with the model's non-trainable weights. */
  readonly buffers: BufferPolicy;
  readonly #model: WeakRef<LayersModelLike>;

  constructor(model: LayersModelLike, buffers: BufferPolicy, options: EmaOptions) {
    super(averagedWeights(model, buffers), options);
    this.buffers = buffers;
    this.#model = new WeakRef(model);
  }

  /**
   * Writes the shadows into the parameters (as ExponentialMovingAverage.copyTo), or into another
   * model of the same architecture (an evaluation copy): its trainable weights, and its
   * non-trainable ones by the policy: averaged ('average'), the live model's ('copy'), or left as
   * they are ('ignore'). Everything is checked before anything is written.
   */
  override copyTo(target?: Iterable<Parameter> | LayersModelLike): void {
    if (!isModel(target) || Symbol.iterator in target) {
      super.copyTo(target as Iterable<Parameter> | undefined);
      return;
    }
    let copyBuffers: (() => void) | undefined;
    const source = this.#model.deref();
    if (this.buffers === 'copy' && source !== target) {
      if (source === undefined) {
        throw codedError('PARAMETER_GONE', "copyTo(): the model this EMA was made for has been garbage-collected, so there are no live buffers to copy (buffers: 'copy')");
      }
      const live = toEntries(source.nonTrainableWeights, 'the model\'s nonTrainableWeights');
      const from = new ResolvedParameters(live, live.map((e) => e.kind.numel(e.value)), 'the model\'s nonTrainableWeights');
      const to = new ResolvedParameters(toEntries(target.nonTrainableWeights, 'target.nonTrainableWeights'), from.entries.map((e) => e.kind.numel(e.value)), 'target.nonTrainableWeights');
      copyBuffers = () => {
        const values = from.read();
        to.write((targets) => targets.forEach((t, i) => t.set(values[i])));
      };
    }
    super.copyTo(averagedWeights(target, this.buffers) as Iterable<Parameter>);
    copyBuffers?.();
  }
}

/**
 * An ExponentialMovingAverage over a tfjs LayersModel: its trainable weights always, and its
 * non-trainable weights (BatchNormalization's moving mean and variance) by `buffers`: 'average'
 * (default), 'copy' or 'ignore' (see ModelEma). The other options are the constructor's.
 */
export function emaForModel(model: LayersModelLike, options: EmaForModelOptions): ModelEma {
  if (!isModel(model)) throw expectedTypeError('a tfjs LayersModel (with trainableWeights and nonTrainableWeights)', 'model', model);
  if (typeof options !== 'object' || options === null) throw expectedTypeError('an options object with decay', 'options', options);
  refuseUnknownOptions(options, [...EMA_OPTION_KEYS, 'buffers'], 'options');
  const { buffers, ...emaOptions } = options;
  return new ModelEma(model, parseBuffers(buffers), emaOptions);
}
