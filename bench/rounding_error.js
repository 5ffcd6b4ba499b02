'use strict';
// How far float16/bfloat16 shadows drift from the exact average, with nearest and with stochastic
// rounding, next to float32 shadows: the README's table. Every EMA averages the same parameters
// (a slow drift, as in training, plus per-step noise); the reference is a float64 EMA.
// Usage (after a build): node bench/rounding_error.js [--elements n]
const { ExponentialMovingAverage } = require('../dist');

const arg = (name, fallback) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
const elements = arg('--elements', 4096);
const checkpoints = [1000, 10000, 100000];
const decays = [0.999, 0.9999];

function rng(seed) {
  let x = seed >>> 0;
  return () => {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    return x / 2 ** 32;
  };
}

for (const decay of decays) {
  const start = new Float32Array(elements);
  const random = rng(7);
  for (let i = 0; i < elements; i++) start[i] = 0.5 + random();
  const make = (dtype, rounding) => new ExponentialMovingAverage([start], { decay, useNumUpdates: false, dtype, rounding, seed: 1 });
  const emas = {
    float64: make('float64'),
    float32: make('float32'),
    'bfloat16 nearest': make('bfloat16'),
    'bfloat16 stochastic': make('bfloat16', 'stochastic'),
    'float16 nearest': make('float16'),
    'float16 stochastic': make('float16', 'stochastic'),
  };
  const params = new Float32Array(elements);
  const rows = [];
  for (let step = 1; step <= checkpoints[checkpoints.length - 1]; step++) {
    // Each parameter drifts by +0.5 over the run, with noise of +-0.05 per step.
    const drift = (0.5 * step) / checkpoints[checkpoints.length - 1];
    for (let i = 0; i < elements; i++) params[i] = start[i] + drift + 0.1 * (random() - 0.5);
    for (const ema of Object.values(emas)) ema.update([params]);
    if (checkpoints.includes(step)) {
      const exact = emas.float64.stateDict().shadowParams[0];
      const row = { step };
      for (const [name, ema] of Object.entries(emas)) {
        if (name === 'float64') continue;
        const values = ema.stateDict().shadowParams[0];
        let sum = 0;
        for (let i = 0; i < elements; i++) sum += Math.abs(values[i] - exact[i]);
        row[name] = sum / elements;
      }
      rows.push(row);
    }
  }
  console.log(`decay ${decay}: mean |shadow - exact average| over ${elements} elements (values around 1 to 2)`);
  const names = Object.keys(rows[0]).filter((k) => k !== 'step');
  console.log(`| updates | ${names.join(' | ')} |`);
  console.log(`|---:|${names.map(() => '---:').join('|')}|`);
  for (const row of rows) console.log(`| ${row.step} | ${names.map((n) => row[n].toExponential(1)).join(' | ')} |`);
  for (const ema of Object.values(emas)) ema.dispose();
}
