// Child-process check (run with --expose-gc): the EMA holds its registered parameters weakly. A
// model dropped by the caller is collected while the EMA lives; the next implicit operation then
// throws naming the lost parameter, while explicit parameters keep working. Prints one JSON line.
'use strict';
const { ExponentialMovingAverage } = require('../../dist/index.js');

if (typeof global.gc !== 'function') throw new Error('run with --expose-gc');

function errorOf(fn) {
  try {
    fn();
    return null;
  } catch (error) {
    return { name: error.name, message: error.message };
  }
}

// Built in a function so that no local of main() holds the model.
function register(named) {
  const model = { weight: new Float32Array(16).fill(1), bias: new Float32Array(4).fill(2) };
  const params = named
    ? [{ name: 'fc.weight', value: model.weight }, { name: 'fc.bias', value: model.bias }]
    : [model.weight, model.bias];
  const ema = new ExponentialMovingAverage(params, { decay: 0.5, useNumUpdates: false });
  return { ema, weight: model.weight, biasGone: new WeakRef(model.bias) };
}

async function collect(ref) {
  for (let i = 0; i < 50 && ref.deref() !== undefined; i++) {
    // WeakRef targets stay alive until the current job ends: yield before each gc().
    await new Promise((resolve) => setImmediate(resolve));
    global.gc();
  }
  return ref.deref() === undefined;
}

async function check(named) {
  const { ema, weight, biasGone } = register(named);
  const collected = await collect(biasGone);
  const result = {
    collected,
    update: errorOf(() => ema.update()),
    copyTo: errorOf(() => ema.copyTo()),
    store: errorOf(() => ema.store()),
    numUpdatesAfterFailure: ema.numUpdates,
    shadowsAfterFailure: ema.stateDict().shadowParams.map((s) => Array.from(s)),
  };
  result.explicit = errorOf(() => ema.update([weight, new Float32Array(4).fill(4)]));
  result.shadowsAfterExplicit = ema.stateDict().shadowParams.map((s) => Array.from(s));
  return result;
}

async function main() {
  const named = await check(true);
  const unnamed = await check(false);
  process.stdout.write(`${JSON.stringify({ named, unnamed })}\n`);
}

main().catch((error) => {
  process.stderr.write(`${error && error.stack}\n`);
  process.exit(1);
});
