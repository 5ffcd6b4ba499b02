// emaForModel(): an EMA over a tfjs LayersModel with BatchNormalization, for each policy of the
// non-trainable weights (moving mean and variance), against float64 averages recomputed from the
// weights after every step: 'average' gives the averaged model averaged statistics, 'copy' the live
// model's (copied into another model by copyTo), 'ignore' leaves them out. Scopes, copyTo() into an
// evaluation copy of the model, and saveAveragedModel() follow the policy.
import * as tf from '@tensorflow/tfjs';
import { ERROR_CODES } from '../src';
import { createEmaCallback, emaForModel, saveAveragedModel, type BufferPolicy, type ModelEma } from '../src/tfjs';
import { expectBitsEqual, expectError } from './helpers/state';
import { updateReference } from './reference';
import { denseModel, perturb, quietBackend, regressionData, snapshot } from './tfjs_helpers';

beforeAll(() => quietBackend('cpu'));

const DECAY = 0.75;

function expectNear(actual: ArrayLike<number>, expected: ArrayLike<number>, context: string): void {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) {
    if (Math.abs(actual[i] - expected[i]) > 2e-6 * (1 + Math.abs(expected[i]))) {
      throw new Error(`${context}: element ${i} is ${actual[i]}, expected ${expected[i]}`);
    }
  }
}

/** A BatchNorm model, its EMA, and float64 averages of every weight over `steps` perturbations (an optimizer step that also moves the statistics). */
function trained(prefix: string, buffers: BufferPolicy, steps = 4) {
  const model = denseModel(prefix, { batchNorm: true });
  const ema = emaForModel(model, { decay: DECAY, useNumUpdates: false, buffers });
  const all = [...model.trainableWeights, ...model.nonTrainableWeights];
  let averages: Float64Array<ArrayBufferLike>[] = snapshot(all).map((s) => Float64Array.from(s));
  for (let step = 1; step <= steps; step++) {
    perturb(model.weights, 100 * step + prefix.length);
    ema.update();
    const now = snapshot(all);
    averages = averages.map((a, i) => updateReference(a, now[i], DECAY));
  }
  const trainable = model.trainableWeights.length;
  return { model, ema, all, averages, trainable };
}

/** Each weight of a saved model's artifacts by name. */
async function savedWeights(model: tf.LayersModel, ema: ModelEma): Promise<Map<string, Float32Array>> {
  let artifacts: tf.io.ModelArtifacts | undefined;
  await saveAveragedModel(model, ema, tf.io.withSaveHandler(async (a) => {
    artifacts = a;
    return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
  }));
  const decoded = tf.io.decodeWeights(artifacts!.weightData!, artifacts!.weightSpecs!);
  return new Map(Object.entries(decoded).map(([name, t]) => [name, t.dataSync() as Float32Array]));
}

test('the model has BatchNorm statistics that are not trainable weights', () => {
  const model = denseModel('plain', { batchNorm: true });
  expect(model.nonTrainableWeights.map((v) => v.name)).toEqual(['plain_bn/moving_mean', 'plain_bn/moving_variance']);
  expect(model.trainableWeights.map((v) => v.name)).not.toContain('plain_bn/moving_mean');
});

describe.each(['average', 'copy', 'ignore'] as const)("buffers: '%s'", (buffers) => {
  test('the EMA averages the trainable weights, and the statistics only under average', () => {
    const { model, ema, all, averages, trainable } = trained(`p_${buffers}`, buffers);
    expect(ema.buffers).toBe(buffers);
    const averaged = buffers === 'average' ? all : model.trainableWeights;
    expect(ema.names).toEqual(averaged.map((v) => v.name));
    const shadows = ema.stateDict().shadowParams;
    averaged.forEach((v, i) => expectNear(shadows[i], averages[i], v.name));
    expect(trainable).toBe(6);
  });

  test('in a scope the model has averaged weights and the statistics the policy gives; raw ones come back', () => {
    const { model, ema, all, averages, trainable } = trained(`s_${buffers}`, buffers);
    const live = snapshot(all);
    const inside = ema.withAveragedParameters(() => snapshot(all));
    all.forEach((v, i) => {
      if (i < trainable || buffers === 'average') expectNear(inside[i], averages[i], `${v.name} in the scope`);
      else expectBitsEqual(inside[i], live[i], `${v.name} in the scope (live)`);
    });
    snapshot(all).forEach((s, i) => expectBitsEqual(s, live[i], `${all[i].name} after the scope`));
    expect(model.nonTrainableWeights.length).toBe(2);
  });

  test('copyTo(another model) writes the averaged weights and, by the policy, the statistics', () => {
    const { model, ema, all, averages, trainable } = trained(`c_${buffers}`, buffers);
    const target = denseModel(`t_${buffers}`, { batchNorm: true });
    const targetAll = [...target.trainableWeights, ...target.nonTrainableWeights];
    const targetBefore = snapshot(targetAll);
    const live = snapshot(all);
    ema.copyTo(target);
    const after = snapshot(targetAll);
    targetAll.forEach((v, i) => {
      if (i < trainable || buffers === 'average') expectNear(after[i], averages[i], v.name);
      else if (buffers === 'copy') expectBitsEqual(after[i], live[i], `${v.name} (the live model's)`);
      else expectBitsEqual(after[i], targetBefore[i], `${v.name} (left as it was)`);
    });
    snapshot(all).forEach((s, i) => expectBitsEqual(s, live[i], `source ${all[i].name} unchanged`));
    expect(snapshot(model.weights)).toHaveLength(8);
  });

  test('saveAveragedModel saves the averaged weights with the statistics the policy gives', async () => {
    const { model, ema, all, averages, trainable } = trained(`v_${buffers}`, buffers);
    const live = snapshot(all);
    const saved = await savedWeights(model, ema);
    all.forEach((v, i) => {
      const values = saved.get(v.name)!;
      if (i < trainable || buffers === 'average') expectNear(values, averages[i], `saved ${v.name}`);
      else expectBitsEqual(values, live[i], `saved ${v.name} (live)`);
    });
    snapshot(all).forEach((s, i) => expectBitsEqual(s, live[i], `${all[i].name} after saving`));
  });
});

test("in model.fit() the statistics move, and 'average' averages them after every batch", async () => {
  const model = denseModel('fit', { batchNorm: true });
  model.compile({ optimizer: tf.train.sgd(0.1), loss: 'meanSquaredError' });
  const ema = emaForModel(model, { decay: 0.8, useNumUpdates: false });
  const stats = model.nonTrainableWeights;
  const start = snapshot(stats);
  let averages: Float64Array<ArrayBufferLike>[] = start.map((s) => Float64Array.from(s));
  const probe = new (class extends tf.Callback {
    override async onBatchEnd(): Promise<void> {
      const now = snapshot(stats); // after the EMA callback's update of this batch
      averages = averages.map((a, i) => updateReference(a, now[i], 0.8));
    }
  })();
  const { x, y } = regressionData(64, 3);
  await model.fit(x, y, { epochs: 1, batchSize: 8, shuffle: false, verbose: 0, callbacks: [createEmaCallback(ema, { tf }), probe] });
  const live = snapshot(stats);
  expect(Array.from(live[0])).not.toEqual(Array.from(start[0])); // BatchNorm moved its moving mean
  const shadows = ema.stateDict().shadowParams.slice(model.trainableWeights.length);
  shadows.forEach((s, i) => expectNear(s, averages[i], stats[i].name));
  expect(Math.max(...shadows[0].map((s, k) => Math.abs(s - live[0][k])))).toBeGreaterThan(1e-4); // the average is not the live value
  x.dispose();
  y.dispose();
});

describe('emaForModel() checks its arguments', () => {
  const model = denseModel('args', { batchNorm: true });
  test.each([
    [{ decay: 0.9, buffers: 'avg' }, 'RangeError', ['buffers', '"avg"', "'average', 'copy' or 'ignore'"]],
    [{ decay: 0.9, buffers: 1 }, 'TypeError', ['buffers', '1']],
    [{ decay: 0.9, bufers: 'copy' }, 'TypeError', ["'bufers'", "did you mean 'buffers'"]],
    [{ decay: 0.9, dtyp: 'float16' }, 'TypeError', ["'dtyp'", "did you mean 'dtype'"]],
    [{ decay: 2, buffers: 'copy' }, 'RangeError', ['decay', '2']],
    [{ buffers: 'copy' }, 'TypeError', ['decay', 'undefined']],
    [null, 'TypeError', ['options', 'null']],
  ])('%p is a %s', (options, name, message) => {
    expectError(() => emaForModel(model, options as never), { name, message, code: ERROR_CODES.INVALID_ARGUMENT });
  });

  test('a model is required', () => {
    for (const bad of [undefined, {}, [1, 2], model.trainableWeights]) {
      expectError(() => emaForModel(bad as never, { decay: 0.9 }), { name: 'TypeError', message: ['model', 'LayersModel'], code: ERROR_CODES.INVALID_ARGUMENT });
    }
  });

  test('copyTo() a model of another architecture changes nothing and names the mismatch', () => {
    for (const buffers of ['average', 'copy'] as const) {
      const ema = emaForModel(model, { decay: 0.9, buffers });
      const other = denseModel(`other_${buffers}`); // no BatchNorm
      const before = snapshot(other.weights);
      expectError(() => ema.copyTo(other), { name: 'RangeError', message: ['parameters'], code: ERROR_CODES.INVALID_ARGUMENT });
      snapshot(other.weights).forEach((s, i) => expectBitsEqual(s, before[i], other.weights[i].name));
    }
  });

  test('copyTo() with parameters still takes parameters, as ExponentialMovingAverage does', () => {
    const ema = emaForModel(model, { decay: 0.9, buffers: 'ignore' });
    const arrays = model.trainableWeights.map((v) => new Float32Array(v.shape.reduce<number>((n, d) => n * (d ?? 0), 1)));
    ema.copyTo(arrays);
    arrays.forEach((a, i) => expectBitsEqual(a, ema.stateDict().shadowParams[i] as Float32Array, `parameter ${i}`));
  });
});
