// createEmaCallback passes training progress: the batches since the last update (updateEvery) as
// steps and the sum of their sizes as samples, so a schedule in samples follows the data seen.
import * as tf from '@tensorflow/tfjs';
import { ExponentialMovingAverage } from '../src';
import { createEmaCallback } from '../src/tfjs';
import { denseModel, quietBackend, regressionData } from './tfjs_helpers';

beforeAll(async () => {
  await quietBackend();
});

test('steps = updateEvery and samples = the batch sizes since the last update (last batch smaller)', async () => {
  const model = denseModel('progress');
  model.compile({ optimizer: tf.train.sgd(0.1), loss: 'meanSquaredError' });
  const { x, y } = regressionData(72, 3); // batches of 16: 16, 16, 16, 16, 8
  const ema = new ExponentialMovingAverage(model.trainableWeights, {
    decay: 0.999,
    schedule: { kind: 'half-life', halfLife: 100, unit: 'samples' },
  });
  const callback = createEmaCallback(ema, { tf, updateEvery: 2, startStep: 1 });
  await model.fit(x, y, { epochs: 1, batchSize: 16, callbacks: [callback] }); // updates after batches 3, 5
  expect(callback.updates).toBe(2);
  expect(ema.step).toBe(4);
  expect(ema.samples).toBe(16 + 16 + 16 + 8);
  ema.dispose();
  model.dispose();
  tf.dispose([x, y]);
});
