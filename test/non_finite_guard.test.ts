// The non-finite guard (SPEC "Non-finite parameters"): 'skip-update' and 'skip-element' against a
// float64 reference written from the SPEC's formula, with NaN and infinities placed at the edges of
// every SIMD width; the statistics, their state and checkpoint round trips; float16's range.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { ExponentialMovingAverage } from '../src';
import { fillRandom, sameBytes, updateStep } from './reference';

// Around every vector width (4, 8, 16 floats; 2, 4, 8 doubles) and the 64-element split granule.
const SIZES = [1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 4097];
const BAD = [NaN, Infinity, -Infinity];

function model(sizes: number[], seed: number): Float32Array[] {
  return sizes.map((n, i) => fillRandom(new Float32Array(n), seed + i));
}

function stateBytes(ema: ExponentialMovingAverage): Float32Array[] {
  return ema.stateDict().shadowParams as Float32Array[];
}

// Where a bad value goes: first, middle or last element of the first, middle or last tensor.
const PLACES = ['first', 'middle', 'last'] as const;
function at(n: number, place: (typeof PLACES)[number]): number {
  return place === 'first' ? 0 : place === 'last' ? n - 1 : n >> 1;
}

// Every bad value at every place: calls check(bad, tensor, element, context) for each.
function eachPlacement(sizes: number[], check: (bad: number, t: number, e: number, context: string) => void): void {
  for (const bad of BAD) {
    for (const tensorPlace of PLACES) {
      for (const elementPlace of PLACES) {
        const t = at(sizes.length, tensorPlace);
        check(bad, t, at(sizes[t], elementPlace), `${bad} at tensor ${tensorPlace}, element ${elementPlace}`);
      }
    }
  }
}

describe("nonFinite 'skip-element'", () => {
  test.each(SIZES)('size %i: each bad value at each place equals the float64 reference with those elements masked', (n) => {
    const sizes = [n, n + 3, n];
    eachPlacement(sizes, (bad, t, e, context) => {
      const start = model(sizes, n);
      const ema = new ExponentialMovingAverage(start, { decay: 0.9, useNumUpdates: false, nonFinite: 'skip-element' });
      const params = model(sizes, 1000 + n);
      params[t][e] = bad;
      ema.update(params);
      stateBytes(ema).forEach((shadow, i) => {
        for (let j = 0; j < shadow.length; j++) {
          const expected = i === t && j === e ? start[i][j] : updateStep(start[i][j], params[i][j], 0.9, 'float32');
          if (!Object.is(shadow[j], expected)) throw new Error(`${context}: tensor ${i}[${j}] is ${shadow[j]}, expected ${expected}`);
        }
      });
      expect(ema.nonFiniteStats).toEqual({ skippedUpdates: 0, skippedElements: 1 });
      expect(ema.step).toBe(1);
    });
  });

  test('counts every skipped element over many updates, float64 parameters and float64 shadows too', () => {
    for (const dtype of ['float32', 'float64', 'float16', 'bfloat16'] as const) {
      const params = [fillRandom(new Float64Array(1000), 1), fillRandom(new Float32Array(77), 2)];
      const ema = new ExponentialMovingAverage(params, { decay: 0.5, useNumUpdates: false, dtype, nonFinite: 'skip-element' });
      let expected = 0;
      for (let k = 0; k < 20; k++) {
        for (let j = k; j < 1000; j += 97) params[0][j] = BAD[j % 3];
        params[1][k] = NaN;
        expected += params[0].filter((v) => !Number.isFinite(v)).length + params[1].filter((v) => !Number.isFinite(v)).length;
        ema.update();
      }
      expect(ema.nonFiniteStats).toEqual({ skippedUpdates: 0, skippedElements: expected });
      for (const shadow of ema.stateDict().shadowParams) expect(shadow.every(Number.isFinite)).toBe(true);
    }
  });

  test('decay 0 copies only the finite elements; decay 1 changes nothing and still counts', () => {
    const p = new Float32Array([1, 2, 3, 4]);
    const ema = new ExponentialMovingAverage([p], { decay: 0, useNumUpdates: false, nonFinite: 'skip-element' });
    const next = new Float32Array([5, NaN, 7, -Infinity]);
    ema.update([next]);
    expect(Array.from(stateBytes(ema)[0])).toEqual([5, 2, 7, 4]);
    ema.decay = 1;
    ema.update([next]);
    expect(Array.from(stateBytes(ema)[0])).toEqual([5, 2, 7, 4]);
    expect(ema.nonFiniteStats.skippedElements).toBe(4);
  });

  test('updateAsync skips and counts exactly as update does', async () => {
    const params = model([4097, 9], 5);
    params[0][100] = NaN;
    params[1][8] = Infinity;
    const options = { decay: 0.99, nonFinite: 'skip-element' } as const;
    const [a, b] = [new ExponentialMovingAverage(params, options), new ExponentialMovingAverage(params, options)];
    const next = model([4097, 9], 6);
    next[0][0] = -Infinity;
    a.update(next);
    await b.updateAsync(next);
    stateBytes(a).forEach((s, i) => expect(sameBytes(s, stateBytes(b)[i])).toBe(true));
    expect(b.nonFiniteStats).toEqual(a.nonFiniteStats);
  });
});

describe("nonFinite 'skip-update'", () => {
  test.each(SIZES)('size %i: one bad value anywhere leaves every shadow bit and counter as it was', (n) => {
    const sizes = [n, n + 3, n];
    eachPlacement(sizes, (bad, t, e) => {
      const ema = new ExponentialMovingAverage(model(sizes, n), { decay: 0.9, nonFinite: 'skip-update' });
      ema.update(model(sizes, 50 + n), { samples: 4 });
      const before = ema.stateDict();
      const params = model(sizes, 1000 + n);
      params[t][e] = bad;
      ema.update(params, { samples: 4 });
      const after = ema.stateDict();
      after.shadowParams.forEach((s, i) => expect(sameBytes(s, before.shadowParams[i])).toBe(true));
      expect([after.numUpdates, after.step, after.samples]).toEqual([before.numUpdates, before.step, before.samples]);
      expect(ema.nonFiniteStats.skippedUpdates).toBe(1);
    });
  });

  test('statistics: one skipped update per update with bad values, and the bad elements it found', async () => {
    const params = model([33, 4097], 3);
    const ema = new ExponentialMovingAverage(params, { decay: 0.9, nonFinite: 'skip-update' });
    ema.update();
    params[1][4096] = NaN;
    params[0][0] = Infinity;
    ema.update();
    await ema.updateAsync();
    params[1][4096] = 0;
    params[0][0] = 0;
    ema.update();
    expect(ema.nonFiniteStats).toEqual({ skippedUpdates: 2, skippedElements: 4 });
    expect(ema.numUpdates).toBe(2);
    expect(ema.step).toBe(2);
  });

  test('a finite update applies as with no guard, bit for bit', () => {
    const params = model([4097, 7], 8);
    const guarded = new ExponentialMovingAverage(params, { decay: 0.999, nonFinite: 'skip-update' });
    const plain = new ExponentialMovingAverage(params, { decay: 0.999 });
    for (let k = 0; k < 3; k++) {
      const next = model([4097, 7], 20 + k);
      guarded.update(next);
      plain.update(next);
    }
    stateBytes(guarded).forEach((s, i) => expect(sameBytes(s, stateBytes(plain)[i])).toBe(true));
    expect(guarded.nonFiniteStats).toEqual({ skippedUpdates: 0, skippedElements: 0 });
  });
});

describe('statistics as state', () => {
  test("'propagate' (the default) lets NaN through and counts nothing", () => {
    const p = new Float32Array([1, 2]);
    const ema = new ExponentialMovingAverage([p], { decay: 0.5 });
    ema.update([new Float32Array([NaN, 2])]);
    expect(Number.isNaN(stateBytes(ema)[0][0])).toBe(true);
    expect(ema.nonFiniteStats).toEqual({ skippedUpdates: 0, skippedElements: 0 });
  });

  test('stateDict, loadStateDict, save and load carry the statistics', async () => {
    const params = model([10], 1);
    const ema = new ExponentialMovingAverage(params, { decay: 0.5, nonFinite: 'skip-update' });
    params[0][3] = NaN;
    ema.update();
    ema.update();
    const state = ema.stateDict();
    expect(state.nonFiniteStats).toEqual({ skippedUpdates: 2, skippedElements: 2 });
    const other = new ExponentialMovingAverage(model([10], 2), { decay: 0.5, nonFinite: 'skip-update' });
    other.loadStateDict(state);
    expect(other.nonFiniteStats).toEqual({ skippedUpdates: 2, skippedElements: 2 });
    const dir = mkdtempSync(path.join(tmpdir(), 'model-ema-guard-'));
    try {
      await ema.save(path.join(dir, 'a.safetensors'));
      const loaded = new ExponentialMovingAverage(model([10], 3), { decay: 0.5 });
      await loaded.load(path.join(dir, 'a.safetensors'));
      expect(loaded.nonFiniteStats).toEqual({ skippedUpdates: 2, skippedElements: 2 });
      const restored = new ExponentialMovingAverage(model([10], 3), { decay: 0.5 });
      restored.deserialize(ema.serialize());
      expect(restored.nonFiniteStats).toEqual({ skippedUpdates: 2, skippedElements: 2 });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    // A state from before the guard has none: zeros.
    const { nonFiniteStats: _, ...old } = state;
    other.loadStateDict(old);
    expect(other.nonFiniteStats).toEqual({ skippedUpdates: 0, skippedElements: 0 });
  });

  test.each([
    [{ skippedUpdates: -1, skippedElements: 0 }, /state\.nonFiniteStats\.skippedUpdates.*-1/],
    [{ skippedUpdates: 0, skippedElements: 1.5 }, /state\.nonFiniteStats\.skippedElements.*1\.5/],
    [{ skippedUpdates: 0 }, /state\.nonFiniteStats\.skippedElements.*undefined/],
    ['many', /state\.nonFiniteStats.*"many"/],
  ])('a bad nonFiniteStats %p is refused and nothing changes', (stats, message) => {
    const ema = new ExponentialMovingAverage(model([4], 1), { decay: 0.5 });
    const before = ema.stateDict();
    expect(() => ema.loadStateDict({ ...before, shadowParams: model([4], 9), nonFiniteStats: stats as never })).toThrow(message);
    expect(sameBytes(stateBytes(ema)[0], before.shadowParams[0])).toBe(true);
  });
});

describe('options', () => {
  test.each([
    [{ nonFinite: 'skip' }, RangeError, /one of 'propagate', 'skip-update', 'skip-element' for nonFinite but received "skip"/],
    [{ nonFinite: true }, TypeError, /for nonFinite but received true/],
    [{ rounding: 'up' }, RangeError, /one of 'nearest', 'stochastic' for rounding but received "up"/],
    [{ rounding: 'stochastic' }, TypeError, /rounding 'stochastic' needs dtype 'float16' or 'bfloat16'.*'float32'/],
    [{ rounding: 'stochastic', dtype: 'float64' }, TypeError, /'float64'/],
    [{ seed: -1 }, RangeError, /integer in \[0, 2\^53 - 1\] for seed but received -1/],
    [{ seed: 1.5 }, RangeError, /for seed but received 1\.5/],
    [{ seed: '1' }, TypeError, /for seed but received "1"/],
    [{ nonfinite: 'skip-update' }, TypeError, /Unknown option 'nonfinite'.*did you mean 'nonFinite'/],
  ])('%p is refused naming the option and the value', (options, type, message) => {
    const make = (): unknown => new ExponentialMovingAverage([new Float32Array(2)], { decay: 0.5, ...(options as object) });
    expect(make).toThrow(type);
    expect(make).toThrow(message);
  });
});

describe('float16 range', () => {
  test('a finite value beyond 65504 is a RangeError naming the parameter where it enters the shadows', async () => {
    const p = new Float32Array([1, 2, -70000]);
    expect(() => new ExponentialMovingAverage([{ name: 'w', value: p }], { decay: 0.5, dtype: 'float16' })).toThrow(
      /float16 range.*parameters\[0\] \('w'\)\[2\] but received -70000/,
    );
    // 65504 itself, and infinities, are not range errors (infinities are what nonFinite is about).
    expect(() => new ExponentialMovingAverage([new Float32Array([65504, -65504, Infinity])], { decay: 0.5, dtype: 'float16' })).not.toThrow();

    const ema = new ExponentialMovingAverage([new Float32Array(3)], { decay: 0.5, dtype: 'float16' });
    const state = ema.stateDict();
    expect(() => ema.loadStateDict({ ...state, shadowParams: [p] })).toThrow(/state\.shadowParams\[0\]\[2\] but received -70000/);
    expect(Array.from(stateBytes(ema)[0])).toEqual([0, 0, 0]);

    const wide = new ExponentialMovingAverage([p], { decay: 0.5 });
    expect(() => wide.to({ dtype: 'float16' })).toThrow(/shadows\[0\]\[2\] but received -70000/);
    expect(wide.dtype).toBe('float32');
    expect(() => ema.deserialize(wide.serialize())).toThrow(/checkpoint shadows\[0\]\[2\] but received -70000/);
    expect(Array.from(stateBytes(ema)[0])).toEqual([0, 0, 0]);
    const bf16 = new ExponentialMovingAverage([p], { decay: 0.5, dtype: 'bfloat16' });
    expect(() => ema.deserialize(bf16.serialize())).toThrow(/checkpoint shadows\[0\]\[2\] but received -70144/);
  });

  test('updates saturate at +-65504 instead of overflowing to Infinity (and NaN after)', () => {
    for (const rounding of ['nearest', 'stochastic'] as const) {
      const p = new Float32Array([60000, -60000, 1]);
      const ema = new ExponentialMovingAverage([p], { decay: 0.5, useNumUpdates: false, dtype: 'float16', rounding });
      const big = new Float32Array([1e6, -1e30, 1]);
      for (let k = 0; k < 3; k++) ema.update([big]);
      expect(Array.from(stateBytes(ema)[0])).toEqual([65504, -65504, 1]);
      ema.decay = 0; // the copy rule saturates too
      ema.update([big]);
      expect(Array.from(stateBytes(ema)[0])).toEqual([65504, -65504, 1]);
    }
  });
});
