'use strict';
// Where does splitting one update over all cores start to pay? Times a one-tensor float32 native
// arena of 2^12..2^22 elements in two kinds of child process:
//   one thread:  MODEL_EMA_THREADS=1
//   all threads: the default pool, with MODEL_EMA_PARALLEL_THRESHOLD=0 so that every size is split
// alternating them for a few rounds (the machine is noisy) and keeping each size's best median.
// The crossover it prints is what kDefaultParallelThreshold in native/addon/addon.cc should be.
//
//   node bench/threshold.js [--rounds N]        (default 5; about 35 s)
const os = require('node:os');
const path = require('node:path');
const { fork } = require('node:child_process');
const { summarize, nowMs } = require('./stats.js');

const SIZES = [];
for (let k = 12; k <= 22; k++) {
  SIZES.push(2 ** k);
  if (k < 22) SIZES.push(3 * 2 ** (k - 1)); // halfway points on the log scale
}

// ---- child: time every size under this process's thread settings ----

// Warm: updates back to back, so arenas up to the L3 size stay in cache (an upper bound for small
// models). Cold: 64 MiB of other data is written before each timed update, as a training step's
// activations would, so shadows and parameters come from memory.
const SCRATCH = new Float32Array(16 << 20);

function timeWarm(arena, params) {
  let t0 = nowMs();
  for (let w = 0; w < 10; w++) arena.update(params, { decay: 0.999 });
  // Batches of updates long enough (about 0.2 ms) that the clock's own cost does not matter.
  const batch = Math.max(1, Math.ceil(0.2 / ((nowMs() - t0) / 10)));
  const samples = [];
  for (let s = 0; s < 31; s++) {
    t0 = nowMs();
    for (let b = 0; b < batch; b++) arena.update(params, { decay: 0.999 });
    samples.push(((nowMs() - t0) / batch) * 1e3);
  }
  return summarize(samples).median;
}

function timeCold(arena, params) {
  const samples = [];
  for (let s = 0; s < 21; s++) {
    SCRATCH.fill(s);
    const t0 = nowMs();
    arena.update(params, { decay: 0.999 });
    samples.push((nowMs() - t0) * 1e3);
  }
  return summarize(samples).median;
}

function measureSizes() {
  const { binding } = require(path.join(__dirname, '..', 'dist', 'native.js'));
  const out = [];
  for (const n of SIZES) {
    const params = [new Float32Array(n).map((_, i) => (i % 1000) * 1e-3)];
    const arena = new binding.ShadowArena('float32', [n]);
    arena.copyFrom(params);
    for (let i = 0; i < n; i++) params[0][i] += 0.5;
    for (let w = 0; w < 20; w++) arena.update(params, { decay: 0.999 });
    out.push({ n, warm: timeWarm(arena, params), cold: timeCold(arena, params) });
    arena.dispose();
  }
  return { threads: binding.cpuInfo().threads, threshold: binding.cpuInfo().parallelThreshold, sizes: out };
}

// ---- parent ----

function runChild(env, infoOnly = false) {
  return new Promise((resolve, reject) => {
    const child = fork(__filename, [infoOnly ? '--info' : '--child'], { env, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    let result = null;
    child.on('message', (m) => (result = m));
    child.on('exit', (code) => (result ? resolve(result) : reject(new Error(`threshold child exited with ${code}`))));
  });
}

function label(n) {
  const k = Math.log2(n);
  return Number.isInteger(k) ? `2^${k}` : `1.5*2^${k - Math.log2(1.5)}`;
}

async function main() {
  const i = process.argv.indexOf('--rounds');
  const rounds = i > 0 ? Math.max(1, parseInt(process.argv[i + 1], 10) || 1) : 5;
  const single = { ...process.env, MODEL_EMA_THREADS: '1' };
  const multi = { ...process.env, MODEL_EMA_PARALLEL_THRESHOLD: '0' };
  delete multi.MODEL_EMA_THREADS;
  delete single.MODEL_EMA_PARALLEL_THRESHOLD;

  // best[mode][config]: size -> best median over the rounds, in microseconds.
  const best = { warm: { one: new Map(), all: new Map() }, cold: { one: new Map(), all: new Map() } };
  let info = null;
  for (let r = 0; r < rounds; r++) {
    const one = await runChild(single);
    const all = await runChild(multi);
    info = all;
    for (const [config, res] of [['one', one], ['all', all]]) {
      for (const size of res.sizes) {
        for (const mode of ['warm', 'cold']) {
          const map = best[mode][config];
          map.set(size.n, Math.min(size[mode], map.get(size.n) ?? Infinity));
        }
      }
    }
  }
  if (info.threads < 2) {
    console.log(`only ${info.threads} thread here: nothing to split, no crossover to measure`);
    return;
  }

  const t = info.threads;
  console.log(`float32 native arena update, microseconds, best of ${rounds} rounds of medians; ${os.cpus()[0].model.trim()}, ${t} threads`);
  console.log('warm: back-to-back updates (cache-resident up to L3); cold: 64 MiB written before each update\n');
  const head = ['elements', 'label', 'warm 1t', `warm ${t}t`, 'speed-up', 'cold 1t', `cold ${t}t`, 'speed-up'];
  const widths = [9, 10, 9, 9, 8, 9, 9, 8];
  const line = (cells) => cells.map((c, k) => (k === 1 ? c.padEnd(widths[k]) : c.padStart(widths[k]))).join('  ');
  console.log(line(head));
  const speedup = (mode, n) => best[mode].one.get(n) / best[mode].all.get(n);
  for (const n of SIZES) {
    const cells = [String(n), label(n)];
    for (const mode of ['warm', 'cold']) {
      cells.push(best[mode].one.get(n).toFixed(1), best[mode].all.get(n).toFixed(1), speedup(mode, n).toFixed(2));
    }
    console.log(line(cells));
  }
  console.log('');
  for (const mode of ['warm', 'cold']) {
    // The crossover: the smallest size from which every larger size is faster on all threads,
    // judged on speed-ups smoothed over each size and its two neighbours (geometric mean), so that
    // one noisy size does not move it.
    const logs = SIZES.map((n) => Math.log(speedup(mode, n)));
    const smooth = logs.map((_, k) => {
      const window = logs.slice(Math.max(0, k - 1), k + 2);
      return Math.exp(window.reduce((a, b) => a + b, 0) / window.length);
    });
    let cross = -1;
    for (let k = SIZES.length - 1; k >= 0 && smooth[k] > 1; k--) cross = k;
    if (cross < 0) {
      console.log(`crossover (${mode}): none up to ${SIZES[SIZES.length - 1]} elements: one thread was faster at the largest size`);
    } else {
      const below = cross > 0
        ? `; smoothed speed-up just below it, at ${SIZES[cross - 1]}: ${smooth[cross - 1].toFixed(2)}`
        : '; the smallest size measured';
      console.log(`crossover (${mode}): ${SIZES[cross]} elements = ${label(SIZES[cross])}${below}`);
    }
  }
  const current = await runChild({ ...single, MODEL_EMA_THREADS: '' , MODEL_EMA_PARALLEL_THRESHOLD: '' }, true);
  console.log(`the addon's parallel threshold now: ${current.threshold} elements`);
}

if (process.argv.includes('--child')) {
  process.send(measureSizes(), () => process.exit(0));
} else if (process.argv.includes('--info')) {
  const { binding } = require(path.join(__dirname, '..', 'dist', 'native.js'));
  process.send({ threshold: binding.cpuInfo().parallelThreshold }, () => process.exit(0));
} else {
  main().catch((err) => {
    console.error(err && err.stack ? err.stack : err);
    process.exit(1);
  });
}
