'use strict';
// npm run bench: times every driver in bench/drivers.js on each workload, one fresh child process
// per measurement, then prints a table and the targets and writes JSON + SVG to bench/results/.
// See bench/README.md for the flags and the columns.
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { fork, execFileSync } = require('node:child_process');
const { DRIVERS } = require('./drivers.js');
const { loadWorkload } = require('./workloads.js');
const { summarize } = require('./stats.js');
const report = require('./report.js');

const USAGE = `usage: node bench/run.js [options]
  --smoke              a few seconds: mlp-small and resnet50-tiny, 3 repeats; exit 1 on any failure
  --large              add gpt2-medium-like (355M parameters, about 6 GB of memory, several minutes)
  --workload <name>    only this workload (repeatable, or comma-separated)
  --only <substring>   only drivers whose id contains it (repeatable, or comma-separated; =id for
                       that id alone); the ceiling and plain JS still run so that the ratios have
                       a reference
  --no-reference       with --only: do not add the ceiling and plain JS
  --rounds <n>         run each native driver and plain JS n times, interleaved, and pool the
                       samples (default 3)
  --out <dir>          where to write the JSON and SVG (default bench/results; smoke: a temp dir)
  --strict             exit 1 when a target is missed, too
  --list               print the driver ids and workloads and exit
  --help`;

function parseArgs(argv) {
  const opts = { smoke: false, large: false, workloads: [], only: [], reference: true, rounds: 3, out: null, strict: false, list: false };
  const list = (v) => v.split(',').map((s) => s.trim()).filter(Boolean);
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) throw new Error(`${arg} needs a value\n${USAGE}`);
      return argv[++i];
    };
    if (arg === '--smoke') opts.smoke = true;
    else if (arg === '--large') opts.large = true;
    else if (arg === '--workload') opts.workloads.push(...list(value()));
    else if (arg === '--only') opts.only.push(...list(value()));
    else if (arg === '--no-reference') opts.reference = false;
    else if (arg === '--rounds') opts.rounds = Math.max(1, parseInt(value(), 10) || 1);
    else if (arg === '--out') opts.out = path.resolve(value());
    else if (arg === '--strict') opts.strict = true;
    else if (arg === '--list') opts.list = true;
    else if (arg === '--help' || arg === '-h') {
      console.log(USAGE);
      process.exit(0);
    } else throw new Error(`unknown option ${arg}\n${USAGE}`);
  }
  if (opts.smoke) opts.rounds = 1;
  return opts;
}

// Repeat counts per driver cost class: warm-up updates, then timed updates until budgetMs is spent,
// at least minReps and at most maxReps (see bench/driver.js). Chosen so that the default run takes
// about 2-2.5 minutes on a 2-core VM.
function repeatPlan(cost, workload, opts) {
  if (opts.smoke) return { warmup: 1, minReps: 3, maxReps: 20, budgetMs: 30 };
  const big = workload.large;
  const plans = {
    native: { warmup: 5, minReps: big ? 5 : 20, maxReps: 5000, budgetMs: 3000 / opts.rounds },
    js: { warmup: big ? 1 : 3, minReps: big ? 2 : 4, maxReps: 5000, budgetMs: 4000 / opts.rounds },
    tfjs: { warmup: big ? 1 : 2, minReps: big ? 3 : 5, maxReps: 1000, budgetMs: 6000 },
  };
  return plans[cost];
}

function childEnv(driver) {
  const env = { ...process.env };
  if (driver.threads === 1) env.MODEL_EMA_THREADS = '1';
  else delete env.MODEL_EMA_THREADS;
  return env;
}

/** Runs bench/driver.js in a fresh process; resolves to its message ({ ok, result | error }). */
function runChild(workload, driver, plan, timeoutMs) {
  const args = [workload.name, driver.id, '--warmup', plan.warmup, '--min-reps', plan.minReps, '--max-reps', plan.maxReps, '--budget-ms', plan.budgetMs].map(String);
  return new Promise((resolve) => {
    const child = fork(path.join(__dirname, 'driver.js'), args, {
      env: childEnv(driver),
      execArgv: ['--expose-gc'],
      silent: true, // tfjs prints a banner; keep the output for failures only
    });
    let output = '';
    let message = null;
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    child.on('message', (m) => (message = m));
    const timer = setTimeout(() => {
      output += `\n(killed after ${timeoutMs / 1000} s)`;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      if (message && message.ok) resolve(message);
      else {
        const why = message ? message.error : `driver exited with ${signal || `code ${code}`} and no result`;
        resolve({ ok: false, error: `${why}\n${output.trim()}`.trim() });
      }
    });
  });
}

function selectDrivers(opts) {
  if (opts.only.length === 0) return DRIVERS.slice();
  const wanted = (d) =>
    opts.only.some((s) => (s.startsWith('=') ? d.id === s.slice(1) : d.id.toLowerCase().includes(s.toLowerCase())));
  const picked = DRIVERS.filter((d) => wanted(d) || (opts.reference && d.reference));
  if (!picked.some(wanted)) throw new Error(`--only ${opts.only.join(',')} matches no driver (see --list)`);
  return picked;
}

function selectWorkloads(opts) {
  if (opts.workloads.length > 0) return opts.workloads.map(loadWorkload);
  if (opts.smoke) return ['mlp-small', 'resnet50-tiny'].map(loadWorkload);
  const names = ['mlp-small', 'resnet50-like'];
  if (opts.large) names.push('gpt2-medium-like');
  return names.map(loadWorkload);
}

function machineInfo() {
  const info = {
    hostname: os.hostname(),
    platform: `${process.platform}-${process.arch}`,
    cpuModel: os.cpus()[0] ? os.cpus()[0].model.trim() : 'unknown',
    cores: os.cpus().length,
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    modelEma: null,
    git: null,
  };
  try {
    const { binding } = require('../dist/native.js');
    info.modelEma = { version: binding.version, cpuInfo: binding.cpuInfo() };
  } catch (err) {
    info.modelEma = { error: err.message.split('\n')[0] };
  }
  try {
    const cwd = path.resolve(__dirname, '..');
    const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd, encoding: 'utf8', stdio: 'pipe' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain'], { cwd, encoding: 'utf8', stdio: 'pipe' }).trim() !== '';
    info.git = dirty ? `${commit}+dirty` : commit;
  } catch {
    // not a git checkout
  }
  return info;
}

function progressLine(workload, driver, outcome) {
  const name = `${workload.name} / ${driver.id}`.padEnd(44);
  if (!outcome.ok) return `${name} FAILED: ${outcome.error.split('\n')[0]}`;
  if (outcome.result.skipped) return `${name} skipped: ${outcome.result.skipped}`;
  const r = outcome.result;
  return `${name} ${report.formatMs(r.ms.median).padStart(10)} ms/update  (${r.reps} reps)`;
}

// Native drivers and plain JS (the reference of a target) run in every round, so that a noisy
// stretch of time lands on all of them alike; tfjs is too slow to repeat.
function inRounds(driver) {
  return driver.cost !== 'tfjs';
}

/** Fraction of all CPUs' time spent busy over the next `ms` (Linux /proc/stat; null elsewhere). */
async function cpuBusyFraction(ms) {
  const read = () => {
    const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    const idle = f[3] + (f[4] || 0);
    return { idle, total: f.slice(0, 8).reduce((a, b) => a + b, 0) };
  };
  try {
    const a = read();
    await new Promise((resolve) => setTimeout(resolve, ms));
    const b = read();
    return b.total === a.total ? 0 : Math.round((1 - (b.idle - a.idle) / (b.total - a.total)) * 100) / 100;
  } catch {
    return null;
  }
}

/** Pools the samples of several rounds of one driver into one result. */
function merge(previous, next) {
  if (!previous) return next;
  if (!next.ok || next.result.skipped) return next;
  const samples = previous.result.samples.concat(next.result.samples);
  return { ok: true, result: { ...previous.result, warmups: previous.result.warmups + next.result.warmups, reps: samples.length, samples, ms: summarize(samples) } };
}

async function main() {
  const started = Date.now();
  const opts = parseArgs(process.argv.slice(2));
  if (opts.list) {
    console.log('drivers:', DRIVERS.map((d) => d.id).join(' '));
    console.log('workloads: mlp-small resnet50-like resnet50-tiny gpt2-medium-like (--large)');
    return 0;
  }
  const workloads = selectWorkloads(opts);
  const drivers = selectDrivers(opts);
  const machine = machineInfo();
  machine.loadAverageAtStart = os.loadavg()[0];
  machine.cpuBusyBeforeStart = await cpuBusyFraction(opts.smoke ? 200 : 1000);
  if (machine.cpuBusyBeforeStart > 0.15) {
    console.log(`note: other processes kept ${(machine.cpuBusyBeforeStart * 100).toFixed(0)}% of the CPUs busy ` +
      'in the second before the run: the numbers (multi-threaded ones most) will be noisy');
  }
  console.log(`model-ema bench${opts.smoke ? ' (smoke)' : ''}: ${machine.cpuModel}, ${machine.cores} cores, Node ${machine.node}, ` +
    `model-ema ${machine.modelEma.version || '?'} (${JSON.stringify(machine.modelEma.cpuInfo || machine.modelEma.error)})`);

  const results = [];
  const failures = [];
  for (const workload of workloads) {
    console.log(`\n${workload.name}: ${workload.sizes.length} tensors, ${workload.total.toLocaleString('en-US')} parameters`);
    const outcomes = new Map();
    for (let round = 0; round < opts.rounds; round++) {
      for (const driver of drivers) {
        if (round > 0 && !inRounds(driver)) continue;
        const previous = outcomes.get(driver.id);
        if (previous && (!previous.ok || previous.result.skipped)) continue;
        const plan = repeatPlan(driver.cost, workload, opts);
        const timeoutMs = opts.smoke ? 60e3 : workload.large ? 900e3 : 300e3;
        const outcome = merge(previous, await runChild(workload, driver, plan, timeoutMs));
        outcomes.set(driver.id, outcome);
        const lastRound = !inRounds(driver) || round === opts.rounds - 1;
        if (lastRound || !outcome.ok || outcome.result.skipped) {
          console.log(progressLine(workload, driver, outcome));
        }
      }
    }
    for (const driver of drivers) {
      const outcome = outcomes.get(driver.id);
      if (outcome.ok) results.push({ ...outcome.result, samples: undefined });
      else {
        failures.push({ workload: workload.name, driver: driver.id, error: outcome.error });
        results.push({ workload: workload.name, driver: driver.id, failed: outcome.error.split('\n')[0] });
      }
    }
  }

  const elapsedS = (Date.now() - started) / 1000;
  machine.loadAverageAtEnd = os.loadavg()[0];
  const rows = report.buildRows(results, workloads, DRIVERS);
  console.log('\n' + report.formatTable(rows, workloads));
  const targets = report.evaluateTargets(rows);
  console.log('\n' + report.formatTargets(targets));
  if (opts.smoke) console.log('(smoke run: too few repeats to judge the targets; shown to exercise the code)');
  // One block per distinct error (a missing build fails every native driver the same way).
  const byError = new Map();
  for (const f of failures) {
    const key = f.error.split('\n')[0];
    if (!byError.has(key)) byError.set(key, { error: f.error, where: [] });
    byError.get(key).where.push(`${f.workload} / ${f.driver}`);
  }
  for (const { error, where } of byError.values()) {
    console.error(`\nFAILED ${where.join(', ')}:\n${error.split('\n').slice(0, 12).join('\n')}`);
  }

  const partial = opts.only.length > 0 || opts.workloads.length > 0;
  const outDir = opts.out || (opts.smoke ? path.join(os.tmpdir(), 'model-ema-bench-smoke') : path.join(__dirname, 'results'));
  const files = report.writeResults({
    outDir,
    machine,
    mode: opts.smoke ? 'smoke' : opts.large ? 'large' : 'default',
    partial,
    workloads,
    rows,
    targets,
    failures,
    elapsedS,
  });
  console.log(`\nwrote ${files.json}\n      ${files.svg}`);
  console.log(`${failures.length === 0 ? 'done' : `${failures.length} driver(s) FAILED`} in ${elapsedS.toFixed(0)} s`);

  if (failures.length > 0) return 1;
  if (opts.strict && !opts.smoke && targets.some((t) => t.status === 'MISS')) return 1;
  return 0;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(err && err.stack ? err.stack : err);
    process.exit(2);
  },
);
