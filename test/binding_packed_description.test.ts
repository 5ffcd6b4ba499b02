// The packed update description (binding.d.ts PackedDescription, native/addon/args.cc): a
// Float64Array [decay, nonFinite, rounding, seed, updateIndex] that the facade passes on every
// update. It must give the bits the object form gives, and the addon must check every packed value
// as it checks the object's fields, naming the field, before anything changes.
import { binding, type ShadowArena } from '../src/native';
import { fillRandom, sameBytes } from './reference';

const SIZES = [0, 1, 7, 4097, 33];
const params = (): Float32Array[] => SIZES.map((n, i) => fillRandom(new Float32Array(n), i + 1));

function arena(dtype: 'float32' | 'bfloat16'): ShadowArena {
  const a = new binding.ShadowArena(dtype, SIZES);
  a.copyFrom(SIZES.map((n, i) => fillRandom(new Float32Array(n), 50 + i)));
  return a;
}

const bytesOf = (a: ShadowArena): Uint8Array[] => SIZES.map((_, t) => a.readBytes(t));

test.each([
  [{ decay: 0.9 }, [0.9, 0, 0, 0, 0]],
  [{ decay: 0 }, [0, 0, 0, 0, 0]],
  [{ decay: 1, nonFinite: 'skip-element' as const }, [1, 2, 0, 0, 0]],
  [{ decay: 0.5, nonFinite: 'skip-update' as const }, [0.5, 1, 0, 0, 0]],
  [{ decay: 0.99, rounding: 'stochastic' as const, seed: 2 ** 53 - 1, updateIndex: 12345 }, [0.99, 0, 1, 2 ** 53 - 1, 12345]],
])('packed %p gives the bits of the object form, sync and async', async (description, packed) => {
  for (const dtype of ['float32', 'bfloat16'] as const) {
    const [byObject, byPacked] = [arena(dtype), arena(dtype)];
    const p = params();
    p[3][5] = NaN;
    expect(byPacked.update(p, Float64Array.from(packed))).toBe(byObject.update(p, description));
    expect(await byPacked.updateAsync(p, Float64Array.from(packed))).toBe(await byObject.updateAsync(p, description));
    bytesOf(byPacked).forEach((b, t) => expect(sameBytes(b, bytesOf(byObject)[t])).toBe(true));
    byObject.dispose();
    byPacked.dispose();
  }
});

test.each([
  [new Float32Array(5), 'TypeError', /or a packed Float64Array\(5\) for description but received Float32Array\(5\)/],
  [new Float64Array(4), 'TypeError', /or a packed Float64Array\(5\) for description but received Float64Array\(4\)/],
  [[NaN, 0, 0, 0, 0], 'RangeError', /number in \[0, 1\] for description.decay but received NaN/],
  [[1.5, 0, 0, 0, 0], 'RangeError', /for description.decay but received 1.5/],
  [[0.5, 3, 0, 0, 0], 'RangeError', /integer code below 3 for description.nonFinite but received 3/],
  [[0.5, 0.5, 0, 0, 0], 'RangeError', /for description.nonFinite but received 0.5/],
  [[0.5, 0, 2, 0, 0], 'RangeError', /integer code below 2 for description.rounding but received 2/],
  [[0.5, 0, 0, -1, 0], 'RangeError', /non-negative integer for description.seed but received -1/],
  [[0.5, 0, 0, 0, 2 ** 53], 'RangeError', /for description.updateIndex but received 9007199254740992/],
  [[0.5, 0, 0, 0, Infinity], 'RangeError', /for description.updateIndex but received Infinity/],
])('packed description %p is refused, naming the field, with nothing changed', async (packed, name, message) => {
  const a = arena('float32');
  const description = Array.isArray(packed) ? Float64Array.from(packed) : packed;
  try {
    const before = bytesOf(a);
    expect(() => a.update(params(), description as Float64Array)).toThrow(message);
    let asyncError: unknown;
    try {
      await a.updateAsync(params(), description as Float64Array);
    } catch (error) {
      asyncError = error;
    }
    expect((asyncError as Error).name).toBe(name);
    expect((asyncError as Error).message).toMatch(message);
    expect(a.busy).toBe(false);
    bytesOf(a).forEach((b, t) => expect(sameBytes(b, before[t])).toBe(true));
  } finally {
    a.dispose();
  }
});
