// The scoped swap: averageParameters() / withAveragedParameters() put the averaged weights into the
// parameters and the raw ones back afterwards, bit for bit, however the scope ends; scopes nest.
import { AveragedParametersScope, ExponentialMovingAverage, StorageDType } from '../src';
import { expectSame, fillRandom } from './reference';
import { copyAll, expectBitsEqual, expectError, expectRejection, expectSameState } from './helpers/state';

type Floats = Float32Array | Float64Array;

// Parameters whose raw values differ from the averaged ones everywhere, and an EMA over them.
function setup(dtype: StorageDType = 'float32', kinds: ('f32' | 'f64')[] = ['f32', 'f64']) {
  const sizes = [5, 1025];
  const params: Floats[] = kinds.map((k, i) => fillRandom(k === 'f32' ? new Float32Array(sizes[i]) : new Float64Array(sizes[i]), i + 1));
  const ema = new ExponentialMovingAverage(params, { decay: 0.9, dtype });
  ema.update(kinds.map((k, i) => fillRandom(k === 'f32' ? new Float32Array(sizes[i]) : new Float64Array(sizes[i]), i + 10)));
  const raw = copyAll(params);
  return { ema, params, raw };
}

// What the parameters must hold while a scope is open: the shadows, converted to each type.
function averaged(ema: ExponentialMovingAverage, params: readonly Floats[]): Floats[] {
  return ema.stateDict().shadowParams.map((s, i) => (params[i] instanceof Float64Array ? Float64Array.from(s) : Float32Array.from(s)));
}

function expectValues(params: readonly Floats[], expected: readonly Floats[], context: string): void {
  params.forEach((p, i) => expectBitsEqual(p, expected[i], `${context}, tensor ${i}`));
}

describe('averageParameters()', () => {
  test.each([
    ['float32', 'f32,f64'],
    ['float64', 'f32,f64'],
    ['bfloat16', 'f64,f64'],
    ['float16', 'f32,f64'],
  ] as const)('`using` swaps the averaged weights in and restores the raw ones bit-exactly (%s storage, %s params)', (dtype, kinds) => {
    const { ema, params, raw } = setup(dtype, kinds.split(',') as ('f32' | 'f64')[]);
    const mean = averaged(ema, params);
    let seen: AveragedParametersScope | undefined;
    {
      using scope = ema.averageParameters();
      seen = scope;
      expect(scope.closed).toBe(false);
      expectValues(params, mean, 'inside the scope');
    }
    expect(seen.closed).toBe(true);
    expectValues(params, raw, 'after the scope');
  });

  test('the scope restores into the buffers it was given, not the registered ones', () => {
    const { ema, params, raw } = setup();
    const other = [new Float64Array(5).fill(1), new Float32Array(1025).fill(2)];
    const scope = ema.averageParameters(other);
    expectValues(params, raw, 'registered buffers while an explicit scope is open');
    expectValues(other, averaged(ema, other), 'explicit buffers inside the scope');
    scope.restore();
    expectSame(other[0], new Float64Array(5).fill(1));
    expectSame(other[1], new Float32Array(1025).fill(2));
  });

  test('closing a scope twice is harmless, and restore() and Symbol.dispose are the same close', () => {
    const { ema, params, raw } = setup();
    const scope = ema.averageParameters();
    scope.restore();
    params[0].fill(3); // the next closes must not write the raw values back again
    scope.restore();
    scope[Symbol.dispose]();
    expectSame(params[0], new Float32Array(5).fill(3));
    expectBitsEqual(params[1], raw[1], 'tensor 1');
  });

  test('a scope does not touch the store()d backup, nor the shadows', () => {
    const { ema, params } = setup();
    params[0].fill(42);
    ema.store();
    const before = ema.stateDict();
    {
      using scope = ema.averageParameters();
      void scope;
      expectSameState(ema.stateDict(), before, 'inside the scope');
    }
    expectSameState(ema.stateDict(), before, 'after the scope');
    params[0].fill(0);
    ema.restore();
    expectSame(params[0], new Float32Array(5).fill(42));
  });
});

describe('nested scopes', () => {
  test('an inner scope never clobbers the outer one: closing both brings the raw values back', () => {
    const { ema, params, raw } = setup();
    const mean = averaged(ema, params);
    {
      using outer = ema.averageParameters();
      void outer;
      params[0].fill(-1); // the inner scope backs up what the parameters hold now
      const middle = copyAll(params);
      {
        using inner = ema.averageParameters();
        void inner;
        expectValues(params, mean, 'inside the inner scope');
      }
      expectValues(params, middle, 'after the inner scope');
    }
    expectValues(params, raw, 'after both scopes');
  });

  test('three levels opened and closed in order restore each level', () => {
    const { ema, params } = setup();
    const scopes: AveragedParametersScope[] = [];
    const snapshots: Floats[][] = [];
    for (let level = 0; level < 3; level++) {
      params[1].fill(level + 100);
      snapshots.push(copyAll(params));
      scopes.push(ema.averageParameters());
    }
    for (let level = 2; level >= 0; level--) {
      scopes[level].restore();
      expectValues(params, snapshots[level], `after closing level ${level}`);
    }
  });

  test('closing the outer scope first writes nothing; closing the inner one then restores the raw values', () => {
    const { ema, params, raw } = setup();
    const outer = ema.averageParameters();
    const inner = ema.averageParameters();
    const inside = copyAll(params);
    outer.restore();
    expect(outer.closed).toBe(true);
    expectValues(params, inside, 'after closing the outer scope first');
    expect(() => ema.update()).toThrow(/scope is open/);
    inner.restore();
    expectValues(params, raw, 'after closing the inner scope last');
    ema.update(); // no scope is left open
  });

  test('overlapping async evaluations that finish in any order leave the raw values', async () => {
    const { ema, params, raw } = setup();
    const mean = averaged(ema, params);
    const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
    const first = ema.withAveragedParameters(async () => {
      await sleep(5);
      expectValues(params, mean, 'inside the first evaluation');
      return 'first';
    });
    const second = ema.withAveragedParameters(async () => {
      await sleep(30);
      expectValues(params, mean, 'inside the second evaluation');
      return 'second';
    });
    await expect(Promise.all([first, second])).resolves.toEqual(['first', 'second']);
    expectValues(params, raw, 'after both evaluations');
    ema.update();
  });

  test('a restore into a detached parameter restores the others, throws naming it, and closes the scope', () => {
    const { ema, params, raw } = setup();
    const scope = ema.averageParameters();
    const taken = params[0].buffer as ArrayBuffer;
    structuredClone(taken, { transfer: [taken] });
    expect(() => scope.restore()).toThrow(/parameter 0.*detached/);
    expect(scope.closed).toBe(true);
    expectBitsEqual(params[1], raw[1], 'the healthy parameter, restored');
  });
});

describe('withAveragedParameters()', () => {
  test('runs a sync callback with the averaged weights in, returns its result, then restores', () => {
    const { ema, params, raw } = setup();
    const mean = averaged(ema, params);
    const result = ema.withAveragedParameters(() => {
      expectValues(params, mean, 'inside the callback');
      return { answer: 42 };
    });
    expect(result).toEqual({ answer: 42 });
    expectValues(params, raw, 'after the callback');
  });

  test('a sync callback that throws still restores, and its own error comes out', () => {
    const { ema, params, raw } = setup();
    const failure = new Error('evaluation failed');
    let caught: unknown;
    try {
      ema.withAveragedParameters(() => {
        throw failure;
      });
    } catch (error) {
      caught = error;
    }
    expect(caught).toBe(failure);
    expectValues(params, raw, 'after the throw');
    ema.update(); // the scope is closed
  });

  test('an async callback keeps the averaged weights in until it settles, and its result comes out', async () => {
    const { ema, params, raw } = setup();
    const mean = averaged(ema, params);
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const running = ema.withAveragedParameters(async () => {
      await gate;
      expectValues(params, mean, 'inside the async callback after an await');
      return 'done';
    });
    expect(running).toBeInstanceOf(Promise);
    await new Promise((resolve) => setImmediate(resolve));
    expectValues(params, mean, 'while the callback is pending');
    expectError(() => ema.update(), { name: 'Error', message: [/scope/] });
    release();
    await expect(running).resolves.toBe('done');
    expectValues(params, raw, 'after the callback resolved');
  });

  test('an async callback that rejects still restores, and the rejection comes out', async () => {
    const { ema, params, raw } = setup();
    const failure = new Error('async evaluation failed');
    const running = ema.withAveragedParameters(async () => {
      await new Promise((resolve) => setImmediate(resolve));
      throw failure;
    });
    await expect(running).rejects.toBe(failure);
    expectValues(params, raw, 'after the rejection');
    ema.update();
  });

  test('explicit parameters are swapped instead of the registered ones', () => {
    const { ema, params, raw } = setup();
    const other = [new Float32Array(5), new Float64Array(1025)];
    const mean = averaged(ema, other);
    ema.withAveragedParameters(() => {
      expectValues(other, mean, 'explicit buffers inside');
      expectValues(params, raw, 'registered buffers inside');
    }, other);
    expectSame(other[0], new Float32Array(5));
  });

  test('fn must be a function', () => {
    const { ema, params } = setup();
    const before = copyAll(params);
    expectError(() => ema.withAveragedParameters(42 as never), { name: 'TypeError', message: ['fn', '42'] });
    expectValues(params, before, 'after the refused call');
    ema.update(); // no scope was opened
  });
});

describe('updates are refused while a scope is open', () => {
  test('update() and updateAsync() throw inside a scope and change nothing; after the scope they work', async () => {
    const { ema, params } = setup();
    const before = ema.stateDict();
    {
      using scope = ema.averageParameters();
      void scope;
      const refused = { name: 'Error', message: [/scope/, /update/] };
      expectError(() => ema.update(), refused);
      expectError(() => ema.update(copyAll(params)), refused);
      await expectRejection(ema.updateAsync(), refused);
      expectSameState(ema.stateDict(), before, 'inside the scope');
    }
    ema.update();
    await ema.updateAsync();
    expect(ema.numUpdates).toBe(3);
  });

  test('copyTo() and stateDict() are allowed inside a scope', () => {
    const { ema, params } = setup();
    ema.withAveragedParameters(() => {
      const targets = [new Float32Array(5), new Float64Array(1025)];
      ema.copyTo(targets);
      expectValues(targets, averaged(ema, params), 'copyTo inside the scope');
    });
  });
});
