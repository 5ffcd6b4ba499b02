'use strict';
// Writes the checkpoints that check_checkpoint.py reads with Python's own safetensors and torch:
// one small checkpoint per storage dtype (named, unnamed and duplicate-named parameters, a 2-D and
// a tfjs-shaped 4-D one, float32 and float64 parameters, a store() backup), each with a JSON file
// of what it must hold, taken from stateDict() (not from the checkpoint's own bytes).
//
//   npm run build:ts && node scripts/gpu_check/make_checkpoint_fixture.js
//
// The files are committed (a GPU machine has no Node); test/gpu_check.test.ts checks that the
// library still writes exactly these bytes.
const fs = require('node:fs');
const path = require('node:path');

const DTYPES = ['float32', 'float64', 'float16', 'bfloat16'];
const FIXTURE_DIR = path.join(__dirname, 'fixtures');

// Values that every storage dtype rounds differently (thirds, large and tiny magnitudes).
function values(Type, n, seed) {
  return Type.from({ length: n }, (_, i) => ((i + 1) * (seed + 1)) / 3 * 10 ** ((i % 5) - 2) * (i % 2 ? -1 : 1));
}

function parameters() {
  return [
    { name: 'fc.weight', value: values(Float32Array, 6, 1), shape: [2, 3] },
    { name: 'fc.bias', value: values(Float64Array, 3, 2) },
    { name: 'conv.kernel', value: values(Float32Array, 12, 3), shape: [2, 2, 1, 3] }, // tfjs HWIO
    { name: 'fc.weight', value: values(Float32Array, 2, 4) }, // a duplicate name: key fc.weight#3
    values(Float32Array, 1, 5), // unnamed: key "4"
  ];
}

// { [file name]: contents } for every dtype, from `lib` (the package, or its sources in tests).
function buildFixtures(lib) {
  const files = {};
  for (const dtype of DTYPES) {
    const params = parameters();
    const arrays = params.map((p) => (ArrayBuffer.isView(p) ? p : p.value));
    const ema = new lib.ExponentialMovingAverage(params, { decay: 0.75, useNumUpdates: false, dtype });
    try {
      for (let step = 1; step <= 2; step++) {
        arrays.forEach((a, t) => a.forEach((v, i) => (a[i] = v + (step * (t + 1)) / 7)));
        ema.update(undefined, { steps: 1, samples: 8, seconds: 0.25 });
      }
      ema.store(); // a backup, saved as collected.<key>
      const state = ema.stateDict();
      const name = `ema-${dtype}`;
      files[`${name}.safetensors`] = Buffer.from(ema.serialize());
      const expected = {
        file: `${name}.safetensors`,
        dtype,
        decay: state.decay,
        numUpdates: state.numUpdates,
        names: state.names,
        keys: ['fc.weight#0', 'fc.bias', 'conv.kernel', 'fc.weight#3', '4'],
        shapes: params.map((p) => (ArrayBuffer.isView(p) ? [p.length] : p.shape ?? [p.value.length])),
        shadows: state.shadowParams.map((a) => Array.from(a)),
        // BYTES_PER_ELEMENT, not instanceof: under jest the arrays come from another realm.
        collectedDtype: state.collectedParams[0].BYTES_PER_ELEMENT === 8 ? 'float64' : 'float32',
        collected: state.collectedParams.map((a) => Array.from(a)),
      };
      files[`${name}.json`] = `${JSON.stringify(expected, null, 1)}\n`;
    } finally {
      ema.dispose();
    }
  }
  return files;
}

module.exports = { buildFixtures, FIXTURE_DIR };

if (require.main === module) {
  // eslint-disable-next-line global-require
  const lib = require(path.join(__dirname, '..', '..'));
  fs.mkdirSync(FIXTURE_DIR, { recursive: true });
  const files = buildFixtures(lib);
  for (const [file, contents] of Object.entries(files)) fs.writeFileSync(path.join(FIXTURE_DIR, file), contents);
  console.log(`wrote ${Object.keys(files).length} files to ${path.relative(process.cwd(), FIXTURE_DIR)}`);
}
