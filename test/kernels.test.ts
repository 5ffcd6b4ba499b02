// The fused kernels, through the native ShadowArena, against the float64 reference in
// test/reference.ts: every storage dtype and parameter type, awkward sizes, unaligned views,
// many tiny tensors, threaded against single-threaded, async against sync.
import { binding, ParamArray, ShadowArena } from '../src/native';
import { DType, DTYPES, expectSame, fillRandom, random, roundTo, sameBytes, ulp, unaligned, updateReference } from './reference';

const SIZES = [0, 1, 7, 4097, 2 ** 20 + 3];
// The largest size is checked element by element for Float32Array parameters only: the reference
// loop is slow, and the Float64Array path differs only in the load, covered by the other sizes.
const sizesFor = (Ctor: ParamCtor) => (Ctor === Float32Array ? SIZES : SIZES.slice(0, -1));
const PARAM_TYPES = [Float32Array, Float64Array] as const;
type ParamCtor = (typeof PARAM_TYPES)[number];


function params(sizes: number[], Ctor: ParamCtor, seed: number, offset = 1): ParamArray[] {
  return sizes.map((n, i) => fillRandom(unaligned(Ctor, n, (offset + i) % 5), seed + i));
}

function readAll(arena: ShadowArena): Float64Array[] {
  return arena.sizes.map((_, i) => Float64Array.from(arena.read(i)));
}

// One update's error: the reference rounded to the storage dtype, plus a few float32 roundings of
// the operands' magnitude (cancellation in s - p makes the error relative to |s| and |p|).
function expectUpdate(actual: ArrayLike<number>, before: ArrayLike<number>, param: ArrayLike<number>, decay: number, dtype: DType, context: string): void {
  const exact = updateReference(before, param, decay);
  const compute: DType = dtype === 'float64' ? 'float64' : 'float32';
  for (let i = 0; i < exact.length; i++) {
    const magnitude = Math.max(Math.abs(before[i]), Math.abs(param[i]));
    const tolerance = ulp(exact[i], dtype) + 4 * ulp(magnitude, compute);
    if (Math.abs(actual[i] - exact[i]) > tolerance) {
      throw new Error(`${context}: element ${i} is ${actual[i]}, expected ${exact[i]} +- ${tolerance}`);
    }
  }
}

describe.each(DTYPES)('%s storage', (dtype) => {
  describe.each(PARAM_TYPES.map((C) => [C.name, C] as const))('%s parameters', (_, Ctor) => {
    test.each(sizesFor(Ctor))('copyFrom rounds each value to the storage dtype (size %d)', (n) => {
      const p = params([n], Ctor, 11 * n + 1);
      const arena = new binding.ShadowArena(dtype, [n]);
      arena.copyFrom(p);
      expectSame(arena.read(0), Array.from(p[0], (x) => roundTo(x, dtype)), `${dtype} size ${n}`);
      arena.dispose();
    });

    test.each(sizesFor(Ctor))('update follows s - (1 - d)(s - p) within rounding (size %d)', (n) => {
      const arena = new binding.ShadowArena(dtype, [n, 3]);
      arena.copyFrom(params([n, 3], Ctor, 7 * n + 2));
      for (const decay of n > 4097 ? [0.999] : [0.999, 0.5, 2 / 11]) {
        const p = params([n, 3], Ctor, 13 * n + Math.round(decay * 1000), 3);
        const before = readAll(arena);
        arena.update(p, { decay });
        const after = readAll(arena);
        after.forEach((values, t) => expectUpdate(values, before[t], p[t], decay, dtype, `${dtype} n=${n} d=${decay} t=${t}`));
      }
      arena.dispose();
    });

    test('copyTo converts the shadows into each parameter type exactly', () => {
      const sizes = [4097, 7, 1, 0];
      const arena = new binding.ShadowArena(dtype, sizes);
      arena.copyFrom(params(sizes, Ctor, 5));
      const f32 = sizes.map((n, i) => unaligned(Float32Array, n, i + 1));
      const f64 = sizes.map((n, i) => unaligned(Float64Array, n, i + 2));
      arena.copyTo(f32);
      arena.copyTo(f64);
      sizes.forEach((_, t) => {
        const stored = arena.read(t);
        expectSame(f64[t], stored, `float64 copy of tensor ${t}`);
        expectSame(f32[t], Array.from(stored, Math.fround), `float32 copy of tensor ${t}`);
      });
      arena.dispose();
    });
  });

  test.each(DTYPES)('cast to %s rounds every value once more', (target) => {
    const sizes = [4097, 0, 33, 1];
    const arena = new binding.ShadowArena(dtype, sizes);
    arena.copyFrom(params(sizes, Float64Array, 21));
    const cast = arena.cast(target);
    expect(cast.dtype).toBe(target);
    expect(cast.sizes).toEqual(sizes);
    sizes.forEach((_, t) => {
      expectSame(cast.read(t), Array.from(arena.read(t), (x) => roundTo(x, target)), `${dtype} -> ${target} tensor ${t}`);
    });
    arena.dispose();
    cast.dispose();
  });

  test('decay 1 leaves shadows bit-identical and decay 0 copies the parameters', () => {
    const sizes = [4097, 5];
    const arena = new binding.ShadowArena(dtype, sizes);
    arena.copyFrom(params(sizes, Float32Array, 3));
    const before = sizes.map((_, t) => arena.readBytes(t));
    arena.update(params(sizes, Float32Array, 4), { decay: 1 });
    sizes.forEach((_, t) => expect(sameBytes(arena.readBytes(t), before[t])).toBe(true));
    const p = params(sizes, Float32Array, 5);
    arena.update(p, { decay: 0 });
    sizes.forEach((_, t) => expectSame(arena.read(t), Array.from(p[t], (x) => roundTo(x, dtype)), `decay 0 tensor ${t}`));
    arena.dispose();
  });

  test('a thousand tiny tensors update like one large one', () => {
    const next = random(99);
    const sizes = Array.from({ length: 1000 }, () => Math.floor(next() * 10));
    const tiny = new binding.ShadowArena(dtype, sizes);
    const joined = new binding.ShadowArena(dtype, [sizes.reduce((a, b) => a + b, 0)]);
    const start = params(sizes, Float32Array, 1000);
    const p = params(sizes, Float32Array, 2000);
    const concat = (arrays: ParamArray[]) => [Float32Array.from(arrays.flatMap((a) => Array.from(a)))];
    tiny.copyFrom(start);
    joined.copyFrom(concat(start));
    tiny.update(p, { decay: 0.75 });
    joined.update(concat(p), { decay: 0.75 });
    expectSame(readAll(tiny).flatMap((a) => Array.from(a)), joined.read(0), 'tiny tensors vs one tensor');
    tiny.dispose();
    joined.dispose();
  });

  test('threaded and single-threaded updates are bit-identical', () => {
    // Tensor sizes chosen so that the split between threads falls inside tensors.
    const sizes = [2 ** 20 + 3, 12345, 1, 2 ** 19 - 7];
    const arenas = [1, binding.cpuInfo().threads].map((threads) => {
      const arena = new binding.ShadowArena(dtype, sizes);
      arena.threads = threads;
      arena.copyFrom(params(sizes, Float32Array, 8));
      arena.update(params(sizes, Float32Array, 9), { decay: 0.9 });
      return arena;
    });
    sizes.forEach((_, t) => expect(sameBytes(arenas[1].readBytes(t), arenas[0].readBytes(t))).toBe(true));
    arenas.forEach((a) => a.dispose());
  });

  test('updateAsync gives the same bits as update', async () => {
    const sizes = [2 ** 20 + 3, 7, 0];
    const sync = new binding.ShadowArena(dtype, sizes);
    const async = new binding.ShadowArena(dtype, sizes);
    const start = params(sizes, Float64Array, 30);
    sync.copyFrom(start);
    async.copyFrom(start);
    for (let step = 0; step < 3; step++) {
      const p = params(sizes, step % 2 ? Float32Array : Float64Array, 40 + step);
      sync.update(p, { decay: 0.9 });
      await async.updateAsync(p, { decay: 0.9 });
    }
    sizes.forEach((_, t) => expect(sameBytes(async.readBytes(t), sync.readBytes(t))).toBe(true));
    sync.dispose();
    async.dispose();
  });
});

test('updateAsync averages the values passed at call time, not later changes', async () => {
  const arena = new binding.ShadowArena('float32', [2 ** 20]);
  const p = new Float32Array(2 ** 20).fill(1);
  const done = arena.updateAsync([p], { decay: 0 });
  p.fill(2); // the caller's next optimizer step, while the average is being computed
  await done;
  expect(arena.read(0).every((x) => x === 1)).toBe(true);
  arena.dispose();
});

test('countNonFinite counts NaN and infinities in every dtype', () => {
  for (const dtype of DTYPES) {
    const arena = new binding.ShadowArena(dtype, [6, 2]);
    arena.copyFrom([new Float64Array([1, NaN, -Infinity, 0, Infinity, -0]), new Float64Array([1e300, 5])]);
    // 1e300 overflows every dtype but float64.
    expect(arena.countNonFinite()).toBe(dtype === 'float64' ? 3 : 4);
    arena.dispose();
  }
});
