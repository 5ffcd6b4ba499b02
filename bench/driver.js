'use strict';
// One driver on one workload, in a process of its own (bench/run.js forks one per measurement, so
// no driver inherits another's heap, JIT state or thread pool).
//
//   node bench/driver.js <workload> <driver-id> [--warmup N] [--min-reps N] [--max-reps N]
//                        [--budget-ms N]
//
// Warm-up updates run first and are not timed into the result; then the driver repeats until the
// time budget is spent (at least --min-reps, at most --max-reps timed updates). The result goes to
// the parent over IPC when forked, otherwise to stdout as one JSON line.
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const { DRIVERS, PARAM_SHIFT, initialValue } = require('./drivers.js');
const { loadWorkload } = require('./workloads.js');
const { summarize, nowMs } = require('./stats.js');

function parseArgs(argv) {
  const [workload, driver, ...rest] = argv;
  const opts = { workload, driver, warmup: 3, minReps: 5, maxReps: 1000, budgetMs: 1000 };
  const names = { '--warmup': 'warmup', '--min-reps': 'minReps', '--max-reps': 'maxReps', '--budget-ms': 'budgetMs' };
  for (let i = 0; i < rest.length; i += 2) {
    const key = names[rest[i]];
    const value = Number(rest[i + 1]);
    if (!key || !Number.isFinite(value) || value < 0) throw new Error(`bad option ${rest[i]} ${rest[i + 1]}`);
    opts[key] = value;
  }
  if (!workload || !driver) {
    throw new Error('usage: node bench/driver.js <workload> <driver-id> [--warmup N] [--min-reps N] [--max-reps N] [--budget-ms N]');
  }
  return opts;
}

function repsFor(estimateMs, opts) {
  const wanted = Math.round(opts.budgetMs / Math.max(estimateMs, 1e-6));
  return Math.max(opts.minReps, Math.min(opts.maxReps, wanted));
}

async function timeSteps(run, opts) {
  // Warm-up: at least opts.warmup updates (cut short once they have taken a quarter of the budget),
  // and for cheap updates more, up to a tenth of the budget: a training loop calls update()
  // thousands of times, so the JavaScript around the native call must be JIT-compiled, as it is
  // after a few hundred calls and is not after five.
  const warmStart = nowMs();
  let last = Infinity;
  let warmups = 0;
  const keepWarming = () => {
    const elapsed = nowMs() - warmStart;
    if (warmups < Math.max(1, opts.warmup)) return elapsed <= opts.budgetMs / 4;
    return warmups < 2000 && elapsed < opts.budgetMs / 10;
  };
  while (keepWarming()) {
    const t0 = nowMs();
    if (run.isAsync) await run.step();
    else run.step();
    last = nowMs() - t0;
    warmups++;
  }
  if (global.gc) global.gc();
  const reps = repsFor(last, opts);
  const samples = new Float64Array(reps);
  if (run.isAsync) {
    for (let r = 0; r < reps; r++) {
      const t0 = nowMs();
      await run.step();
      samples[r] = nowMs() - t0;
    }
  } else {
    for (let r = 0; r < reps; r++) {
      const t0 = nowMs();
      run.step();
      samples[r] = nowMs() - t0;
    }
  }
  return { warmups, samples };
}

// Every shadow must lie between its start value and its parameter (whatever the decay schedule and
// storage rounding); a garbage or torn arena fails this.
function checkShadows(run, workload) {
  const tolerance = 0.02;
  for (let t = 0; t < workload.sizes.length; t++) {
    const size = workload.sizes[t];
    const values = run.read(t);
    if (values.length !== size) throw new Error(`tensor ${t}: read ${values.length} elements, expected ${size}`);
    const indices = [size - 1];
    for (let i = 0; i < size; i += Math.ceil(size / 16)) indices.push(i);
    for (const i of indices) {
      const start = initialValue(t, i);
      const lo = start - tolerance;
      const hi = start + PARAM_SHIFT + tolerance;
      const v = values[i];
      if (!(v >= lo && v <= hi)) {
        throw new Error(`shadow ${t}[${i}] = ${v}, outside [${lo}, ${hi}]: the average is wrong`);
      }
    }
  }
}

function ceilingBinary() {
  const exe = path.resolve(__dirname, '..', 'build', process.platform === 'win32' ? 'ema_ceiling.exe' : 'ema_ceiling');
  if (!fs.existsSync(exe)) throw new Error(`${exe} is missing: build it with npx cmake-js compile`);
  return exe;
}

function runCeiling(driver, workload, opts) {
  const threads = driver.threads === 'all' ? os.cpus().length : driver.threads;
  // Guess from 40 GB/s per 12 bytes; the program warms up twice itself.
  const estimateMs = (workload.total * 12) / 40e9 * 1e3 / threads;
  const reps = repsFor(estimateMs, opts);
  const out = spawnSync(ceilingBinary(), [String(workload.total), String(threads), String(reps), String(driver.shadows ?? 1), ...(driver.checkFirst ? ['check'] : [])], {
    encoding: 'utf8',
    maxBuffer: 64 << 20,
  });
  if (out.status !== 0) throw new Error(`ema_ceiling exited ${out.status}: ${out.stderr}`);
  const line = JSON.parse(out.stdout.trim().split('\n').pop());
  return { threads, warmups: 2, samples: line.msPerUpdate };
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const workload = loadWorkload(opts.workload);
  const driver = DRIVERS.find((d) => d.id === opts.driver);
  if (!driver) throw new Error(`unknown driver '${opts.driver}' (known: ${DRIVERS.map((d) => d.id).join(', ')})`);
  const base = { workload: workload.name, driver: driver.id };

  let measured;
  if (driver.kind === 'ceiling') {
    measured = runCeiling(driver, workload, opts);
  } else {
    const setupStart = nowMs();
    const run = await driver.setup(workload);
    if (run.skip) return { ...base, skipped: run.skip };
    const setupMs = nowMs() - setupStart;
    const { warmups, samples } = await timeSteps(run, opts);
    checkShadows(run, workload);
    run.dispose();
    measured = { threads: run.threads, warmups, samples, setupMs };
  }
  const stats = summarize(measured.samples);
  return {
    ...base,
    threads: measured.threads,
    warmups: measured.warmups,
    reps: stats.n,
    setupMs: measured.setupMs,
    ms: stats,
    samples: Array.from(measured.samples),
  };
}

function report(message) {
  if (process.send) process.send(message, () => process.exit(message.ok ? 0 : 1));
  else {
    process.stdout.write(JSON.stringify(message) + '\n');
    process.exit(message.ok ? 0 : 1);
  }
}

main().then(
  (result) => report({ ok: true, result }),
  (err) => report({ ok: false, error: err && err.stack ? err.stack : String(err) }),
);
