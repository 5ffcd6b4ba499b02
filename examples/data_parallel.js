#!/usr/bin/env node
// Data-parallel training with a sharded EMA: N Node processes (child_process.fork), each a rank that
// trains a full replica of the demo model (the noisy regression of train_with_ema.js) on its slice of
// the data. Gradients are averaged through this parent process over IPC (the part that NCCL, MPI
// or a parameter server does in a real setup), so every replica takes the same SGD step. Each rank
// keeps the EMA of only its share of the parameters (`shard: { rank, worldSize }`): no
// communication for the EMA at all. At the end every rank saves its shard, rank 0 the index; then
// this process alone loads the sharded checkpoint into an unsharded EMA and evaluates the average.
//
//   npm run build:ts && node examples/data_parallel.js [output folder] [ranks] [epochs]
'use strict';
const { fork } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { ExponentialMovingAverage } = require('../dist/index.js');
const { loadTfjs } = require('../dist/tfjs/index.js');

const INPUTS = 8;
const TRAIN = 3072;
const VALIDATION = 1024;
const BATCH = 16; // per rank: the global batch is BATCH * ranks
const LEARNING_RATE = 0.08;
const DECAY = 0.99;

function random(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// The same data on every rank (same seed); each takes every worldSize-th sample.
function makeData(samples, noise, seed) {
  const next = random(seed);
  const x = new Float32Array(samples * INPUTS);
  const y = new Float32Array(samples);
  for (let i = 0; i < samples; i++) {
    const v = x.subarray(i * INPUTS, (i + 1) * INPUTS);
    for (let j = 0; j < INPUTS; j++) v[j] = next() * 2 - 1;
    const gaussian = Math.sqrt(-2 * Math.log(1 - next())) * Math.cos(2 * Math.PI * next());
    y[i] = Math.sin(2 * v[0]) + v[1] * v[2] - 0.5 * v[3] * v[3] + 0.5 * Math.tanh(3 * v[4]) + 0.3 * v[5] - 0.4 * v[6] * v[7] + noise * gaussian;
  }
  return { x, y };
}

// Seeded initialisers and fixed layer names: every process builds the same replica, with the same
// variable names (which the checkpoint's tensor names come from).
function buildModel(tf) {
  const model = tf.sequential({ name: 'demo' });
  model.add(tf.layers.dense({ name: 'd1', inputShape: [INPUTS], units: 64, activation: 'relu', kernelInitializer: tf.initializers.heNormal({ seed: 1 }) }));
  model.add(tf.layers.dense({ name: 'd2', units: 64, activation: 'relu', kernelInitializer: tf.initializers.heNormal({ seed: 2 }) }));
  model.add(tf.layers.dense({ name: 'out', units: 1, kernelInitializer: tf.initializers.glorotNormal({ seed: 3 }) }));
  return model;
}

function validationLoss(tf, model) {
  const val = makeData(VALIDATION, 0, 2);
  return tf.tidy(() => tf.losses.meanSquaredError(tf.tensor2d(val.y, [VALIDATION, 1]), model.predict(tf.tensor2d(val.x, [VALIDATION, INPUTS]))).dataSync()[0]);
}

async function quietTfjs() {
  const tf = loadTfjs();
  const warn = console.warn;
  console.warn = () => undefined; // the cpu backend's "install tfjs-node" banner
  await tf.ready();
  tf.dispose(tf.scalar(0)); // the banner comes with the first tensor
  console.warn = warn;
  return tf;
}

// ---- a rank ----
async function rankMain(rank, worldSize, epochs, prefix) {
  const tf = await quietTfjs();
  const model = buildModel(tf);
  const variables = model.trainableWeights.map((w) => w.read());
  const ema = new ExponentialMovingAverage(model.trainableWeights, { decay: DECAY, shard: { rank, worldSize } });
  const data = makeData(TRAIN, 1.0, 1);
  const mine = [];
  for (let i = rank; i < TRAIN; i += worldSize) mine.push(i);
  const steps = Math.floor(mine.length / BATCH);

  let deliver;
  process.on('message', (message) => deliver(message));
  const nextMessage = () => new Promise((resolve) => (deliver = resolve));

  for (let epoch = 0; epoch < epochs; epoch++) {
    for (let step = 0; step < steps; step++) {
      const rows = mine.slice(step * BATCH, (step + 1) * BATCH);
      const x = tf.tensor2d(Float32Array.from(rows.flatMap((i) => Array.from(data.x.subarray(i * INPUTS, (i + 1) * INPUTS)))), [BATCH, INPUTS]);
      const y = tf.tensor2d(Float32Array.from(rows.map((i) => data.y[i])), [BATCH, 1]);
      const { value, grads } = tf.variableGrads(() => tf.losses.meanSquaredError(y, model.predict(x)), variables);
      const gradients = variables.map((v) => grads[v.name].dataSync().slice());
      tf.dispose([x, y, value, ...Object.values(grads)]);
      const mean = nextMessage();
      process.send({ type: 'gradients', gradients });
      const { gradients: averaged } = await mean; // all ranks get the same mean: the replicas stay equal
      tf.tidy(() => variables.forEach((v, k) => v.assign(v.sub(tf.tensor(averaged[k], v.shape).mul(LEARNING_RATE)))));
      ema.update(); // reads and averages only this rank's parameters
    }
  }
  await ema.save(prefix); // this rank's shard; rank 0 also writes the index
  process.send({ type: 'saved', info: ema.shardInfo, numUpdates: ema.numUpdates, rawLoss: validationLoss(tf, model) });
  process.disconnect();
}

// ---- the parent: gradient averaging over IPC, then one process loads the sharded checkpoint ----
async function main() {
  const folder = path.resolve(process.argv[2] ?? fs.mkdtempSync(path.join(os.tmpdir(), 'model-ema-dp-')));
  const worldSize = Number(process.argv[3] ?? 3);
  const epochs = Number(process.argv[4] ?? 2);
  fs.mkdirSync(folder, { recursive: true });
  const prefix = path.join(folder, 'ema');
  const started = Date.now();

  const children = Array.from({ length: worldSize }, (_, rank) =>
    fork(__filename, [], { env: { ...process.env, MODEL_EMA_RANK: String(rank), MODEL_EMA_WORLD_SIZE: String(worldSize), MODEL_EMA_EPOCHS: String(epochs), MODEL_EMA_PREFIX: prefix }, serialization: 'advanced' }),
  );
  const saved = new Array(worldSize);
  let pending = [];
  await Promise.all(
    children.map(
      (child, rank) =>
        new Promise((resolve, reject) => {
          child.on('error', reject);
          child.on('exit', (code) => (code === 0 && saved[rank] ? resolve() : reject(new Error(`rank ${rank} exited with code ${code}`))));
          child.on('message', (message) => {
            if (message.type === 'saved') saved[rank] = message;
            if (message.type !== 'gradients') return;
            pending[rank] = message.gradients;
            if (pending.filter(Boolean).length < worldSize) return;
            // All-reduce (mean), in rank order so that every run sums the same way.
            const mean = pending[0].map((g, k) => {
              const out = new Float32Array(g.length);
              for (const grads of pending) for (let i = 0; i < out.length; i++) out[i] += grads[k][i];
              for (let i = 0; i < out.length; i++) out[i] /= worldSize;
              return out;
            });
            pending = [];
            for (const c of children) c.send({ gradients: mean });
          });
        }),
    ),
  );
  for (const { info, numUpdates } of saved) {
    console.log(`rank ${info.rank}: ${info.indices.length} of ${info.totalParameters} tensors (${info.elements} of ${info.totalElements} elements), ${numUpdates} EMA updates`);
  }
  console.log(`saved: ${fs.readdirSync(folder).sort().join(', ')}`);

  // One process, no shard option: load the sharded checkpoint whole and evaluate the average.
  const tf = await quietTfjs();
  const model = buildModel(tf);
  const ema = new ExponentialMovingAverage(model.trainableWeights, { decay: DECAY });
  await ema.load(prefix); // reads ema.safetensors.index.json and every shard it names
  const raw = saved[0].rawLoss;
  ema.copyTo();
  const averaged = validationLoss(tf, model);
  console.log(`loaded in one process: ${ema.size} tensors, ${ema.numUpdates} updates`);
  console.log(`val loss: raw ${raw.toFixed(4)}, averaged ${averaged.toFixed(4)}; ${((Date.now() - started) / 1000).toFixed(1)} s`);
  ema.dispose();
  model.dispose();
}

if (process.env.MODEL_EMA_RANK !== undefined) {
  rankMain(Number(process.env.MODEL_EMA_RANK), Number(process.env.MODEL_EMA_WORLD_SIZE), Number(process.env.MODEL_EMA_EPOCHS), process.env.MODEL_EMA_PREFIX).catch((error) => {
    console.error(error);
    process.exit(1);
  });
} else {
  main().catch((error) => {
    console.error(error);
    process.exitCode = 1;
  });
}
