// The same adapter on the wasm backend, where dataSync() is a copy out of the wasm heap and a new
// tensor is a copy into it: training with the callback against the reference, bit-exact swaps, and
// no leaked tensors.
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { ExponentialMovingAverage } from '../src';
import { createEmaCallback, saveAveragedModel } from '../src/tfjs';
import { expectBitsEqual } from './helpers/state';
import { effectiveDecay, expectUpdateClose } from './reference';
import { denseModel, expectValues, perturb, quietBackend, regressionData, snapshot } from './tfjs_helpers';

beforeAll(async () => {
  await quietBackend('wasm');
  expect(tf.getBackend()).toBe('wasm');
});

test('wasm: fit() with the EMA callback follows the reference after every batch; epoch-end swaps are bit-exact', async () => {
  const model = denseModel('wasm_fit', { batchNorm: true });
  model.compile({ optimizer: tf.train.adam(0.05), loss: 'meanSquaredError' });
  const { x, y } = regressionData(64, 21);
  await model.fit(x, y, { epochs: 1, batchSize: 64 }); // Adam makes its slot variables on the first step
  const ema = new ExponentialMovingAverage(model.trainableWeights, { decay: 0.9 });
  let previous = ema.stateDict().shadowParams;
  let raw: Float32Array[] = [];
  let steps = 0;
  class Probe extends tf.Callback {
    override async onBatchEnd(): Promise<void> {
      steps += 1;
      const weights = snapshot(model.trainableWeights);
      const current = ema.stateDict().shadowParams;
      const d = effectiveDecay(0.9, steps);
      current.forEach((s, i) => expectUpdateClose(s, previous[i], weights[i], d, 'float32', 2, `batch ${steps}`));
      previous = current;
      raw = snapshot(model.weights);
    }
    override async onEpochEnd(): Promise<void> {
      expectValues(model.weights, raw, 'after the EMA evaluation');
    }
  }
  const tensors = tf.memory().numTensors;
  const history = await model.fit(x, y, {
    epochs: 2,
    batchSize: 16,
    callbacks: [createEmaCallback(ema, { tf, validationData: [x, y] }), new Probe()],
  });
  expect(tf.memory().numTensors).toBe(tensors);
  expect(steps).toBe(8);
  expect(history.history.val_loss_ema).toHaveLength(2);

  let savedWeights: ArrayBuffer | undefined;
  await saveAveragedModel(
    model,
    ema,
    tf.io.withSaveHandler(async (artifacts) => {
      savedWeights = artifacts.weightData as ArrayBuffer;
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
  );
  const kernel = ema.stateDict().shadowParams[0] as Float32Array;
  expectBitsEqual(new Float32Array(savedWeights!, 0, kernel.length), kernel, 'saved kernel');
  ema.dispose();
  model.dispose();
  tf.dispose([x, y]);
});

test('wasm: thousands of swaps and writes leak no tensors and restore bit for bit', () => {
  const model = denseModel('wasm_leaks', { constraint: true });
  const variable = tf.variable(tf.ones([6]), true, 'wasm/v');
  const params = [...model.trainableWeights, variable];
  const ema = new ExponentialMovingAverage(params, { decay: 0.5 });
  perturb(params, 3);
  ema.update();
  const averaged = ema.stateDict().shadowParams.map((s) => Float32Array.from(s));
  ema.copyTo();
  expectValues(params, averaged, 'after copyTo()');
  perturb(params, 4);
  const raw = snapshot(params);
  const before = tf.memory();
  for (let i = 0; i < 500; i++) {
    ema.update();
    ema.withAveragedParameters(() => undefined);
    ema.store();
    ema.copyTo();
    ema.restore();
  }
  const after = tf.memory();
  expect(after.numTensors).toBe(before.numTensors);
  expect(after.numBytes).toBe(before.numBytes);
  expectValues(params, raw, 'after 500 rounds of swaps and restores');
  ema.dispose();
  model.dispose();
  variable.dispose();
});
