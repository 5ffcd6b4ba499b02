'use strict';
// GPU benchmark: how close model-ema's CUDA path comes to the raw hardware, on one device.
//
//   node bench/gpu.js [--elements N] [--tensors T] [--reps R] [--device D] [--strict]
//
// Two ratios, each against a ceiling measured in the same run on the same device:
//  1. device-resident fused update vs a device-to-device copy (goal >= 0.85): the library's own
//     update kernels (the launches a device arena queues) over float32 shadows and float32
//     parameters already on the device, against cudaMemcpy D2D, both as bytes moved per second
//     (the update reads shadows and parameters and writes shadows: 12 bytes per element; a copy
//     reads and writes: 2 bytes per byte copied). Measured by build/gpu_baselines (CUDA events).
//  2. upload-fed update vs pinned host-to-device bandwidth (goal >= 0.8): ShadowArena.update()
//     on a device arena with the parameters in host Float32Arrays (what the EMA does), as
//     parameter bytes per second of wall time, against cudaMemcpy H2D of the same bytes from
//     pinned memory.
// Needs a CUDA GPU and a build that found nvcc (`npx cmake-js compile` builds build/gpu_baselines
// then); without a GPU it says so and exits 0. --strict exits 1 when a goal is missed.
const fs = require('node:fs');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const { performance } = require('node:perf_hooks');

const root = path.resolve(__dirname, '..');
const GOALS = { fusedVsCopy: 0.85, uploadVsPinned: 0.8 };

function parseArgs(argv) {
  // Default: 64 Mi float32 elements (256 MiB of shadows, as a 64M-parameter model) in 161
  // tensors (ResNet-50's count): big enough that launch and sync overheads are amortised.
  const opts = { elements: 64 * 2 ** 20, tensors: 161, reps: 20, device: 0, strict: false };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    if (flag === '--strict') {
      opts.strict = true;
      continue;
    }
    const key = { '--elements': 'elements', '--tensors': 'tensors', '--reps': 'reps', '--device': 'device' }[flag];
    const value = Number(argv[++i]);
    if (!key || !Number.isSafeInteger(value) || value < (key === 'device' ? 0 : 1)) {
      throw new Error(`bad option ${flag} ${argv[i]}; usage: node bench/gpu.js [--elements N] [--tensors T] [--reps R] [--device D] [--strict]`);
    }
    opts[key] = value;
  }
  return opts;
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

const gbps = (bytes, ms) => bytes / (ms * 1e6);

function loadBinding() {
  // eslint-disable-next-line global-require
  return require('node-gyp-build')(root);
}

function baselines(opts) {
  const exe = path.join(root, 'build', process.platform === 'win32' ? 'gpu_baselines.exe' : 'gpu_baselines');
  if (!fs.existsSync(exe)) {
    throw new Error(`${exe} is missing: it is built by \`npx cmake-js compile\` only when CMake finds nvcc`);
  }
  const args = [opts.elements, opts.reps, opts.tensors, opts.device].map(String);
  const out = spawnSync(exe, args, { encoding: 'utf8' });
  if (out.status !== 0) throw new Error(`gpu_baselines exited ${out.status}: ${out.stderr.trim()}`);
  return JSON.parse(out.stdout);
}

// Wall time of ShadowArena.update() from host parameters, as the EMA calls it.
function uploadFedUpdate(binding, opts, dtype) {
  const per = Math.ceil(opts.elements / opts.tensors);
  const sizes = Array.from({ length: opts.tensors }, (_, t) => Math.max(0, Math.min(per, opts.elements - t * per)));
  const params = sizes.map((n, t) => new Float32Array(n).fill(0.25 + t * 1e-3));
  const arena = new binding.ShadowArena(dtype, sizes, opts.device);
  try {
    arena.copyFrom(params); // also allocates the pinned staging buffers: not timed
    for (let r = 0; r < 2; r++) arena.update(params, { decay: 0.999 });
    const ms = [];
    for (let r = 0; r < opts.reps; r++) {
      const t0 = performance.now();
      arena.update(params, { decay: 0.999 });
      ms.push(performance.now() - t0);
    }
    const outputs = sizes.map((n) => new Float32Array(n));
    const copyMs = [];
    for (let r = 0; r < Math.max(3, opts.reps >> 2); r++) {
      const t0 = performance.now();
      arena.copyTo(outputs);
      copyMs.push(performance.now() - t0);
    }
    if (!(outputs[0][0] > 0 && outputs[0][0] < 1)) throw new Error(`wrong average: ${outputs[0][0]}`);
    return { paramBytes: opts.elements * 4, ms, copyToMs: copyMs };
  } finally {
    arena.dispose();
  }
}

function main() {
  const opts = parseArgs(process.argv.slice(2));
  const binding = loadBinding();
  const cuda = binding.backends().find((b) => b.name === 'cuda');
  if (!cuda || !cuda.available) {
    console.log(`bench/gpu.js: no usable CUDA GPU, nothing to measure (${cuda ? cuda.reason : 'no cuda backend entry'})`);
    return 0;
  }
  const device = cuda.devices[opts.device];
  if (!device) throw new Error(`--device ${opts.device}: this machine has ${cuda.devices.length} CUDA device(s)`);

  const base = baselines(opts);
  const copyBw = gbps(base.d2dCopy.trafficBytes, median(base.d2dCopy.ms));
  const fusedBw = gbps(base.fusedUpdate.trafficBytes, median(base.fusedUpdate.ms));
  const pinnedBw = gbps(base.pinnedH2D.bytes, median(base.pinnedH2D.ms));
  const f32 = uploadFedUpdate(binding, opts, 'float32');
  const bf16 = uploadFedUpdate(binding, opts, 'bfloat16');
  const uploadBw = gbps(f32.paramBytes, median(f32.ms));

  const result = {
    device: device.name,
    elements: opts.elements,
    tensors: opts.tensors,
    reps: opts.reps,
    gbPerS: {
      d2dCopy: copyBw,
      fusedUpdateDeviceResident: fusedBw,
      pinnedH2D: pinnedBw,
      uploadFedUpdateF32: uploadBw,
      uploadFedUpdateBf16: gbps(bf16.paramBytes, median(bf16.ms)),
      copyToF32: gbps(f32.paramBytes, median(f32.copyToMs)),
    },
    ratios: { fusedVsCopy: fusedBw / copyBw, uploadVsPinned: uploadBw / pinnedBw },
    goals: GOALS,
  };
  const row = (label, value, unit) => console.log(`  ${label.padEnd(52)} ${value.toFixed(unit === 'x' ? 3 : 1).padStart(8)} ${unit}`);
  console.log(`model-ema GPU bench on ${device.name}: ${opts.elements} float32 elements in ${opts.tensors} tensors, ${opts.reps} reps (medians)`);
  row('device-to-device copy (bytes moved)', copyBw, 'GB/s');
  row('fused update, device-resident (bytes moved)', fusedBw, 'GB/s');
  row(`  ratio (goal >= ${GOALS.fusedVsCopy})`, result.ratios.fusedVsCopy, 'x');
  row('pinned host-to-device copy', pinnedBw, 'GB/s');
  row('ShadowArena.update() from host float32 (param bytes)', uploadBw, 'GB/s');
  row(`  ratio (goal >= ${GOALS.uploadVsPinned})`, result.ratios.uploadVsPinned, 'x');
  row('  same with bfloat16 shadows', result.gbPerS.uploadFedUpdateBf16, 'GB/s');
  row('ShadowArena.copyTo() into host float32', result.gbPerS.copyToF32, 'GB/s');
  console.log(JSON.stringify(result));
  const missed = Object.keys(GOALS).filter((k) => !(result.ratios[k] >= GOALS[k]));
  if (missed.length > 0) console.log(`goal missed: ${missed.join(', ')}`);
  return opts.strict && missed.length > 0 ? 1 : 0;
}

try {
  process.exitCode = main();
} catch (error) {
  console.error(`bench/gpu.js: ${error.message}`);
  process.exitCode = 2;
}
