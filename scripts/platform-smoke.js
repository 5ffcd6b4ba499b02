#!/usr/bin/env node
// A smoke test of an installed model-ema on the platform it runs on. scripts/check-arm64.sh copies
// it into a project where the packed tarball is installed and runs it twice: under qemu-aarch64
// with an arm64 Node (the linux-arm64 prebuild) and natively (the linux-x64 one).
//   - float32 and float64 shadows against a JS reference of the kernel's arithmetic, exactly;
//   - float16/bfloat16 shadows, stochastic rounding and the non-finite guard, near a float64 reference;
//   - a checkpoint saved, loaded into a new EMA, compared.
// The last line is a digest of every shadow's bits and of the checkpoint's bytes: the kernels give
// the same bits on every instruction set, so the arm64 and x64 digests must be equal.
// Usage: node platform-smoke.js <folder for the checkpoint>
'use strict';
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { ExponentialMovingAverage, cpuInfo } = require('model-ema');

const folder = process.argv[2];
const info = cpuInfo();
// Around every vector width; `threaded` adds a tensor above the parallel threshold (split over the
// threads), only to the float32 run: JS under qemu is slow.
const small = [1, 3, 4, 5, 8, 15, 16, 17, 33, 1000];
const threaded = [...small, info.parallelThreshold + 7];
const decay = 0.9;
const steps = 4;
const digest = crypto.createHash('sha256');

/** Deterministic parameter values in [-2, 2) for step `t` (a small LCG; some exact zeros and halves). */
function parameters(t, Type = Float32Array, sizes = small) {
  let x = 12345 + 977 * t;
  return sizes.map((n) => Type.from({ length: n }, () => {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    return ((x >>> 8) % 4096) / 1024 - 2;
  }));
}

function fail(message) {
  throw new Error(`${process.arch}: ${message}`);
}

/** Runs `steps` updates (progress given, so that the counters and the checkpoint are deterministic). */
function run(options, { Type = Float32Array, poison = false, sizes = small } = {}) {
  const ema = new ExponentialMovingAverage(parameters(0, Type, sizes), { decay, useNumUpdates: false, ...options });
  for (let t = 1; t <= steps; t++) {
    const p = parameters(t, Type, sizes);
    if (poison) p[9][t] = t % 2 ? NaN : -Infinity;
    ema.update(p, { seconds: 1 });
  }
  const shadows = ema.stateDict().shadowParams;
  for (const s of shadows) digest.update(new Uint8Array(s.buffer, s.byteOffset, s.byteLength));
  return { ema, shadows };
}

/** The kernel's arithmetic in JS: s - (1 - decay) * (s - p), in float32 (fround) or float64. */
function reference(round, { poison = false, sizes = small } = {}) {
  const oneMinusDecay = round(1 - decay);
  const s = parameters(0, Float32Array, sizes).map((a) => Array.from(a, round));
  for (let t = 1; t <= steps; t++) {
    parameters(t, Float32Array, sizes).forEach((p, i) => p.forEach((v, j) => {
      if (poison && i === 9 && j === t) return; // the guard keeps such an element's shadow
      s[i][j] = round(s[i][j] - round(oneMinusDecay * round(s[i][j] - round(v))));
    }));
  }
  return s;
}

function compare(label, got, want, tolerance) {
  let worst = 0;
  got.forEach((g, i) => g.forEach((v, j) => {
    const err = Math.abs(v - want[i][j]);
    if (!(err <= tolerance * Math.max(1, Math.abs(want[i][j])))) fail(`${label}: tensor ${i} element ${j} is ${v}, want ${want[i][j]}`);
    worst = Math.max(worst, err);
  }));
  const elements = got.reduce((n, g) => n + g.length, 0);
  console.log(`${label}: ${elements} elements x ${steps} updates match the JS reference (${tolerance === 0 ? 'exactly' : `max error ${worst.toExponential(2)}`})`);
}

async function main() {
  console.log(`${process.platform}-${process.arch} node ${process.version}, cpuInfo ${JSON.stringify(info)}`);
  const f64 = reference((v) => v);
  compare('float32', run({}, { sizes: threaded }).shadows, reference(Math.fround, { sizes: threaded }), 0);
  compare('float64', run({ dtype: 'float64' }, { Type: Float64Array }).shadows, f64, 0);
  compare('float16', run({ dtype: 'float16' }).shadows, f64, 2 ** -9);
  compare('bfloat16', run({ dtype: 'bfloat16' }).shadows, f64, 2 ** -6);
  compare('bfloat16 stochastic', run({ dtype: 'bfloat16', rounding: 'stochastic', seed: 7 }).shadows, f64, 2 ** -5);
  compare('skip-element guard', run({ nonFinite: 'skip-element' }, { poison: true }).shadows, reference(Math.fround, { poison: true }), 0);

  const { ema, shadows } = run({ dtype: 'bfloat16' });
  const file = path.join(folder, `checkpoint-${process.arch}.safetensors`);
  await ema.save(file);
  const loaded = new ExponentialMovingAverage(parameters(0), { decay: 0.5, dtype: 'bfloat16' });
  await loaded.load(file);
  const back = loaded.stateDict();
  if (back.decay !== decay || back.dtype !== 'bfloat16') fail(`loaded decay ${back.decay}, dtype ${back.dtype}`);
  back.shadowParams.forEach((s, i) => {
    if (Buffer.compare(Buffer.from(s.buffer, s.byteOffset, s.byteLength), Buffer.from(shadows[i].buffer, shadows[i].byteOffset, shadows[i].byteLength)) !== 0) fail(`loaded tensor ${i} differs`);
  });
  digest.update(fs.readFileSync(file));
  console.log(`checkpoint: saved (${fs.statSync(file).size} bytes), loaded into a new EMA, shadows and decay equal`);
  ema.dispose();
  loaded.dispose();
  console.log(`digest ${digest.digest('hex')}`);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
