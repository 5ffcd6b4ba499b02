'use strict';
// Child process for test/checkpoint_atomic.test.ts: saves a large checkpoint (argv[3] MiB, in 8 MiB
// tensors) to argv[2], pausing after producing each tensor so the parent can SIGKILL it mid-save.
// Prints "writing <pid>" once the first tensor has been requested.
require('./register_ts');
const { saveCheckpoint } = require('../../src/checkpoint/ema_checkpoint.ts');

const [target, megabytes] = [process.argv[2], Number(process.argv[3] ?? 200)];
const tensorElements = (8 << 20) / 4;
const count = Math.ceil(megabytes / 8);
const pause = new Int32Array(new SharedArrayBuffer(4));

saveCheckpoint(target, {
  decay: 0.25,
  numUpdates: 7,
  progress: { schedule: { kind: 'torch_ema' }, step: 7, samples: 0, seconds: 0 },
  nonFiniteStats: { skippedUpdates: 0, skippedElements: 0 },
  dtype: 'float32',
  names: Array.from({ length: count }, (_, i) => `big.${i}`),
  sizes: Array.from({ length: count }, () => tensorElements),
  shadowBytes(index) {
    if (index === 0) process.stdout.write(`writing ${process.pid}\n`);
    Atomics.wait(pause, 0, 0, 40); // synchronous sleep: bytes() is synchronous by contract
    return new Float32Array(tensorElements).fill(index);
  },
  collected: null,
}).then(
  () => process.stdout.write('done\n'),
  (error) => {
    process.stderr.write(`${error.stack}\n`);
    process.exitCode = 1;
  },
);
