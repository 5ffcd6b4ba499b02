// Decay schedules and training progress: every invalid option and progress is refused with an error
// naming the option and value, and the schedule and counters round-trip through stateDict() and
// checkpoints (a state or file from before schedules still loads, as 'torch_ema' or 'constant').
import { createHash } from 'node:crypto';
import { ExponentialMovingAverage, type EmaOptions } from '../src';
import { parseSafetensors, serializeSafetensors } from '../src/checkpoint/safetensors';

const make = (options: Partial<EmaOptions> & Record<string, unknown>) => () =>
  new ExponentialMovingAverage([new Float32Array(2)], { decay: 0.99, ...options } as EmaOptions);

describe('invalid schedules', () => {
  test.each<[string, unknown, RegExp, ErrorConstructor]>([
    ['unknown string', 'linear', /schedule/, TypeError],
    ['number', 3, /schedule/, TypeError],
    ['unknown kind', { kind: 'cosine' }, /schedule\.kind.*"cosine"/, TypeError],
    ['unknown key', { kind: 'inverse-gamma', gama: 1 }, /schedule\.gama/, TypeError],
    ['inverse-gamma gamma 0', { kind: 'inverse-gamma', gamma: 0 }, /schedule\.gamma.*0/, RangeError],
    ['inverse-gamma gamma string', { kind: 'inverse-gamma', gamma: '1' }, /schedule\.gamma.*"1"/, TypeError],
    ['inverse-gamma power negative', { kind: 'inverse-gamma', power: -1 }, /schedule\.power.*-1/, RangeError],
    ['inverse-gamma power Infinity', { kind: 'inverse-gamma', power: Infinity }, /schedule\.power.*Infinity/, RangeError],
    ['inverse-gamma minDecay 1.5', { kind: 'inverse-gamma', minDecay: 1.5 }, /schedule\.minDecay.*1\.5/, RangeError],
    ['inverse-gamma minDecay NaN', { kind: 'inverse-gamma', minDecay: NaN }, /schedule\.minDecay.*NaN/, RangeError],
    ['inverse-gamma startStep 1.5', { kind: 'inverse-gamma', startStep: 1.5 }, /schedule\.startStep.*1\.5/, TypeError],
    ['inverse-gamma startStep -1', { kind: 'inverse-gamma', startStep: -1 }, /schedule\.startStep.*-1/, TypeError],
    ['power-function neither', { kind: 'power-function' }, /schedule\.gamma and schedule\.sigmaRel.*neither/, TypeError],
    ['power-function both', { kind: 'power-function', gamma: 1, sigmaRel: 0.1 }, /both/, TypeError],
    ['power-function gamma -1', { kind: 'power-function', gamma: -1 }, /schedule\.gamma.*-1/, RangeError],
    ['power-function sigmaRel 0.3', { kind: 'power-function', sigmaRel: 0.3 }, /schedule\.sigmaRel.*0\.3/, RangeError],
    ['power-function sigmaRel string', { kind: 'power-function', sigmaRel: '0.1' }, /schedule\.sigmaRel/, TypeError],
    ['half-life no halfLife', { kind: 'half-life', unit: 'steps' }, /schedule\.halfLife.*undefined/, TypeError],
    ['half-life halfLife 0', { kind: 'half-life', halfLife: 0, unit: 'steps' }, /schedule\.halfLife.*0/, RangeError],
    ['half-life no unit', { kind: 'half-life', halfLife: 10 }, /schedule\.unit.*undefined/, TypeError],
    ['half-life unit images', { kind: 'half-life', halfLife: 10, unit: 'images' }, /schedule\.unit.*"images"/, TypeError],
    ['half-life rampUp 0', { kind: 'half-life', halfLife: 10, unit: 'steps', rampUp: 0 }, /schedule\.rampUp.*0/, RangeError],
  ])('%s', (_, schedule, message, type) => {
    expect(make({ schedule: schedule as EmaOptions['schedule'] })).toThrow(type);
    expect(make({ schedule: schedule as EmaOptions['schedule'] })).toThrow(message);
  });

  test.each<[unknown, unknown]>([
    [true, 'constant'],
    [true, { kind: 'inverse-gamma' }],
    [false, 'torch_ema'],
  ])('useNumUpdates %p with schedule %p: an error naming both', (useNumUpdates, schedule) => {
    expect(make({ useNumUpdates: useNumUpdates as boolean, schedule: schedule as EmaOptions['schedule'] })).toThrow(/useNumUpdates: (true|false) disagrees with schedule/);
  });

  test('useNumUpdates not a boolean', () => {
    expect(make({ useNumUpdates: 1 as unknown as boolean })).toThrow(/useNumUpdates/);
  });
});

describe('invalid progress', () => {
  const ema = new ExponentialMovingAverage([new Float32Array(2)], { decay: 0.99 });
  test.each<[string, unknown, RegExp]>([
    ['not an object', 5, /update\(\) progress/],
    ['steps -1', { steps: -1 }, /progress\.steps.*-1/],
    ['steps 1.5', { steps: 1.5 }, /progress\.steps.*1\.5/],
    ['steps string', { steps: '2' }, /progress\.steps.*"2"/],
    ['samples -3', { samples: -3 }, /progress\.samples.*-3/],
    ['samples NaN', { samples: NaN }, /progress\.samples.*NaN/],
    ['seconds Infinity', { seconds: Infinity }, /progress\.seconds.*Infinity/],
  ])('%s is refused and changes nothing', async (_, progress, message) => {
    const before = ema.stateDict();
    expect(() => ema.update(undefined, progress as never)).toThrow(message);
    await expect(ema.updateAsync(undefined, progress as never)).rejects.toThrow(new RegExp(message.source.replace('update\\(\\)', 'updateAsync\\(\\)')));
    expect(ema.stateDict()).toEqual(before);
  });

  test("unit 'samples' requires samples on every update", async () => {
    const e = new ExponentialMovingAverage([new Float32Array(2)], { decay: 0.99, schedule: { kind: 'half-life', halfLife: 10, unit: 'samples' } });
    expect(() => e.update()).toThrow(/progress\.samples is required.*'samples'/);
    await expect(e.updateAsync(undefined, { steps: 2 })).rejects.toThrow(/progress\.samples is required/);
    e.update(undefined, { samples: 32 });
    expect(e.samples).toBe(32);
  });
});

describe('state round trips', () => {
  const schedules = [
    'constant',
    'torch_ema',
    { kind: 'inverse-gamma', gamma: 2, power: 0.75, minDecay: 0.1, startStep: 3 },
    { kind: 'power-function', sigmaRel: 0.05 },
    { kind: 'half-life', halfLife: 1000, unit: 'samples', rampUp: 0.05 },
  ] as const;

  function trained(schedule: (typeof schedules)[number]): ExponentialMovingAverage {
    const p = new Float32Array([1, 2, 3]);
    const ema = new ExponentialMovingAverage([p], { decay: 0.999, schedule: schedule as EmaOptions['schedule'] });
    for (let i = 0; i < 5; i++) {
      p[0] += 1;
      ema.update(undefined, { steps: 3, samples: 96, seconds: 1.5 });
    }
    return ema;
  }
  const fresh = () => new ExponentialMovingAverage([new Float32Array(3)], { decay: 0.5 });

  test.each(schedules)('%p through stateDict, serialize and save/load', async (schedule) => {
    const ema = trained(schedule);
    const state = ema.stateDict();
    expect([state.step, state.samples, state.seconds]).toEqual([15, 480, 7.5]);
    expect(state.schedule).toEqual(ema.schedule);
    for (const load of [
      (e: ExponentialMovingAverage) => e.loadStateDict(state),
      (e: ExponentialMovingAverage) => e.deserialize(ema.serialize()),
    ]) {
      const other = fresh();
      load(other);
      expect(other.schedule).toEqual(ema.schedule);
      expect([other.step, other.samples, other.seconds, other.numUpdates]).toEqual([15, 480, 7.5, ema.numUpdates]);
      expect(other.currentDecay).toBe(ema.currentDecay);
      // the next updates agree
      const p = new Float32Array([7, 8, 9]);
      other.update([p], { steps: 2, samples: 64, seconds: 1 });
      const again = trained(schedule);
      again.update([p], { steps: 2, samples: 64, seconds: 1 });
      expect(other.stateDict().shadowParams).toEqual(again.stateDict().shadowParams);
    }
  });

  test('a state dict from before schedules loads as torch_ema or constant by numUpdates, step = numUpdates', () => {
    const state = trained('torch_ema').stateDict();
    const { schedule: _s, step: _t, samples: _n, seconds: _c, ...old } = state;
    const a = fresh();
    a.loadStateDict(old);
    expect(a.schedule).toEqual({ kind: 'torch_ema' });
    expect([a.step, a.samples, a.seconds, a.numUpdates]).toEqual([15, 0, 0, 15]);
    const b = fresh();
    b.loadStateDict({ ...old, numUpdates: null });
    expect(b.schedule).toEqual({ kind: 'constant' });
    expect([b.step, b.numUpdates]).toEqual([0, null]);
  });

  test.each<[string, Record<string, unknown>, RegExp]>([
    ['torch_ema with numUpdates null', { schedule: 'torch_ema', numUpdates: null }, /state\.numUpdates null disagrees with state\.schedule 'torch_ema'/],
    ['constant with a numUpdates', { schedule: { kind: 'constant' }, numUpdates: 3 }, /state\.numUpdates 3 disagrees/],
    ['bad schedule', { schedule: { kind: 'half-life' } }, /state\.schedule\.halfLife/],
    ['step -1', { step: -1 }, /state\.step.*-1/],
    ['samples NaN', { samples: NaN }, /state\.samples.*NaN/],
    ['seconds string', { seconds: '1' }, /state\.seconds.*"1"/],
  ])('loadStateDict refuses %s and changes nothing', (_, edit, message) => {
    const ema = trained('torch_ema');
    const before = ema.stateDict();
    expect(() => ema.loadStateDict({ ...before, ...edit } as never)).toThrow(message);
    expect(ema.stateDict()).toEqual(before);
  });

  test('a checkpoint from before schedules (format version 1) loads as torch_ema or constant by its num_updates', () => {
    for (const schedule of ['torch_ema', 'constant'] as const) {
      const parsed = parseSafetensors(trained(schedule).serialize());
      const m: Record<string, string> = { ...parsed.metadata };
      for (const key of ['schedule', 'step', 'samples', 'seconds']) delete m[key];
      m.format_version = '1';
      const fields = [m.format, m.format_version, m.decay, m.num_updates, m.dtype, m.collected_dtype, m.names];
      m.metadata_sha256 = createHash('sha256').update(JSON.stringify(fields)).digest('hex');
      const tensors = parsed.tensors.map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape, bytes: () => t.bytes }));
      const other = fresh();
      other.deserialize(serializeSafetensors(tensors, m));
      expect(other.schedule).toEqual({ kind: schedule });
      expect([other.step, other.samples, other.seconds, other.numUpdates]).toEqual(schedule === 'torch_ema' ? [15, 0, 0, 15] : [0, 0, 0, null]);
    }
  });
});
