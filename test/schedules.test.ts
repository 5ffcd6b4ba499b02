// Decay schedules and training progress (SPEC "Decay schedules and training progress"): every schedule
// against an independent float64 implementation written from the SPEC's formulas, exact compensation
// for updates covering k steps, sigmaRel -> gamma, and the counters.
import { ExponentialMovingAverage, sigmaRelToGamma, type Schedule } from '../src';

// ---- The SPEC's formulas, one step at a time (t: progress after the step). ----
type RefSchedule = (decay: number, t: number, dt: number) => number;
const ref = {
  constant: (): RefSchedule => (decay) => decay,
  torchEma: (): RefSchedule => (decay, n) => Math.min(decay, (1 + n) / (10 + n)),
  inverseGamma:
    (gamma = 1, power = 2 / 3, minDecay = 0, startStep = 0): RefSchedule =>
    (decay, step) => {
      const k = Math.max(0, step - startStep - 1);
      if (k === 0) return 0;
      return Math.min(decay, Math.max(minDecay, 1 - Math.pow(1 + k / gamma, -power)));
    },
  powerFunction: (gamma: number): RefSchedule => (decay, t, dt) => Math.min(decay, Math.pow(1 - dt / t, gamma + 1)),
  halfLife:
    (halfLife: number, rampUp?: number): RefSchedule =>
    (decay, t, dt) => {
      const h = rampUp === undefined ? halfLife : Math.min(halfLife, rampUp * t);
      return Math.min(decay, Math.pow(0.5, dt / h));
    },
};

const relClose = (actual: number, expected: number, tol: number): void => {
  if (Math.abs(actual - expected) > tol * Math.max(1, Math.abs(expected))) {
    throw new Error(`expected ${expected} but received ${actual} (tolerance ${tol})`);
  }
};

const paramAt = (i: number): number => Math.sin(i * 0.37) * 3 + 1;

/** Runs `steps` one-step updates in float64 storage, checking currentDecay and the shadow each time. */
function runOneStep(schedule: Schedule, decay: number, formula: RefSchedule, steps: number): void {
  const p = new Float64Array([paramAt(0), -2]);
  const ema = new ExponentialMovingAverage([p], { decay, schedule, dtype: 'float64' });
  let s = [p[0], p[1]];
  for (let t = 1; t <= steps; t++) {
    const d = formula(decay, t, 1);
    relClose(ema.currentDecay, d, 1e-14);
    p[0] = paramAt(t);
    ema.update();
    s = s.map((v, j) => v - (1 - d) * (v - p[j]));
  }
  const shadow = ema.stateDict().shadowParams[0];
  relClose(shadow[0], s[0], 1e-10);
  relClose(shadow[1], s[1], 1e-10);
  expect(ema.step).toBe(steps);
}

describe('each schedule against the SPEC formula, one step per update, thousands of steps', () => {
  test.each<[string, Schedule, number, RefSchedule]>([
    ['constant', 'constant', 0.99, ref.constant()],
    ['torch_ema', 'torch_ema', 0.999, ref.torchEma()],
    ['inverse-gamma defaults', { kind: 'inverse-gamma' }, 0.9999, ref.inverseGamma()],
    ['inverse-gamma, decay clamp reached', { kind: 'inverse-gamma', gamma: 1, power: 3 / 4 }, 0.99, ref.inverseGamma(1, 3 / 4)],
    ['inverse-gamma, minDecay and startStep', { kind: 'inverse-gamma', gamma: 2, power: 0.5, minDecay: 0.5, startStep: 100 }, 0.999, ref.inverseGamma(2, 0.5, 0.5, 100)],
    ['power-function gamma 6.94', { kind: 'power-function', gamma: 6.94 }, 1, ref.powerFunction(6.94)],
    ['power-function bounded by decay', { kind: 'power-function', gamma: 16.97 }, 0.995, ref.powerFunction(16.97)],
    ['half-life in steps', { kind: 'half-life', halfLife: 300, unit: 'steps' }, 1, ref.halfLife(300)],
    ['half-life in steps with rampUp', { kind: 'half-life', halfLife: 300, unit: 'steps', rampUp: 0.05 }, 0.999, ref.halfLife(300, 0.05)],
  ])('%s', (_, schedule, decay, formula) => runOneStep(schedule, decay, formula, 3000));

  test('the first inverse-gamma steps (k = 0 up to startStep + 1) apply decay 0: the shadow becomes the parameter', () => {
    const p = new Float32Array([5]);
    const ema = new ExponentialMovingAverage([p], { decay: 0.999, schedule: { kind: 'inverse-gamma', startStep: 3 } });
    for (let i = 1; i <= 4; i++) {
      expect(ema.currentDecay).toBe(0);
      p[0] = i;
      ema.update();
      expect(ema.stateDict().shadowParams[0][0]).toBe(i);
    }
    expect(ema.currentDecay).toBeGreaterThan(0);
  });

  test('half-life in samples and in given seconds, with varying amounts per update', () => {
    for (const unit of ['samples', 'seconds'] as const) {
      const decay = 0.9995;
      const formula = ref.halfLife(500, 0.1);
      const p = new Float64Array([1]);
      const ema = new ExponentialMovingAverage([p], { decay, schedule: { kind: 'half-life', halfLife: 500, unit, rampUp: 0.1 }, dtype: 'float64' });
      let s = 1;
      let t = 0;
      for (let i = 1; i <= 2000; i++) {
        const dt = 1 + ((i * 7) % 13);
        t += dt;
        const d = formula(decay, t, dt);
        p[0] = paramAt(i);
        ema.update(undefined, unit === 'samples' ? { samples: dt } : { seconds: dt });
        s -= (1 - d) * (s - p[0]);
      }
      relClose(ema.stateDict().shadowParams[0][0], s, 1e-10);
      expect(unit === 'samples' ? ema.samples : ema.seconds).toBe(t);
    }
  });

  test("half-life in seconds without seconds uses a monotonic clock", async () => {
    const ema = new ExponentialMovingAverage([new Float32Array([1])], { decay: 1, schedule: { kind: 'half-life', halfLife: 1, unit: 'seconds' } });
    await new Promise((resolve) => setTimeout(resolve, 30));
    ema.update();
    expect(ema.seconds).toBeGreaterThan(0.02);
    expect(ema.seconds).toBeLessThan(5);
  });
});

describe('exact compensation: an update covering k steps', () => {
  const schedules: [string, Schedule, number][] = [
    ['constant', 'constant', 0.99],
    ['torch_ema', 'torch_ema', 0.999],
    ['inverse-gamma', { kind: 'inverse-gamma', power: 3 / 4, minDecay: 0.2, startStep: 5 }, 0.995],
    ['power-function', { kind: 'power-function', sigmaRel: 0.1 }, 0.999],
    ['half-life steps rampUp', { kind: 'half-life', halfLife: 200, unit: 'steps', rampUp: 0.2 }, 0.997],
  ];
  test.each(schedules)('%s: constant parameters, every k steps with { steps: k } = every step (float32)', (_, schedule, decay) => {
    for (const k of [2, 3, 10, 37]) {
      const p = new Float32Array([4, -1]);
      const every = new ExponentialMovingAverage([p], { decay, schedule });
      const skipping = new ExponentialMovingAverage([p], { decay, schedule });
      p.set([-3, 2]);
      for (let step = 1; step <= 40 * k; step++) {
        every.update();
        if (step % k === 0) skipping.update(undefined, { steps: k });
      }
      expect(skipping.step).toBe(every.step);
      expect(skipping.numUpdates).toBe(every.numUpdates);
      const a = every.stateDict().shadowParams[0];
      const b = skipping.stateDict().shadowParams[0];
      for (let j = 0; j < 2; j++) relClose(b[j], a[j], 2e-5);
    }
  });

  test.each(schedules)('%s: the k-step decay is the float64 product of the per-step decays', (_, schedule, decay) => {
    const one = new ExponentialMovingAverage([new Float64Array([0])], { decay, schedule });
    const many = new ExponentialMovingAverage([new Float64Array([0])], { decay, schedule, dtype: 'float64' });
    const p = new Float64Array([1]);
    // shadow 0, parameter 1: after one update the shadow is 1 - d, so d = 1 - shadow.
    for (const k of [1, 5, 100, 1000]) {
      let product = 1;
      for (let i = 0; i < k; i++) {
        product *= one.currentDecay;
        one.update([new Float64Array([0])]);
      }
      many.loadStateDict({ ...many.stateDict(), shadowParams: [new Float64Array([0])] });
      many.update([p], { steps: k });
      relClose(1 - many.stateDict().shadowParams[0][0], product, 1e-9);
    }
  });

  test('steps: 0 leaves the shadows as they are and the step counter unchanged', () => {
    const ema = new ExponentialMovingAverage([new Float32Array([1])], { decay: 0.5, schedule: 'constant' });
    ema.update([new Float32Array([9])], { steps: 0, samples: 3 });
    expect(ema.stateDict().shadowParams[0][0]).toBe(1);
    expect([ema.step, ema.samples]).toEqual([0, 3]);
  });
});

describe('sigmaRel -> gamma (EDM2)', () => {
  test.each([
    [0.05, 16.97],
    [0.1, 6.94],
    [0.15, 3.56],
    [0.28, 0.169],
  ])('sigmaRel %p -> gamma %p', (sigmaRel, gamma) => {
    expect(sigmaRelToGamma(sigmaRel)).toBeCloseTo(gamma, 2);
    const ema = new ExponentialMovingAverage([new Float32Array(1)], { decay: 1, schedule: { kind: 'power-function', sigmaRel } });
    expect(ema.schedule).toEqual({ kind: 'power-function', gamma: sigmaRelToGamma(sigmaRel) });
    const g = sigmaRelToGamma(sigmaRel);
    const c = sigmaRel ** -2;
    expect(Math.abs(g ** 3 + 7 * g ** 2 + (16 - c) * g + (12 - c))).toBeLessThan(1e-8 * c);
    // EDM2's closed form: sigma_rel = sqrt((g + 1) / ((g + 2)^2 (g + 3))).
    expect(Math.sqrt((g + 1) / ((g + 2) ** 2 * (g + 3)))).toBeCloseTo(sigmaRel, 12);
  });

  test.each([0, -0.1, 0.2887, 0.3, NaN, Infinity])('sigmaRel %p is a RangeError', (sigmaRel) => {
    expect(() => sigmaRelToGamma(sigmaRel)).toThrow(RangeError);
    expect(() => new ExponentialMovingAverage([], { decay: 1, schedule: { kind: 'power-function', sigmaRel } })).toThrow(/schedule.sigmaRel/);
  });
});

describe('schedule and useNumUpdates', () => {
  test('without a schedule, useNumUpdates picks torch_ema or constant', () => {
    expect(new ExponentialMovingAverage([], { decay: 0.9 }).schedule).toEqual({ kind: 'torch_ema' });
    expect(new ExponentialMovingAverage([], { decay: 0.9, useNumUpdates: false }).schedule).toEqual({ kind: 'constant' });
    expect(new ExponentialMovingAverage([], { decay: 0.9, schedule: 'constant' }).numUpdates).toBeNull();
    expect(new ExponentialMovingAverage([], { decay: 0.9, schedule: 'torch_ema', useNumUpdates: true }).numUpdates).toBe(0);
    expect(new ExponentialMovingAverage([], { decay: 0.9, schedule: { kind: 'inverse-gamma' } }).schedule).toEqual({
      kind: 'inverse-gamma', gamma: 1, power: 2 / 3, minDecay: 0, startStep: 0,
    });
  });
});

test('the counters saturate, so every state stays savable', () => {
  const ema = new ExponentialMovingAverage([new Float32Array(1)], { decay: 0.9, schedule: 'constant' });
  ema.update(undefined, { steps: Number.MAX_SAFE_INTEGER, samples: Number.MAX_VALUE, seconds: Number.MAX_VALUE });
  ema.update(undefined, { steps: 5, samples: Number.MAX_VALUE, seconds: Number.MAX_VALUE });
  expect([ema.step, ema.samples, ema.seconds]).toEqual([Number.MAX_SAFE_INTEGER, Number.MAX_VALUE, Number.MAX_VALUE]);
  const other = new ExponentialMovingAverage([new Float32Array(1)], { decay: 0.9 });
  other.deserialize(ema.serialize());
  expect([other.step, other.samples, other.seconds]).toEqual([Number.MAX_SAFE_INTEGER, Number.MAX_VALUE, Number.MAX_VALUE]);
});

test('updateAsync: the progress, schedule position and decay of each call are fixed when it is called; counters advance in call order', async () => {
  const p = new Float64Array([1]);
  const ema = new ExponentialMovingAverage([p], { decay: 0.5, schedule: 'constant', dtype: 'float64' });
  const first = ema.updateAsync(undefined, { steps: 2, samples: 8, seconds: 1 });
  ema.decay = 0.25; // the queued second call uses 0.25, the first keeps 0.5
  p[0] = 3; // read by the queued call when its turn comes
  const second = ema.updateAsync(undefined, { steps: 3, samples: 4, seconds: 2 });
  await Promise.all([first, second]);
  expect([ema.step, ema.samples, ema.seconds]).toEqual([5, 12, 3]);
  // shadow 1 with p = 1 stays 1; then d = 0.25^3 toward 3.
  expect(ema.stateDict().shadowParams[0][0]).toBeCloseTo(3 - 0.25 ** 3 * 2, 12);
});

test('half-life in steps with rampUp: a huge update covering a long ramp is fast and equals its parts', () => {
  const schedule = { kind: 'half-life', halfLife: 1e9, unit: 'steps', rampUp: 1 } as const;
  const whole = new ExponentialMovingAverage([new Float64Array([0])], { decay: 1, schedule, dtype: 'float64' });
  const parts = new ExponentialMovingAverage([new Float64Array([0])], { decay: 1, schedule, dtype: 'float64' });
  const one = new Float64Array([1]);
  const started = Date.now();
  whole.update([one], { steps: 2e9 });
  parts.update([one], { steps: 5e8 });
  parts.update([one], { steps: 1.5e9 });
  expect(Date.now() - started).toBeLessThan(1000);
  // From t = 1 the first step has h = 1: d = 0.5; the rest telescopes to 0.5^(H(1e9) - 1 + 1).
  const expected = 0.5 ** (Math.log(1e9) + 0.5772156649015329 + 1); // 0.5^(H(1e9)) * 0.5^(1e9 / 1e9)
  expect(1 - whole.stateDict().shadowParams[0][0]).toBeCloseTo(expected, 8);
  expect(parts.stateDict().shadowParams[0][0]).toBeCloseTo(whole.stateDict().shadowParams[0][0], 10);
});

test("power-function with unit 'samples': t counts samples, (1 - dt/t)^(gamma + 1) per update, samples required", () => {
  const gamma = sigmaRelToGamma(0.1);
  const p = new Float64Array([1]);
  const ema = new ExponentialMovingAverage([p], { decay: 1, dtype: 'float64', schedule: { kind: 'power-function', sigmaRel: 0.1, unit: 'samples' } });
  expect(ema.schedule).toEqual({ kind: 'power-function', gamma, unit: 'samples' });
  expect(() => ema.update()).toThrow(/progress.samples is required on every update by schedule power-function with unit 'samples'/);
  let s = 1;
  let t = 0;
  for (const [i, dt] of [64, 64, 128, 32, 0, 256].entries()) {
    p[0] = Math.cos(i);
    ema.update(undefined, { samples: dt });
    t += dt;
    const d = t === 0 ? 1 : dt === 0 ? 1 : Math.pow(1 - dt / t, gamma + 1);
    s = s - (1 - d) * (s - p[0]);
    relClose(ema.stateDict().shadowParams[0][0], s, 1e-12);
  }
  expect(ema.samples).toBe(544);
  expect(() => new ExponentialMovingAverage([p], { decay: 1, schedule: { kind: 'power-function', gamma: 7, unit: 'seconds' } as never })).toThrow(/schedule.unit/);
  ema.dispose();
});
