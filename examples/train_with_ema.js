#!/usr/bin/env node
// Training a small TensorFlow.js model with an exponential moving average of its weights.
//
// The task is deliberately noisy: a smooth function of 8 inputs, learned from labels with heavy
// noise, by plain SGD with a high learning rate and small batches. The raw weights keep jumping
// around the optimum; their average sits closer to it, so the averaged weights score a lower loss
// on clean validation data. Every epoch prints both, and the averaged model is saved at the end as
// an ordinary tfjs model (model.json + weights.bin) and loaded back to check it.
//
//   npm run build:ts && node examples/train_with_ema.js [output folder]
//
// Uses @tensorflow/tfjs-node when it is installed (native kernels, file:// saving), otherwise
// @tensorflow/tfjs on its cpu backend.
'use strict';
const os = require('node:os');
const path = require('node:path');
const { ExponentialMovingAverage } = require('../dist/index.js');
const { createEmaCallback, fileIOHandler, loadTfjs, saveAveragedModel } = require('../dist/tfjs/index.js');

const tf = loadTfjs(); // the same module the model is built with below
const nativeTf = typeof tf.node === 'object'; // tfjs-node (or -gpu) adds tf.node

const INPUTS = 8;
const TRAIN = 4096;
const VALIDATION = 2048;
const LABEL_NOISE = 1.0; // standard deviation of the noise on training labels (the signal's is ~1)
const EPOCHS = 12;
const BATCH = 16;
const LEARNING_RATE = 0.08;
const DECAY = 0.995; // averages over roughly the last 200 batches (1 / (1 - decay))

// A seeded generator, so every run trains on the same data.
function random(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function gaussian(next) {
  return Math.sqrt(-2 * Math.log(1 - next())) * Math.cos(2 * Math.PI * next());
}

// y = sin(2 x0) + x1 x2 - 0.5 x3^2 + 0.5 tanh(3 x4) + ...: smooth, nonlinear, about unit variance.
function makeData(samples, noise, seed) {
  const next = random(seed);
  const x = new Float32Array(samples * INPUTS);
  const y = new Float32Array(samples);
  for (let i = 0; i < samples; i++) {
    const v = x.subarray(i * INPUTS, (i + 1) * INPUTS);
    for (let j = 0; j < INPUTS; j++) v[j] = next() * 2 - 1;
    const signal =
      Math.sin(2 * v[0]) + v[1] * v[2] - 0.5 * v[3] * v[3] + 0.5 * Math.tanh(3 * v[4]) + 0.3 * v[5] - 0.4 * v[6] * v[7];
    y[i] = signal + noise * gaussian(next);
  }
  return { x: tf.tensor2d(x, [samples, INPUTS]), y: tf.tensor2d(y, [samples, 1]) };
}

function buildModel() {
  const model = tf.sequential({ name: 'demo' });
  model.add(tf.layers.dense({ inputShape: [INPUTS], units: 64, activation: 'relu', kernelInitializer: tf.initializers.heNormal({ seed: 1 }) }));
  model.add(tf.layers.dense({ units: 64, activation: 'relu', kernelInitializer: tf.initializers.heNormal({ seed: 2 }) }));
  model.add(tf.layers.dense({ units: 1, kernelInitializer: tf.initializers.glorotNormal({ seed: 3 }) }));
  model.compile({ optimizer: tf.train.sgd(LEARNING_RATE), loss: 'meanSquaredError' });
  return model;
}

const fmt = (v) => v.toFixed(4);
// In a tf.Callback's logs, fit()'s own metrics may still be scalar tensors.
const valueOf = (v) => (typeof v === 'number' ? v : v.dataSync()[0]);

async function main() {
  const started = Date.now();
  // tfjs on the cpu backend prints an "install tfjs-node" banner on first use; we say it below.
  const warn = console.warn;
  console.warn = () => undefined;
  await tf.ready();
  const train = makeData(TRAIN, LABEL_NOISE, 1);
  const val = makeData(VALIDATION, 0, 2); // clean labels: the loss measures how well f is learned
  console.warn = warn;

  const model = buildModel();
  const ema = new ExponentialMovingAverage(model.trainableWeights, { decay: DECAY });
  const parameters = ema.sizes.reduce((a, b) => a + b, 0);
  console.log(
    `model-ema demo: tfjs ${tf.version.tfjs} on '${tf.getBackend()}'${nativeTf ? '' : ' (install @tensorflow/tfjs-node for native speed)'}, ` +
      `${parameters} parameters in ${ema.size} tensors, EMA decay ${DECAY}`,
  );
  console.log(
    `${TRAIN} noisy training samples (label noise sd ${LABEL_NOISE}), ${VALIDATION} clean validation samples, ` +
      `SGD lr ${LEARNING_RATE}, batch ${BATCH}\n`,
  );
  console.log('epoch   train loss   val loss (raw)   val loss (EMA)   EMA gain');

  const rows = [];
  const history = await model.fit(train.x, train.y, {
    epochs: EPOCHS,
    batchSize: BATCH,
    shuffle: true,
    validationData: [val.x, val.y],
    callbacks: [
      createEmaCallback(ema, { tf, validationData: [val.x, val.y], validationBatchSize: 512 }),
      // Runs after the EMA callback, so the epoch logs already hold val_loss_ema.
      new (class extends tf.Callback {
        async onEpochEnd(epoch, logs) {
          const raw = valueOf(logs.val_loss);
          const averaged = logs.val_loss_ema; // a number: the EMA callback has read it
          rows.push({ raw, averaged });
          const gain = `${(100 * (1 - averaged / raw)).toFixed(1)}%`;
          console.log(
            `${String(epoch + 1).padStart(5)}   ${fmt(valueOf(logs.loss)).padStart(10)}   ${fmt(raw).padStart(14)}   ` +
              `${fmt(averaged).padStart(14)}   ${gain.padStart(8)}`,
          );
        }
      })(),
    ],
  });
  const trainedIn = (Date.now() - started) / 1000;

  // Save the averaged weights as a normal tfjs model, then load it back and check it.
  const folder = path.resolve(process.argv[2] ?? path.join(os.tmpdir(), 'model-ema-demo'));
  const destination = nativeTf ? `file://${folder}` : fileIOHandler(folder);
  await saveAveragedModel(model, ema, destination);
  const loaded = await tf.loadLayersModel(nativeTf ? `file://${folder}/model.json` : fileIOHandler(folder));
  loaded.compile({ optimizer: 'sgd', loss: 'meanSquaredError' });
  const reloaded = tf.tidy(() => loaded.evaluate(val.x, val.y, { batchSize: 512 }).dataSync()[0]);

  const last = rows[rows.length - 1];
  const bestRaw = Math.min(...history.history.val_loss);
  const bestEma = Math.min(...history.history.val_loss_ema);
  const emaWins = rows.filter((r) => r.averaged < r.raw).length;
  console.log('\nSummary');
  console.log(`  final val loss: raw ${fmt(last.raw)}, averaged ${fmt(last.averaged)} (${(100 * (1 - last.averaged / last.raw)).toFixed(1)}% lower)`);
  console.log(`  best val loss over ${EPOCHS} epochs: raw ${fmt(bestRaw)}, averaged ${fmt(bestEma)}`);
  console.log(`  the averaged weights scored lower in ${emaWins} of ${EPOCHS} epochs; ${ema.numUpdates} EMA updates`);
  console.log(`  saved the averaged model to ${folder} (model.json + weights.bin); reloaded, it scores ${fmt(reloaded)}`);
  console.log(`  trained in ${trainedIn.toFixed(1)} s`);

  if (Math.abs(reloaded - last.averaged) > 1e-6 * Math.max(1, last.averaged)) {
    throw new Error(`the reloaded model scores ${reloaded}, not the averaged weights' ${last.averaged}`);
  }
  loaded.dispose();
  model.dispose();
  ema.dispose();
  tf.dispose([train.x, train.y, val.x, val.y]);
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
