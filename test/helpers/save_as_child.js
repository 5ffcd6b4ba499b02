'use strict';
// Child process for test/checkpoint_fs_errors.test.ts: saves a small checkpoint to argv[2] with
// the current sources (the parent may run it as another user) and prints "saved" or the error.
require('./register_ts');
const { saveCheckpoint } = require('../../src/checkpoint/ema_checkpoint.ts');

saveCheckpoint(process.argv[2], {
  decay: 0.75,
  numUpdates: 4,
  progress: { schedule: { kind: 'torch_ema' }, step: 4, samples: 0, seconds: 0 },
  nonFiniteStats: { skippedUpdates: 0, skippedElements: 0 },
  dtype: 'float32',
  names: ['w'],
  sizes: [3],
  shadowBytes: () => new Float32Array([1, 2, 3]),
  collected: null,
}).then(
  () => process.stdout.write('saved\n'),
  (error) => {
    process.stdout.write(`${error.code}: ${error.message}\n`);
    process.exitCode = 1;
  },
);
