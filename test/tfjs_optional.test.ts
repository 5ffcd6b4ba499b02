// TensorFlow.js is an optional peer: without it the package loads and works, and model-ema/tfjs says
// what to install; a tfjs-node that is installed but broken is reported, not silently replaced.
// Each case runs in a child process (sources transpiled by test/helpers/register_ts.js) in which
// @tensorflow/* cannot be resolved, or resolves to a package that fails to load.
import { spawnSync } from 'node:child_process';
import path from 'node:path';

const root = path.join(__dirname, '..');

function runWithout(mode: 'none' | 'broken-node'): Record<string, unknown> {
  const script = `
    const Module = require('node:module');
    const resolve = Module._resolveFilename;
    Module._resolveFilename = function (request, ...rest) {
      if (request.startsWith('@tensorflow/')) {
        if (${JSON.stringify(mode)} === 'broken-node' && request === '@tensorflow/tfjs-node') {
          throw new Error('libtensorflow.so.2: cannot open shared object file');
        }
        const error = new Error("Cannot find module '" + request + "'");
        error.code = 'MODULE_NOT_FOUND';
        throw error;
      }
      return resolve.call(this, request, ...rest);
    };
    require('./test/helpers/register_ts.js');
    const { ExponentialMovingAverage } = require('./src/index.ts');
    const tfjs = require('./src/tfjs/index.ts');
    const ema = new ExponentialMovingAverage([new Float32Array(4)], { decay: 0.5, useNumUpdates: false });
    ema.update([new Float32Array(4).fill(1)]);
    let callbackError = '';
    try { tfjs.createEmaCallback(ema); } catch (error) { callbackError = error.message; }
    // saveAveragedModel needs only the model's save(): a stand-in model sees the averaged values.
    const weights = new Float32Array(4).fill(3);
    const ema2 = new ExponentialMovingAverage([weights], { decay: 0, useNumUpdates: false });
    ema2.update([new Float32Array(4).fill(7)]);
    tfjs.saveAveragedModel({ save: async () => Array.from(weights) }, ema2, 'memory://').then((saved) => {
      console.log(JSON.stringify({
        shadow: Array.from(ema.stateDict().shadowParams[0]),
        callbackError,
        saved,
        after: Array.from(weights),
        tfjsLoaded: Object.keys(require.cache).filter((file) => file.includes('@tensorflow')).length,
      }));
    });
  `;
  const run = spawnSync(process.execPath, ['-e', script], { cwd: root, encoding: 'utf8' });
  if (run.status !== 0) throw new Error(`child failed (${run.status}): ${run.stderr}`);
  return JSON.parse(run.stdout.trim().split('\n').pop()!);
}

test('without TensorFlow.js installed, the core works and model-ema/tfjs loads, saying what to install when it needs tfjs', () => {
  const result = runWithout('none');
  expect(result.shadow).toEqual([0.5, 0.5, 0.5, 0.5]);
  expect(result.tfjsLoaded).toBe(0);
  expect(result.callbackError).toContain('needs TensorFlow.js');
  expect(result.callbackError).toContain('@tensorflow/tfjs-node');
  expect(result.callbackError).toContain('`tf` option');
  expect(result.saved).toEqual([7, 7, 7, 7]);
  expect(result.after).toEqual([3, 3, 3, 3]);
});

test('a tfjs-node that is installed but fails to load is reported, not quietly replaced by @tensorflow/tfjs', () => {
  const result = runWithout('broken-node');
  expect(result.callbackError).toContain('@tensorflow/tfjs-node is installed but failed to load');
  expect(result.callbackError).toContain('libtensorflow.so.2');
});
