// Stochastic rounding of float16/bfloat16 shadows (SPEC "Low-precision shadows that keep moving"):
// unbiased, keeps the average moving where nearest rounding freezes it, and a pure function of
// (seed, update index, element position): the same bits sync and async, and for a given seed.
// (Thread counts and instruction sets: test/kernels_isa.test.ts; the CUDA blocks: the host
// emulation in test/cuda.test.ts.)
import { ExponentialMovingAverage } from '../src';
import { fillRandom, roundTo, sameBytes, updateStep } from './reference';

type LowDType = 'float16' | 'bfloat16';
const LOW: readonly LowDType[] = ['float16', 'bfloat16'];

function shadowsOf(ema: ExponentialMovingAverage): Float32Array[] {
  return ema.stateDict().shadowParams as Float32Array[];
}

// One stochastic update of `count` elements, all with shadow s and parameter p: the stored values.
function roundMany(dtype: LowDType, s: number, p: number, decay: number, count: number, seed = 0): Float32Array {
  const half = count >> 1; // two tensors: both get their own random stream
  const ema = new ExponentialMovingAverage([new Float32Array(half).fill(s), new Float32Array(count - half).fill(s)], {
    decay,
    useNumUpdates: false,
    dtype,
    rounding: 'stochastic',
    seed,
  });
  ema.update([new Float32Array(half).fill(p), new Float32Array(count - half).fill(p)]);
  const [a, b] = shadowsOf(ema);
  const out = new Float32Array(count);
  out.set(a);
  out.set(b, half);
  return out;
}

describe('unbiased', () => {
  // (s, p, decay): s exactly representable in both formats; c, the float32 result, falls between
  // two values of the format at various fractions, in normal and float16-subnormal ranges.
  const CASES: [number, number, number][] = [
    [1, 1.5, 0.999],
    [1, 1.001, 0.5],
    [-3, 7, 0.99],
    [1024, 1025.3, 0.9],
    [0, 1e-6, 0.5], // float16 subnormal
    [0.25, -0.2, 0.999],
  ];
  test.each(LOW.flatMap((dtype) => CASES.map((c) => [dtype, ...c] as const)))('%s: s=%p p=%p decay=%p: the mean of 40000 roundings is the value, within 3 standard errors', (dtype, s, p, decay) => {
    expect(roundTo(s, dtype)).toBe(s);
    const c = updateStep(s, p, decay, 'float32');
    const values = roundMany(dtype, s, p, decay, 40000, 99);
    const seen = [...new Set(values)].sort((a, b) => a - b);
    const lo = seen[0];
    const hi = seen[seen.length - 1];
    // Only the two neighbours of c ever come out.
    expect(seen.length).toBeLessThanOrEqual(2);
    expect(lo).toBeLessThanOrEqual(c);
    expect(hi).toBeGreaterThanOrEqual(c);
    if (seen.length === 2) {
      expect(roundTo(lo, dtype)).toBe(lo);
      expect(roundTo(hi, dtype)).toBe(hi);
    }
    const gap = hi - lo;
    const q = gap === 0 ? 0 : (c - lo) / gap;
    let mean = 0;
    for (const v of values) mean += v;
    mean /= values.length;
    const standardError = gap * Math.sqrt((q * (1 - q)) / values.length);
    expect(Math.abs(mean - c)).toBeLessThanOrEqual(3 * standardError + 1e-12 * Math.abs(c));
  });
});

describe('the frozen shadow moves', () => {
  // The measurement: decay 0.999, parameter held at 1.5, start 1.0, 5000 updates.
  test.each(LOW)('%s: nearest stays frozen far from the average; stochastic lands within 1% of the float32 EMA', (dtype) => {
    const start = new Float32Array(1000).fill(1);
    const target = [new Float32Array(1000).fill(1.5)];
    const make = (options: object): ExponentialMovingAverage =>
      new ExponentialMovingAverage([start], { decay: 0.999, useNumUpdates: false, dtype, ...options });
    const [nearest, stochastic, wide] = [make({}), make({ rounding: 'stochastic', seed: 1 }), make({ dtype: 'float32' })];
    for (let k = 0; k < 5000; k++) {
      nearest.update(target);
      stochastic.update(target);
      wide.update(target);
    }
    const reference = shadowsOf(wide)[0][0];
    expect(reference).toBeCloseTo(1.5 - 0.5 * 0.999 ** 5000, 4);
    expect(Math.abs(shadowsOf(nearest)[0][0] - reference)).toBeGreaterThan(0.4); // frozen near 1.0
    const values = shadowsOf(stochastic)[0];
    const mean = values.reduce((a, b) => a + b, 0) / values.length;
    expect(Math.abs(mean - reference) / reference).toBeLessThan(0.01);
    for (const v of values) expect(Math.abs(v - reference) / reference).toBeLessThan(0.02);
  });
});

describe('deterministic', () => {
  const sizes = [4097, 1, 70, 0, 33];
  const params = (seed: number): Float32Array[] => sizes.map((n, i) => fillRandom(new Float32Array(n), seed + i));

  test.each(LOW)('%s: the same seed gives the same bits, sync or async; another seed other bits', async (dtype) => {
    const options = { decay: 0.99, dtype, rounding: 'stochastic', seed: 2 ** 40 + 3 } as const;
    const [a, b, c] = [
      new ExponentialMovingAverage(params(1), options),
      new ExponentialMovingAverage(params(1), options),
      new ExponentialMovingAverage(params(1), { ...options, seed: 4 }),
    ];
    for (let k = 0; k < 5; k++) {
      a.update(params(10 + k));
      await b.updateAsync(params(10 + k));
      c.update(params(10 + k));
    }
    shadowsOf(a).forEach((s, i) => expect(sameBytes(s, shadowsOf(b)[i])).toBe(true));
    expect(shadowsOf(a).some((s, i) => !sameBytes(s, shadowsOf(c)[i]))).toBe(true);
  });

  test('each update draws new bits: the same input rounds differently at the next update index', () => {
    const ema = new ExponentialMovingAverage([new Float32Array(1000).fill(1)], { decay: 0.5, useNumUpdates: false, dtype: 'bfloat16', rounding: 'stochastic' });
    const p = [new Float32Array(1000).fill(1 + 2 ** -9)]; // c = 1 + 2^-10: up with probability 1/8
    ema.update(p);
    const first = shadowsOf(ema)[0];
    ema.loadStateDict({ ...ema.stateDict(), shadowParams: [new Float32Array(1000).fill(1)] });
    // loadStateDict keeps the step (the update index), which is 1 now, not 0.
    ema.update(p);
    expect(sameBytes(first, shadowsOf(ema)[0])).toBe(false);
  });

  test('float32 shadows moved there by to() ignore the rounding option; back to bfloat16 they round stochastically again', () => {
    const ema = new ExponentialMovingAverage(params(1), { decay: 0.9, dtype: 'bfloat16', rounding: 'stochastic' });
    const plain = new ExponentialMovingAverage(params(1), { decay: 0.9, dtype: 'bfloat16' });
    ema.to({ dtype: 'float32' });
    plain.to({ dtype: 'float32' });
    ema.update(params(2));
    plain.update(params(2));
    shadowsOf(ema).forEach((s, i) => expect(sameBytes(s, shadowsOf(plain)[i])).toBe(true));
  });
});
