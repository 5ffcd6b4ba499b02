'use strict';
// What the non-finite guards and stochastic rounding cost in update(), on resnet50-like (25.6M
// parameters in 161 tensors, all finite: what every healthy step pays): each variant timed against
// the plain update of the same dtype, interleaved round by round so that machine noise hits all
// alike; medians. Usage (after a build): node bench/guard_cost.js [--rounds n] [--workload name]
const { ExponentialMovingAverage } = require('../dist');
const { loadWorkload } = require('./workloads');

const arg = (name, fallback) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : fallback;
};
const rounds = Number(arg('--rounds', 7));
const workload = arg('--workload', 'resnet50-like');
const VARIANTS = [
  ['float32', {}, 'float32 plain'],
  ['float32', { nonFinite: 'skip-element' }, 'float32 skip-element'],
  ['float32', { nonFinite: 'skip-update' }, 'float32 skip-update'],
  ['bfloat16', {}, 'bfloat16 nearest'],
  ['bfloat16', { rounding: 'stochastic' }, 'bfloat16 stochastic'],
  ['float16', {}, 'float16 nearest'],
  ['float16', { rounding: 'stochastic' }, 'float16 stochastic'],
];

const { sizes } = loadWorkload(workload);
const params = sizes.map((n) => Float32Array.from({ length: n }, (_, i) => ((i * 2654435761) % 1000) / 1000));
const emas = VARIANTS.map(([dtype, options, name]) => ({ name, dtype, ema: new ExponentialMovingAverage(params, { decay: 0.999, dtype, ...options }), samples: [] }));
for (const p of params) for (let i = 0; i < p.length; i++) p[i] += 0.5;

function time(ema, reps) {
  const start = process.hrtime.bigint();
  for (let i = 0; i < reps; i++) ema.update(params);
  return Number(process.hrtime.bigint() - start) / 1e6 / reps;
}
for (const e of emas) time(e.ema, 3); // first touches and JIT
for (let r = 0; r < rounds; r++) for (const e of emas) e.samples.push(time(e.ema, 10));
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
console.log(`${workload} (${sizes.length} tensors, ${sizes.reduce((a, b) => a + b, 0)} parameters), ${rounds} interleaved rounds of 10 updates, median ms/update`);
for (const e of emas) {
  const base = median(emas.find((b) => b.dtype === e.dtype).samples);
  const m = median(e.samples);
  console.log(`${e.name.padEnd(24)} ${m.toFixed(2).padStart(7)} ms   x plain ${e.dtype.padEnd(8)} ${(m / base).toFixed(2)}`);
}
for (const e of emas) e.ema.dispose();
