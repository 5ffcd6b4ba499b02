'use strict';
// What a decay schedule costs in update(): the schedule is computed in JS (float64) before the one
// native pass, so on the smallest workload (mlp-small, where per-call overhead dominates) each
// schedule is timed against 'constant', interleaved in one run so that machine noise hits all alike.
// Usage (after a build): node bench/schedule_cost.js [--rounds n]
const { ExponentialMovingAverage } = require('../dist');
const { loadWorkload } = require('./workloads');

const SCHEDULES = {
  constant: 'constant',
  torch_ema: 'torch_ema',
  'inverse-gamma': { kind: 'inverse-gamma', power: 2 / 3 },
  'power-function': { kind: 'power-function', sigmaRel: 0.1 },
  'half-life (steps, rampUp)': { kind: 'half-life', halfLife: 500, unit: 'steps', rampUp: 0.05 },
  'half-life (samples)': { kind: 'half-life', halfLife: 5000, unit: 'samples' },
};

function timeUpdates(ema, params, progress, reps) {
  const start = process.hrtime.bigint();
  for (let i = 0; i < reps; i++) ema.update(params, progress);
  return Number(process.hrtime.bigint() - start) / 1e3 / reps; // microseconds per update
}

const roundsArg = process.argv.indexOf('--rounds');
const rounds = roundsArg > 0 ? Number(process.argv[roundsArg + 1]) : 5;
const { sizes } = loadWorkload('mlp-small');
const params = sizes.map((n) => new Float32Array(n).fill(0.5));
const emas = Object.entries(SCHEDULES).map(([name, schedule]) => {
  const ema = new ExponentialMovingAverage(params, { decay: 0.9999, schedule });
  const progress = name.includes('samples') ? { samples: 32 } : undefined;
  timeUpdates(ema, params, progress, 2000); // warm-up: JIT the JS around the native call
  return { name, ema, progress, samples: [] };
});
for (let r = 0; r < rounds; r++) {
  for (const e of emas) e.samples.push(timeUpdates(e.ema, params, e.progress, 2000));
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const base = median(emas[0].samples);
console.log(`mlp-small (${sizes.length} tensors), ${rounds} interleaved rounds of 2000 updates, median us/update`);
for (const e of emas) {
  const m = median(e.samples);
  console.log(`${e.name.padEnd(28)} ${m.toFixed(2).padStart(7)} us   x constant ${(m / base).toFixed(3)}`);
}
for (const e of emas) e.ema.dispose();
