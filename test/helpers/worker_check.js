// Child-process check: the addon works inside worker_threads (each thread loads its own instance)
// while the main thread uses it too. Each worker builds an EMA, updates it, and posts the
// parameters it used and the shadows after each step; the parent test compares them with the reference.
// Prints one JSON line: { main, workers: [{ exitCode, result }] }.
// With the argument 'leave-while-busy' it checks instead that workers may terminate or exit while
// an updateAsync() is in flight; it prints { left: <workers that left> }.
'use strict';
const { Worker, isMainThread, parentPort, workerData } = require('node:worker_threads');
const { ExponentialMovingAverage } = require('../../dist/index.js');

function run(seed) {
  let state = seed;
  const next = () => {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    return state / 2 ** 32 - 0.5;
  };
  const sizes = [1, 7, 300, 4097];
  const initial = sizes.map((n) => Float32Array.from({ length: n }, next));
  const steps = [1, 2, 3].map(() => sizes.map((n) => Float32Array.from({ length: n }, next)));
  const ema = new ExponentialMovingAverage(initial.map((a) => a.slice()), { decay: 0.9 });
  const shadows = () => ema.stateDict().shadowParams.map((a) => Array.from(a));
  const history = [shadows()]; // the shadows before each step and after the last
  for (const step of steps) {
    ema.update(step);
    history.push(shadows());
  }
  const result = {
    initial: initial.map((a) => Array.from(a)),
    steps: steps.map((step) => step.map((a) => Array.from(a))),
    history,
    numUpdates: ema.numUpdates,
  };
  ema.dispose();
  return result;
}

// A worker that leaves while its updateAsync() is still running: by terminate() from the parent,
// or by process.exit() inside the worker. Either way the process must survive.
function startAndLeave(exitInside) {
  const p = new Float32Array(1 << 20).fill(1);
  const ema = new ExponentialMovingAverage([p], { decay: 0.9 });
  void ema.updateAsync([p]);
  if (exitInside) process.exit(0);
  parentPort.postMessage('started');
}

async function leaveWhileBusy() {
  let left = 0;
  for (let i = 0; i < 6; i++) {
    const exitInside = i % 2 === 1;
    const worker = new Worker(__filename, { workerData: { leave: true, exitInside } });
    const exited = new Promise((resolve) => worker.once('exit', resolve));
    if (!exitInside) {
      await new Promise((resolve) => worker.once('message', resolve));
      await worker.terminate();
    }
    await exited;
    left += 1;
  }
  return left;
}

if (!isMainThread) {
  if (workerData.leave) startAndLeave(workerData.exitInside);
  else parentPort.postMessage(run(workerData.seed));
} else if (process.argv[2] === 'leave-while-busy') {
  leaveWhileBusy().then(
    (left) => process.stdout.write(`${JSON.stringify({ left })}\n`),
    (error) => {
      process.stderr.write(`${error && error.stack}\n`);
      process.exit(1);
    },
  );
} else {
  const spawn = (seed) =>
    new Promise((resolve, reject) => {
      const worker = new Worker(__filename, { workerData: { seed } });
      let result = null;
      worker.on('message', (message) => {
        result = message;
      });
      worker.on('error', reject);
      worker.on('exit', (exitCode) => resolve({ exitCode, result }));
    });
  (async () => {
    // Two at once, while the main thread works too, then one more after they have exited.
    const running = [spawn(11), spawn(12)];
    const main = run(10);
    const workers = await Promise.all(running);
    workers.push(await spawn(13));
    process.stdout.write(`${JSON.stringify({ main, workers })}\n`);
  })().catch((error) => {
    process.stderr.write(`${error && error.stack}\n`);
    process.exit(1);
  });
}
