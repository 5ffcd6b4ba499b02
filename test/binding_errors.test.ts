// The native layer checks every argument again (the TypeScript facade checks first): a direct
// call with bad input gets a TypeError/RangeError naming the argument, never a crash, and changes
// nothing. Errors come from the addon's realm, so assertions are on name and message.
import { binding, ShadowArena } from '../src/native';
import { sameBytes } from './reference';

function thrown(fn: () => unknown): { name: string; message: string } {
  try {
    fn();
  } catch (e) {
    return { name: (e as Error).name, message: (e as Error).message };
  }
  throw new Error('expected a throw');
}

function arenaWithValues(): ShadowArena {
  const arena = new binding.ShadowArena('float32', [3, 5]);
  arena.copyFrom([new Float32Array([1, 2, 3]), new Float32Array([4, 5, 6, 7, 8])]);
  return arena;
}

// Every failing call must leave the arena's bytes as they were.
function expectUnchanged(arena: ShadowArena, call: () => unknown, name: string, message: RegExp): void {
  const before = arena.sizes.map((_, i) => arena.readBytes(i));
  const error = thrown(call);
  expect(error.name).toBe(name);
  expect(error.message).toMatch(message);
  arena.sizes.forEach((_, i) => expect(sameBytes(arena.readBytes(i), before[i])).toBe(true));
}

const good = () => [new Float32Array(3), new Float32Array(5)];

describe('ShadowArena argument checks', () => {
  test.each([
    ['a missing params array', () => undefined, 'TypeError', /for params but received undefined/],
    ['too few parameters', () => [new Float32Array(3)], 'RangeError', /Expected 2 parameters for params but received 1/],
    ['an Int32Array', () => [new Float32Array(3), new Int32Array(5)], 'TypeError', /Float32Array or Float64Array for params\[1\] but received Int32Array\(5\)/],
    ['a plain array of numbers', () => [[1, 2, 3], new Float32Array(5)], 'TypeError', /for params\[0\] but received an array of length 3/],
    ['a length mismatch', () => [new Float32Array(3), new Float64Array(4)], 'RangeError', /Expected 5 elements for params\[1\] but received 4/],
  ])('update with %s is refused', (_, make, name, message) => {
    const arena = arenaWithValues();
    expectUnchanged(arena, () => arena.update(make() as Float32Array[], { decay: 0.5 }), name, message);
    expectUnchanged(arena, () => arena.copyFrom(make() as Float32Array[]), name, message);
    expectUnchanged(arena, () => arena.copyTo(make() as Float32Array[]), name, message);
  });

  test.each([
    [NaN, 'RangeError', /number in \[0, 1\] for decay but received NaN/],
    [Infinity, 'RangeError', /received Infinity/],
    [-0.5, 'RangeError', /received -0.5/],
    [1.0000001, 'RangeError', /received 1.0000001/],
    ['0.9', 'TypeError', /for decay but received '0.9'/],
    [undefined, 'TypeError', /for decay but received undefined/],
  ])('decay %p is refused', (decay, name, message) => {
    const arena = arenaWithValues();
    expectUnchanged(arena, () => arena.update(good(), { decay: decay as number }), name, message);
  });

  // The addon checks the per-element fields again, whatever the facade let through.
  test.each([
    [{ nonFinite: 'skip' }, 'RangeError', /one of 'propagate', 'skip-update', 'skip-element' for nonFinite but received 'skip'/],
    [{ nonFinite: 'skip-update-and-more-words-than-fit-in-a-buffer' }, 'RangeError', /for nonFinite but received 'skip-update-and-more-words-than-fit-in-a/],
    [{ nonFinite: 1 }, 'TypeError', /for nonFinite but received 1/],
    [{ rounding: 'up' }, 'RangeError', /one of 'nearest', 'stochastic' for rounding but received 'up'/],
    [{ rounding: null }, 'TypeError', /for rounding but received null/],
    [{ seed: -1 }, 'RangeError', /non-negative integer for seed but received -1/],
    [{ seed: 2 ** 53 }, 'RangeError', /for seed but received 9007199254740992/],
    [{ updateIndex: 1.5 }, 'RangeError', /for updateIndex but received 1.5/],
    [{ updateIndex: '1' }, 'TypeError', /for updateIndex but received '1'/],
  ])('update description field %p is refused', (fields, name, message) => {
    const arena = arenaWithValues();
    expectUnchanged(arena, () => arena.update(good(), { decay: 0.5, ...(fields as object) }), name, message);
    expectUnchanged(arena, () => arena.updateAsync(good(), { decay: 0.5, ...(fields as object) }), name, message);
  });

  test.each([
    [0.5, /for description but received 0.5/],
    [undefined, /for description but received undefined/],
    ['fast', /for description but received 'fast'/],
  ])('an update description %p that is not an object is a TypeError naming it', (description, message) => {
    const arena = arenaWithValues();
    expectUnchanged(arena, () => arena.update(good(), description as never), 'TypeError', message);
    expectUnchanged(arena, () => arena.updateAsync(good(), description as never), 'TypeError', message);
  });

  test('a detached parameter buffer is reported as detached', () => {
    const arena = arenaWithValues();
    const p = good();
    structuredClone(p[1].buffer, { transfer: [p[1].buffer] });
    expectUnchanged(arena, () => arena.update(p, { decay: 0.5 }), 'RangeError', /params\[1\] but received 0 \(its buffer was detached\)/);
  });

  test('typed arrays over a SharedArrayBuffer are parameters like any other (publish() copies into them)', () => {
    const arena = arenaWithValues();
    const shared = new SharedArrayBuffer(64);
    const views = [new Float32Array(shared, 0, 3), new Float32Array(shared, 16, 5)];
    arena.copyTo(views);
    expect(Array.from(views[1])).toEqual([4, 5, 6, 7, 8]);
    views[0].set([9, 10, 11]);
    arena.update([views[0], new Float64Array(new SharedArrayBuffer(40))], { decay: 0 });
    expect(Array.from(arena.read(0))).toEqual([9, 10, 11]);
    expectUnchanged(arena, () => arena.copyFrom([new Float32Array(shared, 0, 4), views[1]]), 'RangeError', /^Expected 3 elements for params\[0\] but received 4$/);
    arena.dispose();
  });

  test('copyFromArena copies another arena of the same sizes into this one, converting the dtype, and refuses others', () => {
    const source = arenaWithValues();
    const target = new binding.ShadowArena('bfloat16', [3, 5]);
    target.copyFromArena(source);
    expect(Array.from(target.read(1))).toEqual([4, 5, 6, 7, 8]);
    const fresh = new binding.ShadowArena('float32', [3, 5]);
    fresh.copyFromArena(target);
    expect(Array.from(fresh.read(0))).toEqual([1, 2, 3]);
    fresh.copyFromArena(fresh); // itself: nothing to do
    expectUnchanged(fresh, () => fresh.copyFromArena({} as never), 'TypeError', /^Expected a ShadowArena for source but received an object$/);
    expectUnchanged(fresh, () => fresh.copyFromArena(new Float32Array(8) as never), 'TypeError', /for source but received Float32Array\(8\)/);
    const other = new binding.ShadowArena('float32', [5, 3]);
    expectUnchanged(fresh, () => fresh.copyFromArena(other), 'RangeError', /^Expected an arena of the same tensor sizes for source but received one of 2 tensors, 8 elements$/);
    other.dispose();
    expectUnchanged(fresh, () => fresh.copyFromArena(other), 'Error', /disposed/);
    [source, target, fresh].forEach((a) => a.dispose());
  });

  test('methods called on something that is not a ShadowArena throw a TypeError', () => {
    const arena = arenaWithValues();
    for (const self of [{}, 5, null, Object.create(binding.ShadowArena.prototype as object)]) {
      const error = thrown(() => (arena.update as (...a: unknown[]) => void).call(self, good(), { decay: 0.5 }));
      expect(error.name).toBe('TypeError');
    }
    expect(thrown(() => (binding.ShadowArena as unknown as () => void)()).name).toBe('TypeError');
  });

  test.each([
    ['float8', [1], 'RangeError', /'float32', 'float64', 'float16', 'bfloat16' for dtype but received 'float8'/],
    [32, [1], 'TypeError', /for dtype but received 32/],
    ['float32', [1, -1], 'RangeError', /non-negative integer for sizes\[1\] but received -1/],
    ['float32', [1.5], 'RangeError', /sizes\[0\] but received 1.5/],
    ['float32', 'big', 'TypeError', /array of element counts for sizes/],
    ['float32', [2 ** 53], 'RangeError', /sizes\[0\]/],
    ['float32', [2 ** 52], 'RangeError', /out of memory|fits in memory/],
  ])('new ShadowArena(%p, %p) is refused', (dtype, sizes, name, message) => {
    const error = thrown(() => new binding.ShadowArena(dtype as 'float32', sizes as number[]));
    expect(error.name).toBe(name);
    expect(error.message).toMatch(message);
  });

  test('index, bytes and threads arguments are checked', () => {
    const arena = arenaWithValues();
    expect(thrown(() => arena.read(2)).message).toMatch(/integer below 2 for index but received 2/);
    expect(thrown(() => arena.read(-1)).message).toMatch(/non-negative integer for index/);
    expect(thrown(() => arena.readBytes(0.5)).message).toMatch(/for index but received 0.5/);
    expectUnchanged(arena, () => arena.writeBytes(0, new Uint8Array(11)), 'RangeError', /Expected 12 bytes for bytes but received 11/);
    expectUnchanged(arena, () => arena.writeBytes(0, new Float32Array(3) as unknown as Uint8Array), 'TypeError', /Uint8Array for bytes/);
    expect(thrown(() => arena.cast('int8' as 'float32')).name).toBe('RangeError');
    expect(thrown(() => { arena.threads = 0; }).message).toMatch(/threads/);
    expect(thrown(() => { arena.threads = binding.cpuInfo().threads + 1; }).message).toMatch(/threads/);
    expect(arena.threads).toBe(binding.cpuInfo().threads);
  });

  test('a disposed arena refuses every operation and dispose can repeat', () => {
    const arena = arenaWithValues();
    arena.dispose();
    arena.dispose();
    expect(arena.disposed).toBe(true);
    for (const call of [() => arena.update(good(), { decay: 0.5 }), () => arena.read(0), () => arena.cast('float16'), () => arena.countNonFinite()]) {
      expect(thrown(call).message).toMatch(/disposed/);
    }
  });

  test('while updateAsync runs, other calls and dispose are refused; afterwards all works', async () => {
    const arena = new binding.ShadowArena('float32', [2 ** 20]);
    const running = arena.updateAsync([new Float32Array(2 ** 20).fill(1)], { decay: 0.5 });
    expect(arena.busy).toBe(true);
    expect(thrown(() => arena.read(0)).message).toMatch(/while an updateAsync\(\) on this arena is running/);
    expect(thrown(() => arena.dispose()).message).toMatch(/Cannot dispose/);
    await running;
    expect(arena.busy).toBe(false);
    expect(arena.read(0)[0]).toBe(0.5);
    arena.dispose();
  });

  test('JS run by array getters cannot pull the arena out from under a call', () => {
    // Reading params[1] runs a getter that disposes the arena, starts an async update on it, or
    // detaches a buffer already looked at: each must end in an error, never a crash.
    const withGetter = (get: () => Float32Array) => {
      const arr: Float32Array[] = [new Float32Array(3)];
      Object.defineProperty(arr, 1, { get });
      return arr;
    };
    const a = arenaWithValues();
    const disposing = withGetter(() => {
      a.dispose();
      for (let i = 0; i < 50; i++) new binding.ShadowArena('float32', [0, 0]); // reuse the freed memory
      return new Float32Array(5);
    });
    expect(thrown(() => a.copyTo(disposing)).message).toMatch(/disposed/);

    const b = arenaWithValues();
    const starting = withGetter(() => {
      void b.updateAsync(good(), { decay: 0.5 });
      return new Float32Array(5);
    });
    expect(thrown(() => b.updateAsync(starting, { decay: 0.5 })).message).toMatch(/updateAsync\(\) on this arena is running/);

    const c = arenaWithValues();
    const first = new Float32Array(3);
    const detaching = [first] as Float32Array[];
    Object.defineProperty(detaching, 1, {
      get: () => {
        structuredClone(first.buffer, { transfer: [first.buffer] });
        return new Float32Array(5);
      },
    });
    expectUnchanged(c, () => c.update(detaching, { decay: 0.5 }), 'RangeError', /params\[0\] but received 0 \(its buffer was detached\)/);
  });

  test('JS run by a getter of the update description cannot pull the arena out from under a call', () => {
    const a = arenaWithValues();
    const disposing = { get decay() { a.dispose(); return 0.5; } };
    expect(thrown(() => a.update(good(), disposing)).message).toMatch(/disposed/);

    const b = arenaWithValues();
    const p = good();
    const detaching = { get decay() { structuredClone(p[1].buffer, { transfer: [p[1].buffer] }); return 0.5; } };
    expectUnchanged(b, () => b.update(p, detaching), 'RangeError', /params\[1\] but received 0 \(its buffer was detached\)/);
  });

  test('updateAsync validates synchronously and leaves the arena idle on bad input', () => {
    const arena = arenaWithValues();
    expectUnchanged(arena, () => arena.updateAsync([new Float32Array(3)], { decay: 0.5 }), 'RangeError', /Expected 2 parameters/);
    expect(arena.busy).toBe(false);
  });
});
