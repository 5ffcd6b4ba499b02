// Child-process driver for test/worker_termination.test.ts: worker_threads that are inside an addon
// call when they are terminated (or when the process exits). Run in its own process so that an
// abort (a C++ exception escaping while the worker's environment is torn down) fails the test
// with a signal instead of killing jest.
//
//   node worker_termination.js terminate <operation> <rounds>  terminate() at a random moment
//   node worker_termination.js exit <operation> <delay ms>     process.exit(0) while the worker is busy
//   node worker_termination.js exit-inside <operation>         the worker exits from inside the call
//                                                              (operations that read a JS array)
//   node worker_termination.js stress <milliseconds> <seed>    random operations, random moments
//
// Prints one JSON line; exits 0 unless something went wrong in JS (a worker error is reported).
'use strict';
const path = require('node:path');
const { Worker, isMainThread, parentPort, workerData } = require('node:worker_threads');

const root = path.resolve(__dirname, '..', '..');

// About 2M float32 elements in total (8 MiB): every call takes milliseconds, and the arena is
// above the parallel threshold, so the thread pool is busy too. Plus, as in a real model, many
// small tensors: reading their arrays is where a call spends its time in Node-API.
const LARGE = [2 << 20, 4099, 7, 1, ...Array.from({ length: 2048 }, (_, i) => 16 + (i % 5))];
// Many small tensors: the constructor then spends its time in Node-API calls (reading sizes).
const MANY = Array.from({ length: 4096 }, (_, i) => 256 + (i % 3));

const OPERATIONS = ['constructor', 'update', 'copyTo', 'storeRestore', 'updateAsync', 'saveLoad', 'cast', 'updateTracks', 'updateTracksAsync'];

function params(sizes) {
  return sizes.map((n, i) => new Float32Array(n).fill(i + 0.5));
}

// One step of each operation, on a context made once per worker. Async ones return a promise.
const steps = {
  constructor(ctx) {
    ctx.arena.dispose();
    ctx.arena = new ctx.binding.ShadowArena('float32', ctx.sizes);
    ctx.arena.copyFrom(ctx.params); // as the facade fills a new arena
  },
  update(ctx) {
    ctx.arena.update(ctx.params, { decay: 0.9 });
  },
  copyTo(ctx) {
    ctx.arena.copyTo(ctx.params);
  },
  // What store()/restore() and the scopes do: a backup arena filled from the parameters, then
  // written back to them.
  storeRestore(ctx) {
    ctx.backup.copyFrom(ctx.params);
    ctx.backup.copyTo(ctx.params);
  },
  updateAsync(ctx) {
    return ctx.arena.updateAsync(ctx.params, { decay: 0.9 });
  },
  // What save() and load() do natively: raw bytes out of every tensor, then back in.
  saveLoad(ctx) {
    for (let i = 0; i < ctx.sizes.length; i++) ctx.arena.writeBytes(i, ctx.arena.readBytes(i));
  },
  cast(ctx) {
    ctx.arena.cast('bfloat16').dispose();
  },
  // EmaTracks: two arenas from one read of the parameters.
  updateTracks(ctx) {
    ctx.arena.updateTracks(ctx.params, [{ decay: 0.9 }, { decay: 0.99 }], [ctx.backup]);
  },
  updateTracksAsync(ctx) {
    return ctx.arena.updateTracksAsync(ctx.params, [{ decay: 0.9 }, { decay: 0.99 }], [ctx.backup]);
  },
};

function context(binding, operation) {
  const sizes = operation === 'constructor' ? MANY : LARGE;
  const ctx = { binding, sizes, params: params(sizes) };
  ctx.arena = new binding.ShadowArena('float32', sizes);
  ctx.backup = new binding.ShadowArena('float32', sizes);
  return ctx;
}

async function loop(ctx, operation) {
  const step = steps[operation];
  for (;;) {
    const pending = step(ctx);
    if (pending) await pending;
  }
}

// A random operation per step, on random arenas, async ones sometimes not awaited (several in
// flight on different arenas).
async function randomLoop(binding, seed) {
  let state = seed >>> 0;
  const random = () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
  const contexts = [context(binding, 'update'), context(binding, 'constructor')];
  const inFlight = new Set();
  for (;;) {
    const ctx = contexts[Math.floor(random() * contexts.length)];
    const operation = OPERATIONS[Math.floor(random() * OPERATIONS.length)];
    if (ctx.arena.busy || ctx.backup.busy) {
      await Promise.race(inFlight);
      continue;
    }
    const pending = steps[operation](ctx);
    if (pending) {
      inFlight.add(pending);
      pending.finally(() => inFlight.delete(pending));
      if (random() < 0.5) await pending;
    } else if (random() < 0.1) {
      await new Promise((resolve) => setImmediate(resolve));
    }
  }
}

async function workerMain() {
  const { mode, operation, seed } = workerData;
  // Loading the addon is a moment to be terminated at as well (its instance is created here).
  const binding = require('node-gyp-build')(root);
  if (mode === 'stress') {
    parentPort.postMessage('ready');
    return randomLoop(binding, seed);
  }
  const ctx = context(binding, operation);
  if (mode === 'exit-inside') {
    // Leave from inside the call: the first parameter (or size) read runs process.exit().
    const list = operation === 'constructor' ? ctx.sizes.slice() : ctx.params.slice();
    Object.defineProperty(list, 1, { get: () => process.exit(0) });
    if (operation === 'constructor') ctx.sizes = list;
    else ctx.params = list;
    await steps[operation](ctx);
    throw new Error(`exit-inside: ${operation} returned without reading its arguments`);
  }
  await steps[operation](ctx); // settles the context (pages touched) before 'ready'
  parentPort.postMessage('ready');
  return loop(ctx, operation);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Starts a worker and resolves once it is in its loop; rejects on a worker error.
function start(data, errors) {
  const worker = new Worker(__filename, { workerData: data, env: process.env });
  const exited = new Promise((resolve) => worker.once('exit', resolve));
  worker.on('error', (error) => errors.push(String(error && error.message)));
  const ready = new Promise((resolve) => {
    worker.once('message', resolve);
    worker.once('exit', resolve);
  });
  return { worker, ready, exited };
}

// `rounds` workers, two at a time, each terminated at a random moment of its loop.
async function terminateRounds(operation, rounds) {
  const errors = [];
  let started = 0;
  const lane = async () => {
    while (started < rounds) {
      started += 1;
      const { worker, ready } = start({ mode: 'loop', operation }, errors);
      await ready;
      await sleep(Math.random() * 10);
      await worker.terminate();
    }
  };
  await Promise.all([lane(), lane()]);
  return { rounds: started, errors };
}

async function exitWhileBusy(operation, delay) {
  const errors = [];
  const { ready } = start({ mode: 'loop', operation }, errors);
  await ready;
  await sleep(delay);
  process.stdout.write(`${JSON.stringify({ exiting: true, errors })}\n`);
  process.exit(0);
}

async function exitInside(operation) {
  const errors = [];
  const { exited } = start({ mode: 'exit-inside', operation }, errors);
  const code = await exited;
  return { code, errors };
}

async function stress(milliseconds, seed) {
  const errors = [];
  const end = Date.now() + milliseconds;
  let rounds = 0;
  let next = seed;
  // Two workers at a time, each terminated at a random moment: while loading the addon, while
  // setting up, or anywhere in its random operations.
  const lane = async () => {
    while (Date.now() < end) {
      const { worker, ready } = start({ mode: 'stress', seed: next++ }, errors);
      if (Math.random() < 0.8) await ready;
      await sleep(Math.random() * 30);
      await worker.terminate();
      rounds += 1;
    }
  };
  await Promise.all([lane(), lane()]);
  return { rounds, errors };
}

function report(promise) {
  promise.then(
    (result) => process.stdout.write(`${JSON.stringify(result)}\n`),
    (error) => {
      process.stderr.write(`${error && error.stack}\n`);
      process.exit(1);
    },
  );
}

if (!isMainThread) {
  workerMain().catch((error) => {
    throw error;
  });
} else {
  const [mode, a, b] = process.argv.slice(2);
  if (mode === 'terminate') report(terminateRounds(a, Number(b)));
  else if (mode === 'exit') report(exitWhileBusy(a, Number(b)));
  else if (mode === 'exit-inside') report(exitInside(a));
  else if (mode === 'stress') report(stress(Number(a), Number(b)));
  else {
    process.stderr.write(`unknown mode ${mode}\n`);
    process.exit(2);
  }
}
