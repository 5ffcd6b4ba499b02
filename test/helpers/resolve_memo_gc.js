// Child-process check (run with --expose-gc and register_ts.js): the resolutions an EMA remembers
// (src/resolve.ts) hold its parameters only weakly. After updates through both remembered forms
// (registered and explicit), a model the caller drops is collected, and the next implicit update
// names the lost parameter. Prints one JSON line: { collected, update: error message or null }.
'use strict';
const path = require('node:path');
const { ExponentialMovingAverage } = require(path.join(__dirname, '..', '..', 'src', 'index.ts'));

if (typeof global.gc !== 'function') throw new Error('run with --expose-gc');

// Built in a function so that no local of main() holds the model.
function trainAndDrop() {
  const model = [new Float32Array(16).fill(1), new Float32Array(4).fill(2)];
  const ema = new ExponentialMovingAverage(model, { decay: 0.5, useNumUpdates: false });
  for (let i = 0; i < 3; i++) {
    ema.update();
    ema.update(model);
  }
  return { ema, gone: new WeakRef(model[1]) };
}

async function main() {
  const { ema, gone } = trainAndDrop();
  for (let i = 0; i < 50 && gone.deref() !== undefined; i++) {
    // WeakRef targets stay alive until the current job ends: yield before each gc().
    await new Promise((resolve) => setImmediate(resolve));
    global.gc();
  }
  let update = null;
  try {
    ema.update();
  } catch (error) {
    update = error.message;
  }
  process.stdout.write(`${JSON.stringify({ collected: gone.deref() === undefined, update })}\n`);
}

main().catch((error) => {
  process.stderr.write(`${error && error.stack}\n`);
  process.exit(1);
});
