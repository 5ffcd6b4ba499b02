// A misspelt option is an error naming it (and the option it is near), never silently ignored; the
// EMA it was meant for is not built, and to() changes nothing.
import { ExponentialMovingAverage } from '../src';
import { expectError } from './helpers/state';

const params = () => [new Float32Array([1, 2, 3])];

test.each([
  [{ decay: 0.9, dtyp: 'float16' }, /Unknown option 'dtyp' in options \(did you mean 'dtype'\?\); the options are decay, useNumUpdates, schedule, dtype, device/],
  [{ decay: 0.9, usenumupdates: false }, /Unknown option 'usenumupdates' .*did you mean 'useNumUpdates'/],
  [{ decay: 0.9, Decay: 0.5 }, /Unknown option 'Decay' .*did you mean 'decay'/],
  [{ decay: 0.9, warmup: true }, /Unknown option 'warmup' in options; the options are/],
])('the constructor refuses %j', (options, message) => {
  expectError(() => new ExponentialMovingAverage(params(), options as never), { name: 'TypeError', message: [message] });
});

test('to() refuses a misspelt option and keeps the dtype it had', () => {
  const ema = new ExponentialMovingAverage(params(), { decay: 0.9 });
  expectError(() => ema.to({ dtyep: 'float64' } as never), { name: 'TypeError', message: [/Unknown option 'dtyep' .*did you mean 'dtype'/] });
  expect(ema.dtype).toBe('float32');
  ema.dispose();
});

test('every documented option is still accepted', () => {
  const ema = new ExponentialMovingAverage(params(), { decay: 0.9, useNumUpdates: false, schedule: 'constant', dtype: 'float64', device: 'cpu' });
  expect(ema.to({ dtype: 'float32', device: 'cpu' }).dtype).toBe('float32');
  ema.dispose();
});

test('update() and updateAsync() refuse a misspelt progress key and change nothing', async () => {
  const ema = new ExponentialMovingAverage(params(), { decay: 0.9 });
  expectError(() => ema.update(undefined, { step: 2 } as never), { name: 'TypeError', message: [/Unknown option 'step' in update\(\) progress \(did you mean 'steps'\?\)/] });
  await expect(ema.updateAsync(undefined, { sample: 32 } as never)).rejects.toThrow(/Unknown option 'sample' in updateAsync\(\) progress \(did you mean 'samples'\?\)/);
  expect(() => ema.update(undefined, { snapshot: false } as never)).toThrow(/Unknown option 'snapshot' in update\(\) progress/);
  await expect(ema.updateAsync(undefined, { snapshot: 'no' } as never)).rejects.toThrow(/boolean for updateAsync\(\) progress.snapshot/);
  expect(ema.numUpdates).toBe(0);
  expect(ema.step).toBe(0);
  await ema.updateAsync(undefined, { steps: 1, snapshot: true } as never);
  expect(ema.step).toBe(1);
  ema.dispose();
});

test('createEmaCallback() refuses a misspelt option (updateEvery as update_every, say)', () => {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const tf = require('@tensorflow/tfjs') as typeof import('@tensorflow/tfjs');
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { createEmaCallback } = require('../src/tfjs') as typeof import('../src/tfjs');
  const ema = new ExponentialMovingAverage(params(), { decay: 0.9 });
  expectError(() => createEmaCallback(ema, { tf, update_every: 4 } as never), { name: 'TypeError', message: [/Unknown option 'update_every' in options/] });
  expectError(() => createEmaCallback(ema, { tf, validationfreq: 2 } as never), { name: 'TypeError', message: [/did you mean 'validationFreq'/] });
  expect(createEmaCallback(ema, { tf, updateEvery: 2, startStep: 1, validationFreq: 1, validationBatches: 1, validationBatchSize: 8 })).toBeDefined();
  ema.dispose();
});
