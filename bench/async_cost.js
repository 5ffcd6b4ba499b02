'use strict';
// What one updateAsync() costs the JavaScript thread, against update() (issue 18, item 3): for each
// way of calling it, the time the thread is blocked inside the call (until it returns the promise)
// and the completion latency (until the promise resolves), as medians of interleaved rounds over one
// EMA, so that machine noise hits every variant alike. Ratios are x update() over ordinary typed
// arrays in the same run. Targets (tfjs variables, and SharedArrayBuffer arrays with snapshot:
// false): blocked <= 0.3x, completion <= 1.3x; the default snapshot of ordinary arrays has none.
//
// Usage (after a build): node bench/async_cost.js [--workload resnet50-like|gpt2-medium-like]
//   [--rounds n] [--json file]. gpt2-medium-like needs about 8 GB of memory.
const fs = require('node:fs');
const { ExponentialMovingAverage } = require('../dist');
const { loadWorkload } = require('./workloads');
const { summarize, nowMs } = require('./stats');

const arg = (name, fallback) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : fallback;
};
const workload = loadWorkload(arg('--workload', 'resnet50-like'));
const rounds = Number(arg('--rounds', 7));
const callsPerRound = workload.large ? 2 : 6;

function filled(size, t, buffer) {
  const a = new Float32Array(buffer ?? size);
  for (let i = 0; i < size; i++) a[i] = ((i * 2654435761 + t) % 1000) / 1000 + 0.5;
  return a;
}

async function tfjsVariables() {
  const tf = require('@tensorflow/tfjs');
  const { log, warn } = console;
  console.log = console.warn = () => undefined; // the cpu backend's "install tfjs-node" banner
  try {
    await tf.setBackend('cpu');
    await tf.ready();
    tf.tidy(() => tf.zeros([1]).dataSync());
  } finally {
    Object.assign(console, { log, warn });
  }
  return workload.sizes.map((n, t) => tf.tidy(() => tf.variable(tf.tensor(filled(n, t), [n]), false, `v${t}`)));
}

async function main() {
  const plain = workload.sizes.map((n, t) => filled(n, t));
  const shared = workload.sizes.map((n, t) => filled(n, t, new SharedArrayBuffer(n * 4)));
  const variables = await tfjsVariables();
  const ema = new ExponentialMovingAverage(plain, { decay: 0.999 });

  // Each variant: [name, call] where call() returns a promise (async) or undefined (sync).
  const variants = [
    ['update(), typed arrays', () => ema.update(plain)],
    ['update(), SAB arrays', () => ema.update(shared)],
    ['update(), tfjs variables', () => ema.update(variables)],
    ['updateAsync(), typed arrays (snapshot)', () => ema.updateAsync(plain)],
    ['updateAsync(), SAB arrays, snapshot: false', () => ema.updateAsync(shared, { snapshot: false })],
    ['updateAsync(), tfjs variables', () => ema.updateAsync(variables)],
    // A call made while another is in flight is queued, and must take its inputs at the call.
    ['updateAsync() queued, typed arrays', null, plain],
    ['updateAsync() queued, tfjs variables', null, variables],
  ].map(([name, call, queuedOver]) => ({ name, call, queuedOver, blocked: [], completion: [] }));

  async function once(v) {
    if (v.queuedOver !== undefined) {
      const first = ema.updateAsync(v.queuedOver);
      const start = nowMs();
      const second = ema.updateAsync(v.queuedOver);
      v.blocked.push(nowMs() - start);
      await first;
      await second;
      return;
    }
    const start = nowMs();
    const result = v.call();
    const returned = nowMs();
    if (result !== undefined) await result;
    v.blocked.push(returned - start);
    v.completion.push(nowMs() - start);
  }

  for (const v of variants) await once(v); // first touches, JIT, the snapshot's pages
  for (const v of variants) {
    v.blocked.length = 0;
    v.completion.length = 0;
  }
  for (let r = 0; r < rounds; r++) for (const v of variants) for (let c = 0; c < callsPerRound; c++) await once(v);

  const base = summarize(variants[0].completion).median;
  const rows = variants.map((v) => {
    const blocked = summarize(v.blocked).median;
    const completion = v.completion.length > 0 ? summarize(v.completion).median : null;
    return { name: v.name, blockedMs: blocked, completionMs: completion, blockedX: blocked / base, completionX: completion === null ? null : completion / base };
  });
  const cpus = require('node:os').cpus();
  console.log(
    `${workload.name}: ${workload.sizes.length} tensors, ${workload.total} float32 parameters; ${cpus.length} x ${cpus[0].model.trim()}; ` +
      `${rounds} interleaved rounds of ${callsPerRound} calls, medians; x = ratio to update() over typed arrays`,
  );
  console.log(`${'variant'.padEnd(46)} ${'blocked ms'.padStart(11)} ${'x'.padStart(6)} ${'completion ms'.padStart(14)} ${'x'.padStart(6)}`);
  for (const r of rows) {
    const completion = r.completionMs === null ? ''.padStart(14) : r.completionMs.toFixed(2).padStart(14);
    const completionX = r.completionX === null ? ''.padStart(6) : r.completionX.toFixed(2).padStart(6);
    console.log(`${r.name.padEnd(46)} ${r.blockedMs.toFixed(3).padStart(11)} ${r.blockedX.toFixed(2).padStart(6)} ${completion} ${completionX}`);
  }
  const json = arg('--json', null);
  if (json !== null) fs.writeFileSync(json, JSON.stringify({ workload: workload.name, rounds, rows }, null, 2));
  ema.dispose();
  for (const v of variables) v.dispose();
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
