'use strict';
// Save and load time and peak memory for a large EMA checkpoint (default: gpt2-medium-like,
// 354,823,168 float32 parameters, a 1.4 GB file). Usage: node bench/checkpoint.js [--elements N]
// [--dir DIR]. Peak RSS is Linux's VmHWM, reset before each phase (/proc/self/clear_refs), and
// reported above the resident set at the start of the phase: what saving or loading adds.
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { ExponentialMovingAverage } = require('../dist/index.js');
const { loadWorkload } = require('./workloads.js');

function arg(name, fallback) {
  const i = process.argv.indexOf(name);
  return i === -1 ? fallback : process.argv[i + 1];
}

function statusKiB(field) {
  const line = fs.readFileSync('/proc/self/status', 'utf8').split('\n').find((l) => l.startsWith(field));
  return Number(line.split(/\s+/)[1]);
}

async function phase(label, fn) {
  fs.writeFileSync('/proc/self/clear_refs', '5'); // resets VmHWM to the current RSS
  const before = statusKiB('VmRSS:');
  const start = process.hrtime.bigint();
  await fn();
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  const peakMiB = (statusKiB('VmHWM:') - before) / 1024;
  console.log(`${label.padEnd(6)} ${seconds.toFixed(2)} s, peak RSS +${peakMiB.toFixed(0)} MiB`);
}

async function main() {
  const elements = arg('--elements');
  const sizes = elements ? [Number(elements)] : loadWorkload('gpt2-medium-like').sizes;
  const total = sizes.reduce((a, b) => a + b, 0);
  const dir = fs.mkdtempSync(path.join(arg('--dir', os.tmpdir()), 'model-ema-ckpt-'));
  const file = path.join(dir, 'ema.safetensors');
  const params = sizes.map((n) => new Float32Array(n).fill(0.25));
  const ema = new ExponentialMovingAverage(params, { decay: 0.999 });
  ema.update();
  console.log(`${sizes.length} tensors, ${total.toLocaleString()} float32 parameters, file in ${dir}`);
  try {
    await phase('save', () => ema.save(file));
    console.log(`file   ${(fs.statSync(file).size / 2 ** 20).toFixed(0)} MiB`);
    await phase('load', () => ema.load(file));
  } finally {
    ema.dispose();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
