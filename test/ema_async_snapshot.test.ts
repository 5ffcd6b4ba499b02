// updateAsync()'s snapshots (src/async_inputs.ts, native/addon/snapshot_copy.cc): a call that runs at
// once is copied by the addon (thread pool, streaming stores), a queued call at its call into
// SharedArrayBuffer-backed arrays kept from one queued call to the next and read in place. Either
// way the result must be the bits update() gives for the values the parameters had at the call,
// whatever the caller writes afterwards, for awkward sizes, unaligned arrays and mixed float64.
import * as tf from '@tensorflow/tfjs';
import { ExponentialMovingAverage } from '../src';
import { binding } from '../src/native';
import { quietBackend } from './tfjs_helpers';
import { expectUpdateClose, fillRandom, sameBytes, unaligned } from './reference';

const options = { decay: 0.875, useNumUpdates: false };

// Awkward sizes, arrays that start off 16-byte boundaries (the streaming copy's head), a float64
// parameter (the snapshot is then float64), and one large enough for several pool pieces.
function parameters(seed: number): (Float32Array | Float64Array)[] {
  const arrays: (Float32Array | Float64Array)[] = [0, 1, 7, 4097, 100_003].map((n, i) => fillRandom(unaligned(Float32Array, n, i % 3), seed + i));
  arrays.push(fillRandom(new Float64Array(65), seed + 9));
  arrays.push(...Array.from({ length: 12 }, (_, i) => fillRandom(new Float32Array(3), seed + 10 + i)));
  return arrays;
}

function expectSameShadows(a: ExponentialMovingAverage, b: ExponentialMovingAverage, context: string): void {
  const [x, y] = [a.stateDict().shadowParams, b.stateDict().shadowParams];
  x.forEach((s, i) => {
    if (!sameBytes(s, y[i])) throw new Error(`${context}: shadow ${i} differs`);
  });
}

test('a call that runs at once uses the values at its call, whatever is written after it returns', async () => {
  for (const dtype of ['float32', 'float64'] as const) {
    const params = parameters(1);
    const [ema, sync] = [new ExponentialMovingAverage(params, { ...options, dtype }), new ExponentialMovingAverage(params, { ...options, dtype })];
    for (let k = 0; k < 3; k++) {
      params.forEach((p, i) => p.set(fillRandom(new Float64Array(p.length), 50 * k + i)));
      const before = ema.stateDict().shadowParams;
      const pending = ema.updateAsync(params);
      sync.update(params);
      const values = params.map((p) => Float64Array.from(p));
      params.forEach((p) => p.fill(1e30)); // the next optimizer step, before the update is done
      await pending;
      expectSameShadows(ema, sync, `${dtype}, round ${k}`);
      ema.stateDict().shadowParams.forEach((s, i) => expectUpdateClose(s, before[i], values[i], options.decay, dtype, 1, `${dtype}, round ${k}, tensor ${i}`));
    }
  }
});

test('queued calls each use the values at their own call; the kept snapshot arrays are never reused early', async () => {
  const params = parameters(2);
  const [ema, sync] = [new ExponentialMovingAverage(params, options), new ExponentialMovingAverage(params, options)];
  for (let batch = 0; batch < 3; batch++) {
    const pending: Promise<void>[] = [];
    for (let k = 0; k < 4; k++) {
      params.forEach((p, i) => p.set(fillRandom(new Float64Array(p.length), 1000 * batch + 100 * k + i)));
      pending.push(ema.updateAsync(params, { steps: k + 1 })); // all but the first are queued
      sync.update(params, { steps: k + 1 });
    }
    params.forEach((p) => p.fill(-7));
    await Promise.all(pending);
    expectSameShadows(ema, sync, `batch ${batch}`);
    expect(ema.step).toBe(sync.step);
  }
});

test('a queued call that fails leaves the state as it was, and the next queued calls still work', async () => {
  const params = parameters(3);
  const [ema, sync] = [new ExponentialMovingAverage(params, options), new ExponentialMovingAverage(params, options)];
  const first = ema.updateAsync(params);
  const refused = ema.updateAsync(params.slice(1)).catch((e: Error) => e);
  const second = ema.updateAsync(params);
  sync.update(params);
  sync.update(params);
  await first;
  expect(await refused).toBeInstanceOf(RangeError);
  await second;
  expectSameShadows(ema, sync, 'after the refusal');
});

test('the addon snapshot of an unaligned float32 array into a float64 snapshot converts exactly', async () => {
  const arena = new binding.ShadowArena('float64', [5000, 9]);
  const sync = new binding.ShadowArena('float64', [5000, 9]);
  try {
    const params = [fillRandom(unaligned(Float32Array, 5000, 1), 4), fillRandom(new Float64Array(9), 5)];
    const pending = arena.updateAsync(params, { decay: 0.5 });
    sync.update(params, { decay: 0.5 });
    params[0].fill(3);
    await pending;
    for (const t of [0, 1]) expect(sameBytes(arena.read(t), sync.read(t))).toBe(true);
  } finally {
    arena.dispose();
    sync.dispose();
  }
});

describe('tfjs variables', () => {
  beforeAll(() => quietBackend());

  test('queued and immediate calls over variables use the values at each call, as update() does', async () => {
    const variables = [7, 4097, 1].map((n, i) => tf.variable(tf.tensor1d(fillRandom(new Float32Array(n), 20 + i))));
    const ema = new ExponentialMovingAverage(variables, options);
    const sync = new ExponentialMovingAverage(variables, options);
    for (let batch = 0; batch < 2; batch++) {
      const pending: Promise<void>[] = [];
      for (let k = 0; k < 3; k++) {
        variables.forEach((v, i) => v.assign(tf.tensor1d(fillRandom(new Float32Array(v.size), 300 * batch + 10 * k + i))));
        pending.push(ema.updateAsync());
        sync.update();
      }
      await Promise.all(pending);
      expectSameShadows(ema, sync, `batch ${batch}`);
    }
    for (const v of variables) v.dispose();
  });
});
