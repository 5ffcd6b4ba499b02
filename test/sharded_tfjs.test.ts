// options.shard through model-ema/tfjs: emaForModel() over a BatchNorm model on two ranks, each
// keeping its share of the weights; copyTo() into an evaluation copy from both ranks gives exactly
// the weights one unsharded emaForModel() gives.
import * as tf from '@tensorflow/tfjs';
import { emaForModel } from '../src/tfjs';
import { quietBackend } from './tfjs_helpers';

beforeAll(() => quietBackend('cpu'));

const build = (): tf.Sequential =>
  tf.sequential({ layers: [tf.layers.dense({ inputShape: [4], units: 8, name: 'a' }), tf.layers.batchNormalization({ name: 'bn' }), tf.layers.dense({ units: 1, name: 'b' })] });

test('two ranks of emaForModel({ shard }) write, together, what one unsharded EMA writes', () => {
  const model = build();
  const ranks = [0, 1].map((rank) => emaForModel(model, { decay: 0.9, shard: { rank, worldSize: 2 } }));
  const full = emaForModel(model, { decay: 0.9 });
  for (let step = 1; step <= 3; step++) {
    tf.tidy(() => model.weights.forEach((w, i) => w.write(w.read().add(0.1 * step + i))));
    for (const ema of [...ranks, full]) ema.update();
  }
  // 8 tensors (2 dense kernels and biases, BatchNorm gamma, beta, moving mean and variance), split.
  expect(ranks.map((e) => e.shardInfo!.indices.length).reduce((a, b) => a + b)).toBe(8);
  expect(full.size).toBe(8);
  const fromRanks = build();
  for (const ema of ranks) ema.copyTo(fromRanks);
  const fromFull = build();
  full.copyTo(fromFull);
  const a = fromRanks.getWeights().map((w) => Array.from(w.dataSync()));
  const b = fromFull.getWeights().map((w) => Array.from(w.dataSync()));
  expect(a).toEqual(b);
  expect(a).not.toEqual(model.getWeights().map((w) => Array.from(w.dataSync()))); // averages, not the raw weights
});
