'use strict';
// What the JS-to-native call path costs on the smallest workload (issue 18, item 4): update() on one
// thread against the addon's own update kernel called in a C++ loop over an arena of the same sizes
// (build/ema_arena_loop, bench/native/arena_loop.cc), interleaved round by round in one run.
// Target: update() >= 0.9x the C++ loop's speed (C++ time / update() time). Also shown: update()
// with the parameters passed, and the bare binding (ShadowArena.update), to tell the TypeScript
// layer from the Node-API glue.
// Usage (after a build): node bench/call_path.js [--rounds n] [--reps n] [--workload name]
process.env.MODEL_EMA_THREADS = '1'; // read when the addon loads, below
const path = require('node:path');
const { execFileSync } = require('node:child_process');
const { ExponentialMovingAverage } = require('../dist');
const { binding } = require('../dist/native');
const { loadWorkload } = require('./workloads');
const { summarize } = require('./stats');

const arg = (name, fallback) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : fallback;
};
const workload = loadWorkload(arg('--workload', 'mlp-small'));
const rounds = Number(arg('--rounds', 15));
const reps = Number(arg('--reps', 3000));
const loopBinary = path.join(__dirname, '..', 'build', 'ema_arena_loop');

const params = workload.sizes.map((n) => Float32Array.from({ length: n }, (_, i) => ((i * 2654435761) % 1000) / 1000));
const ema = new ExponentialMovingAverage(params, { decay: 0.999 });
const arena = new binding.ShadowArena('float32', workload.sizes, null);
arena.copyFrom(params);
const description = { decay: 0.999 };
const packed = Float64Array.of(0.999, 0, 0, 0, 0);

// CPU microseconds per call of `fn`, over `reps` calls: CPU time rather than wall time (as the C++
// loop measures), so that a busy machine's scheduling does not count; everything runs on this thread.
function time(fn) {
  // Untimed first: the variant before (the C++ child above all) left other data in the caches.
  for (let i = 0; i < reps / 10; i++) fn();
  const start = process.cpuUsage();
  for (let i = 0; i < reps; i++) fn();
  const used = process.cpuUsage(start);
  return (used.user + used.system) / reps;
}

const variants = [
  { name: 'C++ loop, same kernel (reference)', run: () => summarize(JSON.parse(execFileSync(loopBinary, [String(reps), '1', ...workload.sizes.map(String)], { encoding: 'utf8' })).usPerUpdate).median },
  { name: 'ema.update()', run: () => time(() => ema.update()) },
  { name: 'ema.update(params)', run: () => time(() => ema.update(params)) },
  { name: 'binding ShadowArena.update, { decay }', run: () => time(() => arena.update(params, description)) },
  { name: 'binding ShadowArena.update, packed', run: () => time(() => arena.update(params, packed)) },
];
for (const v of variants) {
  v.samples = [];
  v.run(); // warm-up: JIT, caches
}
for (let r = 0; r < rounds; r++) for (const v of variants) v.samples.push(v.run());

console.log(`${workload.name}: ${workload.sizes.length} tensors, ${workload.total} parameters, one thread (MODEL_EMA_THREADS=1); ${rounds} interleaved rounds of ${reps} calls, CPU time per call`);
// The minimum is the round least disturbed by other processes (caches, memory bandwidth); the
// median says how it usually goes on this machine.
const reference = summarize(variants[0].samples);
console.log(`${'variant'.padEnd(38)} ${'min us'.padStart(7)} ${'x C++'.padStart(6)} ${'median'.padStart(7)} ${'x C++'.padStart(6)}`);
for (const v of variants) {
  const { min, median } = summarize(v.samples);
  console.log(`${v.name.padEnd(38)} ${min.toFixed(2).padStart(7)} ${(reference.min / min).toFixed(2).padStart(6)} ${median.toFixed(2).padStart(7)} ${(reference.median / median).toFixed(2).padStart(6)}`);
}
ema.dispose();
arena.dispose();
