// Every input of a call is fixed when it is called (issue 12, item 8): a queued updateAsync() uses
// the decay that was set when it was called, not the one set while it waited in the queue.
import { ExponentialMovingAverage } from '../src';
import { random, updateStep } from './reference';

const next = random(7);
const PARAM = new Float64Array(17).map(() => 100 + next() * 10);
const START = new Float64Array(17).map(() => next());

function run(decays: number[], asyncMode: boolean, change: number): Promise<Float64Array> | Float64Array {
  const param = PARAM.slice();
  const start = START.slice();
  const ema = new ExponentialMovingAverage([start], { decay: decays[0], useNumUpdates: false, dtype: 'float64' });
  if (!asyncMode) {
    for (const d of decays) {
      ema.decay = d;
      ema.update([param]);
    }
    return ema.stateDict().shadowParams[0] as Float64Array;
  }
  const calls: Promise<void>[] = [];
  for (const d of decays) {
    ema.decay = d;
    calls.push(ema.updateAsync([param]));
  }
  ema.decay = change; // set while the calls above wait in the queue: must not reach them
  return Promise.all(calls).then(() => ema.stateDict().shadowParams[0] as Float64Array);
}

test('queued updateAsync() calls use the decay of when they were called, as update() does', async () => {
  const decays = [0.5, 0.25, 0.9, 0.75];
  const sync = run(decays, false, 0) as Float64Array;
  const queued = await run(decays, true, 0.01);
  expect(Array.from(queued)).toEqual(Array.from(sync));
  // and both follow the formula, step by step, in float64
  const expected = START.slice();
  for (const d of decays) expected.forEach((s, i) => (expected[i] = updateStep(s, PARAM[i], d, 'float64')));
  expect(Array.from(sync)).toEqual(Array.from(expected));
});

test('a queued updateAsync() uses the parameters as they were when it was called', async () => {
  const param = new Float32Array([10, 20, 30]);
  const ema = new ExponentialMovingAverage([new Float32Array(3)], { decay: 0.5, useNumUpdates: false });
  const first = ema.updateAsync([param]); // runs at once: native snapshot
  const second = ema.updateAsync([param]); // queued behind the first: copied now
  param.set([1000, 2000, 3000]); // the next optimizer step, before either has settled
  await Promise.all([first, second]);
  // s = 0 -> 0.5 * p -> 0.75 * p, with p the values at both calls
  expect(Array.from(ema.stateDict().shadowParams[0])).toEqual([7.5, 15, 22.5]);
  ema.dispose();
});

test('a queued updateAsync() with bad parameters rejects at once and leaves the queue working', async () => {
  const ema = new ExponentialMovingAverage([new Float32Array(3)], { decay: 0.5, useNumUpdates: false });
  const first = ema.updateAsync([new Float32Array([2, 2, 2])]);
  await expect(ema.updateAsync([new Float32Array(4)])).rejects.toThrow(/4/);
  await first;
  await ema.updateAsync([new Float32Array([2, 2, 2])]);
  expect(Array.from(ema.stateDict().shadowParams[0])).toEqual([1.5, 1.5, 1.5]);
  ema.dispose();
});
