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
