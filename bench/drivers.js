'use strict';
// Every way of averaging the benchmark measures. bench/run.js reads the list (cheap: nothing heavy is
// required at load time); bench/driver.js calls setup() in a fresh child process and times step().
//
// setup(workload) returns { step, isAsync, threads, read(t) -> Float32Array, dispose() }, or
// { skip: 'reason' } when the driver cannot run here. Every driver starts from the same values
// (initialValue) and averages towards parameters shifted by +0.5, so read() can be sanity-checked.
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const DECAY = 0.999;
const PARAM_SHIFT = 0.5;
const repoRoot = path.resolve(__dirname, '..');

/** Deterministic pseudo-random start value in [-1, 1) of element i of tensor t. */
function initialValue(t, i) {
  const x = Math.imul(i ^ Math.imul(t + 1, 0x9e3779b1), 0x85ebca6b) >>> 8;
  return x / 8388608 - 1;
}

function initialTensor(t, size) {
  const a = new Float32Array(size);
  for (let i = 0; i < size; i++) a[i] = initialValue(t, i);
  return a;
}

function initialParams(workload) {
  return workload.sizes.map((size, t) => initialTensor(t, size));
}

function shift(params) {
  for (const p of params) for (let i = 0; i < p.length; i++) p[i] += PARAM_SHIFT;
}

/** The reference loop a user would write without this package. */
function updatePlain(shadows, params, decay) {
  const a = 1 - decay;
  for (let t = 0; t < shadows.length; t++) {
    const s = shadows[t];
    const p = params[t];
    for (let i = 0; i < s.length; i++) s[i] = s[i] - a * (s[i] - p[i]);
  }
}

// ---- setups ----

function loadNative() {
  return require(path.join(repoRoot, 'dist', 'native.js')).binding;
}

function nativeSetup({ dtype, api }) {
  return (workload) => {
    const binding = loadNative();
    const params = initialParams(workload);
    const arena = new binding.ShadowArena(dtype, workload.sizes);
    arena.copyFrom(params);
    shift(params);
    const isAsync = api === 'updateAsync';
    const description = { decay: DECAY };
    return {
      isAsync,
      threads: binding.cpuInfo().threads,
      step: isAsync ? () => arena.updateAsync(params, description) : () => arena.update(params, description),
      read: (t) => arena.read(t),
      dispose: () => arena.dispose(),
    };
  };
}

function modelEmaSetup({ dtype, api, options = {} }) {
  return (workload) => {
    const indexPath = path.join(repoRoot, 'dist', 'index.js');
    if (!fs.existsSync(indexPath)) {
      return { skip: 'dist/index.js does not exist yet (build src/index.ts with npm run build:ts)' };
    }
    const { ExponentialMovingAverage } = require(indexPath);
    if (typeof ExponentialMovingAverage !== 'function') {
      return { skip: 'dist/index.js does not export ExponentialMovingAverage yet' };
    }
    const binding = loadNative();
    const params = initialParams(workload);
    const ema = new ExponentialMovingAverage(params, { decay: DECAY, dtype, ...options });
    shift(params);
    let copies = null;
    const isAsync = api === 'updateAsync';
    return {
      isAsync,
      threads: binding.cpuInfo().threads,
      // The EMA holds its parameters weakly: like a training loop's model, keep them alive here.
      model: params,
      step: isAsync ? () => ema.updateAsync() : () => ema.update(),
      read: (t) => {
        if (copies === null) {
          copies = workload.sizes.map((n) => new Float32Array(n));
          ema.copyTo(copies);
        }
        return copies[t];
      },
      dispose: () => ema.dispose(),
    };
  };
}

// Three horizons over one model, as EmaTracks (one pass) or as three ExponentialMovingAverages.
const TRACK_DECAYS = [DECAY, 0.99, 0.9999];
function tracksSetup({ together }) {
  return (workload) => {
    const { EmaTracks, ExponentialMovingAverage } = require(path.join(repoRoot, 'dist', 'index.js'));
    if (typeof EmaTracks !== 'function') return { skip: 'dist/index.js does not export EmaTracks yet' };
    const params = initialParams(workload);
    const tracks = together ? new EmaTracks(params, { tracks: Object.fromEntries(TRACK_DECAYS.map((decay, i) => [`t${i}`, { decay }])) }) : null;
    const emas = together ? [] : TRACK_DECAYS.map((decay) => new ExponentialMovingAverage(params, { decay }));
    shift(params);
    let copies = null;
    return {
      isAsync: false,
      threads: loadNative().cpuInfo().threads,
      model: params,
      step: together ? () => tracks.update() : () => emas.forEach((e) => e.update()),
      read: (t) => {
        if (copies === null) {
          copies = workload.sizes.map((n) => new Float32Array(n));
          (together ? tracks.track('t0') : emas[0]).copyTo(copies);
        }
        return copies[t];
      },
      dispose: () => (together ? tracks.dispose() : emas.forEach((e) => e.dispose())),
    };
  };
}

// Reader threads for the publish drivers: each reads the published weights in a tight loop (a
// serving worker at full load) until terminated.
const READER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { PublishedWeightsReader } = require(workerData.readerPath);
const reader = new PublishedWeightsReader(workerData.handle);
parentPort.postMessage('ready');
for (;;) reader.read();
`;

async function startReaders(handle, count) {
  const { Worker } = require('node:worker_threads');
  const readerPath = path.join(repoRoot, 'dist', 'publish', 'reader.js');
  const workers = Array.from({ length: count }, () => new Worker(READER_SOURCE, { eval: true, workerData: { handle, readerPath } }));
  await Promise.all(workers.map((w) => new Promise((resolve, reject) => {
    w.once('message', resolve);
    w.once('error', reject);
  })));
  return workers;
}

/**
 * publish(): the shadows copied (as float32) into the shared region, timed per call; or, with
 * `readers`, update() timed while that many worker threads read the published weights non-stop.
 */
function publishSetup({ api, readers = 0 }) {
  return async (workload) => {
    const indexPath = path.join(repoRoot, 'dist', 'index.js');
    if (!fs.existsSync(indexPath)) return { skip: 'dist/index.js does not exist yet (npm run build:ts)' };
    const { ExponentialMovingAverage, PublishedWeightsReader } = require(indexPath);
    if (typeof PublishedWeightsReader !== 'function') return { skip: 'dist/index.js has no PublishedWeightsReader yet' };
    const binding = loadNative();
    const params = initialParams(workload);
    const ema = new ExponentialMovingAverage(params, { decay: DECAY });
    shift(params);
    const handle = ema.shareable();
    ema.publish();
    const workers = await startReaders(handle, readers);
    const reader = new PublishedWeightsReader(handle);
    return {
      isAsync: false,
      threads: binding.cpuInfo().threads,
      model: params,
      step: api === 'publish' ? () => ema.publish() : () => ema.update(),
      read: (t) => {
        if (api !== 'publish') ema.publish();
        return reader.read().tensors[t];
      },
      dispose: () => {
        for (const w of workers) w.terminate();
        ema.dispose();
      },
    };
  };
}

function plainSetup(workload) {
  const params = initialParams(workload);
  const shadows = params.map((p) => p.slice());
  shift(params);
  return {
    isAsync: false,
    threads: 1,
    step: () => updatePlain(shadows, params, DECAY),
    read: (t) => shadows[t],
    dispose: () => {},
  };
}

function tfjsSetup(backend) {
  return async (workload) => {
    let tf;
    if (backend === 'tensorflow') {
      try {
        require.resolve('@tensorflow/tfjs-node');
      } catch {
        return { skip: '@tensorflow/tfjs-node is not installed' };
      }
      tf = require('@tensorflow/tfjs-node');
    } else {
      tf = require('@tensorflow/tfjs');
      if (backend === 'wasm') require('@tensorflow/tfjs-backend-wasm');
    }
    if (!(await tf.setBackend(backend))) return { skip: `tfjs backend ${backend} did not initialise` };
    await tf.ready();
    const shadows = [];
    const params = [];
    workload.sizes.forEach((size, t) => {
      const start = initialTensor(t, size);
      // A second array for the parameters: a tensor may keep the array it was made from.
      const moved = Float32Array.from(start, (v) => v + PARAM_SHIFT);
      tf.tidy(() => {
        shadows.push(tf.variable(tf.tensor(start, workload.shapes[t]), false));
        params.push(tf.variable(tf.tensor(moved, workload.shapes[t]), false));
      });
    });
    const tensorsBefore = tf.memory().numTensors;
    const a = 1 - DECAY;
    return {
      isAsync: false,
      // The cpu and wasm backends run on the JS thread; tfjs-node uses TensorFlow's own pool.
      threads: backend === 'tensorflow' ? os.cpus().length : 1,
      step: () => {
        for (let t = 0; t < shadows.length; t++) {
          const s = shadows[t];
          const p = params[t];
          tf.tidy(() => s.assign(s.sub(s.sub(p).mul(a))));
        }
      },
      read: (t) => shadows[t].dataSync(),
      dispose: () => {
        const leaked = tf.memory().numTensors - tensorsBefore;
        for (const v of shadows.concat(params)) v.dispose();
        if (leaked !== 0) throw new Error(`the tfjs update leaked ${leaked} tensors`);
      },
    };
  };
}

// ---- the list ----
// family: colour and grouping in the report. threads: 'all' (the addon's default pool) or 1 (the
// child gets MODEL_EMA_THREADS=1). reference: the ceiling and plain JS, which the ratios divide by.
// cost: 'native' (about memory speed), 'js' (a few x slower), 'tfjs' (10-300x slower): picks the
// repeat counts.
const DRIVERS = [];
function add(d) {
  DRIVERS.push({ threads: 'all', dtype: 'float32', reference: false, ...d });
}

add({ id: 'ceiling', family: 'ceiling', label: 'C++ ceiling', kind: 'ceiling', cost: 'native', reference: true });
add({ id: 'ceiling-1t', family: 'ceiling', label: 'C++ ceiling', kind: 'ceiling', cost: 'native', threads: 1 });
// EmaTracks' plain-loop bound: 3 shadow arenas from one read of the parameters, in cached blocks.
// nonFinite 'skip-update''s plain-loop bound: count the parameters' non-finite values, then update.
add({ id: 'ceiling-check-first', family: 'ceiling', label: 'C++ ceiling, check parameters first', kind: 'ceiling', cost: 'native', checkFirst: true, bytesPerParam: 16 });
add({ id: 'ceiling-3shadows', family: 'ceiling', label: 'C++ ceiling, 3 shadows in one pass', kind: 'ceiling', cost: 'native', shadows: 3, bytesPerParam: 28 });
for (const api of ['update', 'updateAsync']) {
  for (const dtype of ['float32', 'bfloat16']) {
    for (const threads of ['all', 1]) {
      if (api === 'updateAsync' && threads === 1) continue;
      const short = dtype === 'float32' ? 'f32' : 'bf16';
      add({
        id: `model-ema-${api}-${short}${threads === 1 ? '-1t' : ''}`,
        family: 'model-ema',
        label: `model-ema ${api}`,
        dtype,
        threads,
        cost: 'native',
        setup: modelEmaSetup({ dtype, api }),
      });
    }
  }
}
// float16 shadows (8 bytes per parameter, as bfloat16), rounded with F16C where the CPU has it.
add({ id: 'model-ema-update-f16', family: 'model-ema', label: 'model-ema update', dtype: 'float16', cost: 'native', setup: modelEmaSetup({ dtype: 'float16', api: 'update' }) });
// The non-finite guards (all parameters finite: what every healthy step pays) and stochastic
// rounding, each against the plain update of the same dtype in the report.
for (const [suffix, dtype, options] of [
  ['f32-skip-element', 'float32', { nonFinite: 'skip-element' }],
  ['f32-skip-update', 'float32', { nonFinite: 'skip-update' }],
  ['bf16-stochastic', 'bfloat16', { rounding: 'stochastic' }],
]) {
  const what = options.nonFinite ?? 'stochastic rounding';
  add({ id: `model-ema-update-${suffix}`, family: 'model-ema', label: `model-ema update, ${what}`, dtype, cost: 'native', setup: modelEmaSetup({ dtype, api: 'update', options }) });
}
// Several horizons (EmaTracks): 3 float32 tracks in one pass (4 + 3 x 8 bytes per parameter) against
// 3 separate update() calls (3 x 12 bytes); track 0 and EMA 0 have the decay the results are checked at.
add({ id: 'model-ema-tracks3-f32', family: 'model-ema', label: 'model-ema EmaTracks, 3 tracks', cost: 'native', bytesPerParam: 28, setup: tracksSetup({ together: true }) });
add({ id: 'model-ema-3x-update-f32', family: 'model-ema', label: 'model-ema 3 x update()', cost: 'native', bytesPerParam: 36, setup: tracksSetup({ together: false }) });
add({ id: 'model-ema-publish-f32', family: 'model-ema', label: 'model-ema publish', cost: 'native', bytesPerParam: 8, setup: publishSetup({ api: 'publish' }) });
add({ id: 'model-ema-update-f32-4readers', family: 'model-ema', label: 'model-ema update 4 readers', cost: 'native', setup: publishSetup({ api: 'update', readers: 4 }) });
// One update thread and one reader: on a 2-core machine no thread waits for a core, so what is left
// is the readers' share of memory bandwidth (compare with model-ema-update-f32-1t).
add({ id: 'model-ema-update-f32-1t-1reader', family: 'model-ema', label: 'model-ema update 1 reader', cost: 'native', threads: 1, setup: publishSetup({ api: 'update', readers: 1 }) });
add({ id: 'native-update-f32', family: 'native', label: 'native arena update', cost: 'native', setup: nativeSetup({ dtype: 'float32', api: 'update' }) });
add({ id: 'native-update-f32-1t', family: 'native', label: 'native arena update', cost: 'native', threads: 1, setup: nativeSetup({ dtype: 'float32', api: 'update' }) });
add({ id: 'native-update-bf16', family: 'native', label: 'native arena update', cost: 'native', dtype: 'bfloat16', setup: nativeSetup({ dtype: 'bfloat16', api: 'update' }) });
add({ id: 'native-updateAsync-f32', family: 'native', label: 'native arena updateAsync', cost: 'native', setup: nativeSetup({ dtype: 'float32', api: 'updateAsync' }) });
add({ id: 'plain-js', family: 'plain-js', label: 'plain JS loop', cost: 'js', threads: 1, reference: true, setup: plainSetup });
add({ id: 'tfjs-cpu', family: 'tfjs', label: 'tfjs ops (cpu backend)', cost: 'tfjs', threads: 1, setup: tfjsSetup('cpu') });
add({ id: 'tfjs-wasm', family: 'tfjs', label: 'tfjs ops (wasm backend)', cost: 'tfjs', threads: 1, setup: tfjsSetup('wasm') });
add({ id: 'tfjs-node', family: 'tfjs', label: 'tfjs ops (tfjs-node)', cost: 'tfjs', setup: tfjsSetup('tensorflow') });

module.exports = { DRIVERS, DECAY, PARAM_SHIFT, initialValue, updatePlain };
