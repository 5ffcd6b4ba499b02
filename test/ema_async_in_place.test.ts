// updateAsync(parameters, { snapshot: false }) (SPEC "Decay schedules and training progress"): typed
// arrays over SharedArrayBuffers are read in place on the worker thread (no copy); an ordinary
// ArrayBuffer could be transferred or resized while the worker reads it, so such an array is refused,
// by the facade and again by the addon; tfjs variables are copied when read and need no snapshot.
import { spawnSync } from 'node:child_process';
import * as tf from '@tensorflow/tfjs';
import { ExponentialMovingAverage } from '../src';
import { binding } from '../src/native';
import { fillRandom, sameBytes } from './reference';

function shared(n: number, seed: number): Float32Array {
  const array = new Float32Array(new SharedArrayBuffer(n * 4));
  array.set(fillRandom(new Float32Array(n), seed));
  return array;
}

const SIZES = [0, 1, 7, 4097, 33];

test('in place over SharedArrayBuffers gives the bits update() gives, for every schedule input and guard', async () => {
  for (const options of [{ decay: 0.999 }, { decay: 0.9, nonFinite: 'skip-element' as const }, { decay: 0.99, dtype: 'bfloat16' as const, rounding: 'stochastic' as const }]) {
    const params = SIZES.map((n, i) => shared(n, i));
    const [inPlace, sync] = [new ExponentialMovingAverage(params, options), new ExponentialMovingAverage(params.map((p) => p.slice()), options)];
    for (let k = 0; k < 4; k++) {
      params.forEach((p, i) => p.set(fillRandom(new Float32Array(p.length), 100 * k + i)));
      params[3][k] = k === 2 ? NaN : params[3][k];
      await inPlace.updateAsync(params, { snapshot: false, steps: 2 });
      sync.update(params.map((p) => p.slice()), { steps: 2 });
    }
    inPlace.stateDict().shadowParams.forEach((s, i) => expect(sameBytes(s, sync.stateDict().shadowParams[i])).toBe(true));
    expect([inPlace.step, inPlace.nonFiniteStats]).toEqual([sync.step, sync.nonFiniteStats]);
  }
});

test('a typed array over an ordinary ArrayBuffer is refused with snapshot: false, naming it; nothing changes', async () => {
  const params = [shared(7, 1), new Float32Array(3)];
  const ema = new ExponentialMovingAverage([params[0], { name: 'bias', value: params[1] }], { decay: 0.5 });
  const before = ema.stateDict();
  const error = await ema.updateAsync(undefined, { snapshot: false }).catch((e: Error & { code?: string }) => e);
  expect(error).toBeInstanceOf(Error);
  expect((error as Error).message).toMatch(/snapshot: false.*SharedArrayBuffer.*parameters\[1\] \('bias'\) is a Float32Array over an ArrayBuffer/);
  expect((error as { code?: string }).code).toBe('ERR_MODEL_EMA_INVALID_ARGUMENT');
  expect([ema.step, ema.numUpdates, ema.busy]).toEqual([before.step, before.numUpdates, false]);
  // The same call with the snapshot (the default) works.
  await ema.updateAsync(undefined, { snapshot: true });
  expect(ema.numUpdates).toBe(1);
});

test('the addon checks again: inPlace refuses an ArrayBuffer-backed array and a non-boolean flag', () => {
  const arena = new binding.ShadowArena('float32', [3, 2]);
  try {
    expect(() => arena.updateAsync([new Float32Array(new SharedArrayBuffer(12)), new Float32Array(2)], { decay: 0.5 }, true)).toThrow(
      /over a SharedArrayBuffer.*for params\[1\] but received Float32Array\(2\)/,
    );
    expect(() => arena.updateAsync([new Float32Array(3), new Float32Array(2)], { decay: 0.5 }, 'yes' as unknown as boolean)).toThrow(
      /Expected a boolean for inPlace but received 'yes'/,
    );
    expect(arena.busy).toBe(false);
  } finally {
    arena.dispose();
  }
});

test('tfjs variables need no snapshot: with snapshot false they are read (copied) and averaged', async () => {
  const variable = tf.variable(tf.tensor1d([1, 2, 3]));
  const ema = new ExponentialMovingAverage([variable, shared(5, 3)], { decay: 0.5, useNumUpdates: false });
  variable.assign(tf.tensor1d([3, 4, 5]));
  await ema.updateAsync(undefined, { snapshot: false });
  expect(Array.from(ema.stateDict().shadowParams[0])).toEqual([2, 3, 4]);
  variable.dispose();
});

test('queued in-place calls run in order, each reading the arrays when it runs', async () => {
  const p = shared(4097, 9);
  const ema = new ExponentialMovingAverage([p], { decay: 0.5, useNumUpdates: false });
  const reference = new ExponentialMovingAverage([p.slice()], { decay: 0.5, useNumUpdates: false });
  const calls = [ema.updateAsync(undefined, { snapshot: false }), ema.updateAsync(undefined, { snapshot: false })];
  reference.update([p.slice()]);
  reference.update([p.slice()]);
  await Promise.all(calls);
  expect(sameBytes(ema.stateDict().shadowParams[0], reference.stateDict().shadowParams[0])).toBe(true);
});

// The addon keeps the arrays alive while the worker reads them: dropping every reference and
// collecting garbage mid-update must neither crash nor change the result.
test('the arrays read in place stay alive while the worker reads them, even when the caller drops them', () => {
  const script = `
    const { ExponentialMovingAverage } = require(${JSON.stringify(require.resolve('../dist'))});
    (async () => {
      const n = 1 << 22;
      const make = () => { const a = new Float32Array(new SharedArrayBuffer(n * 4)); a.fill(3); return a; };
      const ema = new ExponentialMovingAverage([new Float32Array(n).fill(1)], { decay: 0.5, useNumUpdates: false });
      for (let k = 0; k < 20; k++) {
        const pending = ema.updateAsync([make()], { snapshot: false });
        global.gc();
        await pending;
      }
      const s = ema.stateDict().shadowParams[0];
      process.stdout.write(String(s[0] === s[n - 1] && Math.abs(s[0] - 3) < 1e-5));
    })();`;
  const child = spawnSync(process.execPath, ['--expose-gc', '-e', script], { encoding: 'utf8', timeout: 60_000 });
  expect(child.stderr).toBe('');
  expect(child.stdout).toBe('true');
});
