#!/usr/bin/env node
// How much the tfjs adapter costs: EMA operations over a ~25M-parameter tfjs model's weights
// (model.trainableWeights, cpu backend) against the same values held as plain Float32Arrays, in one
// run, interleaved so that both see the same machine load. One tfjs training step is timed too, for
// scale.
//
//   npm run build:ts && node --expose-gc examples/bench_tfjs_update.js [repeats]
'use strict';
const { ExponentialMovingAverage, cpuInfo } = require('../dist/index.js');
const { loadTfjs } = require('../dist/tfjs/index.js');

const tf = loadTfjs();
const WIDTH = 2500;
const LAYERS = 4; // 4 x (2500 x 2500 + 2500) = 25.01M parameters
const REPEATS = Number(process.argv[2] ?? 15);

function ms(start) {
  return Number(process.hrtime.bigint() - start) / 1e6;
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

function time(fn) {
  const start = process.hrtime.bigint();
  fn();
  return ms(start);
}

async function timeAsync(fn) {
  const start = process.hrtime.bigint();
  await fn();
  return ms(start);
}

async function main() {
  const warn = console.warn;
  console.warn = () => undefined; // the cpu backend's "install tfjs-node" banner
  await tf.ready();
  const model = tf.sequential();
  for (let i = 0; i < LAYERS; i++) {
    model.add(tf.layers.dense({ inputShape: i === 0 ? [WIDTH] : undefined, units: WIDTH, activation: i < LAYERS - 1 ? 'relu' : 'linear' }));
  }
  model.compile({ optimizer: tf.train.sgd(1e-4), loss: 'meanSquaredError' });
  console.warn = warn;

  const weights = model.trainableWeights;
  const arrays = weights.map((w) => Float32Array.from(w.read().dataSync()));
  const numel = arrays.reduce((n, a) => n + a.length, 0);
  const tfEma = new ExponentialMovingAverage(weights, { decay: 0.999 });
  const arrayEma = new ExponentialMovingAverage(arrays, { decay: 0.999 });
  const info = cpuInfo();
  console.log(
    `tfjs ${tf.version.tfjs} backend '${tf.getBackend()}', ${(numel / 1e6).toFixed(2)}M parameters in ${weights.length} tensors; ` +
      `model-ema kernels: ${JSON.stringify(info)}`,
  );

  const operations = {
    'update()': [(ema) => ema.update()],
    'updateAsync()': [(ema) => ema.updateAsync(), true],
    'copyTo()': [(ema) => ema.copyTo()],
    'store()': [(ema) => ema.store()],
    'restore()': [(ema) => ema.restore()],
    'swap scope (open + close)': [(ema) => ema.averageParameters().restore()],
  };
  const results = [];
  for (const [name, [op, isAsync]] of Object.entries(operations)) {
    const t = { tfjs: [], arrays: [] };
    for (let i = 0; i < REPEATS + 2; i++) {
      global.gc?.();
      const a = isAsync ? await timeAsync(() => op(tfEma)) : time(() => op(tfEma));
      const b = isAsync ? await timeAsync(() => op(arrayEma)) : time(() => op(arrayEma));
      if (i >= 2) {
        t.tfjs.push(a);
        t.arrays.push(b);
      }
    }
    results.push({ name, tfjs: median(t.tfjs), arrays: median(t.arrays), tfjsMin: Math.min(...t.tfjs), arraysMin: Math.min(...t.arrays) });
  }

  const tensors = tf.memory().numTensors;
  const { x, y } = tf.tidy(() => ({ x: tf.randomNormal([32, WIDTH]), y: tf.randomNormal([32, WIDTH]) }));
  await model.fit(x, y, { epochs: 1, batchSize: 32, verbose: 0 }); // warm-up
  const step = [];
  for (let i = 0; i < 2; i++) step.push(await timeAsync(() => model.fit(x, y, { epochs: 1, batchSize: 32, verbose: 0 })));
  tf.dispose([x, y]);

  console.log(`\n${REPEATS} runs each, median (min) in ms, interleaved tfjs / Float32Array:`);
  console.log('operation                      tfjs weights          Float32Arrays        ratio');
  for (const r of results) {
    console.log(
      `${r.name.padEnd(28)} ${`${r.tfjs.toFixed(1)} (${r.tfjsMin.toFixed(1)})`.padStart(16)} ${`${r.arrays.toFixed(1)} (${r.arraysMin.toFixed(1)})`.padStart(20)} ${(r.tfjs / r.arrays).toFixed(2).padStart(12)}`,
    );
  }
  const update = results[0];
  console.log(
    `\nupdate() moves 12 bytes per parameter: ${((12 * numel) / (update.tfjs * 1e6)).toFixed(1)} GB/s over the tfjs weights, ` +
      `${((12 * numel) / (update.arrays * 1e6)).toFixed(1)} GB/s over Float32Arrays`,
  );
  console.log(`one training step of this model (batch 32, SGD, cpu backend): ${step.map((s) => s.toFixed(0)).join(', ')} ms`);
  console.log(`tensors before/after the EMA operations and training: ${tensors} / ${tf.memory().numTensors}`);
  tfEma.dispose();
  arrayEma.dispose();
  model.dispose();
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
