// Every error the contract promises, with its type and what its message names, and for each failing
// call on a live EMA the all-or-nothing check: stateDict() (shadows, backup, counters, decay) and
// the parameter buffers are bit for bit what they were before the call.
import { EmaOptions, ExponentialMovingAverage } from '../src';
import { fillRandom } from './reference';
import {
  expectError,
  expectFailureChangesNothing,
  expectRejection,
  expectSameState,
} from './helpers/state';

function detach(array: Float32Array | Float64Array): void {
  const buffer = array.buffer as ArrayBuffer;
  structuredClone(buffer, { transfer: [buffer] });
}

// An EMA with two named parameters, a few updates behind it and a store()d backup, so that every
// part of the state would show a change.
function setup(options: Partial<EmaOptions> = {}) {
  const weight = fillRandom(new Float32Array(6), 1);
  const bias = fillRandom(new Float64Array(3), 2);
  const ema = new ExponentialMovingAverage(
    [{ name: 'fc.weight', value: weight }, { name: 'fc.bias', value: bias }],
    { decay: 0.9, ...options },
  );
  ema.update([fillRandom(new Float32Array(6), 3), fillRandom(new Float64Array(3), 4)]);
  ema.update([fillRandom(new Float32Array(6), 5), fillRandom(new Float64Array(3), 6)]);
  ema.store();
  return { ema, weight, bias, params: [weight, bias] };
}

describe('constructor options', () => {
  const param = [new Float32Array(2)];
  test.each([
    [NaN, 'RangeError', 'NaN'],
    [Infinity, 'RangeError', 'Infinity'],
    [-Infinity, 'RangeError', '-Infinity'],
    [-0.1, 'RangeError', '-0.1'],
    [1.5, 'RangeError', '1.5'],
    ['0.9', 'TypeError', '"0.9"'],
    [undefined, 'TypeError', 'undefined'],
    [null, 'TypeError', 'null'],
  ])('decay %p is a %s naming decay and the value', (decay, name, shown) => {
    expectError(() => new ExponentialMovingAverage(param, { decay } as unknown as EmaOptions), {
      name,
      message: [/\bdecay\b/, shown],
    });
  });

  test('missing options is a TypeError that asks for decay', () => {
    const create = ExponentialMovingAverage as unknown as new (p: unknown) => unknown;
    expectError(() => new create(param), { name: 'TypeError', message: ['decay', 'undefined'] });
  });

  test('useNumUpdates, dtype and device are checked and named', () => {
    const bad: [Partial<Record<keyof EmaOptions, unknown>>, string, string[]][] = [
      [{ useNumUpdates: 'yes' }, 'TypeError', ['useNumUpdates', '"yes"']],
      [{ dtype: 'float8' }, 'RangeError', ['dtype', 'float8']],
      [{ dtype: 16 }, 'TypeError', ['dtype', '16']],
      [{ device: 'tpu' }, 'RangeError', ['device', 'tpu']],
      [{ device: 'cuda:x' }, 'RangeError', ['device', 'cuda:x']],
    ];
    for (const [options, name, parts] of bad) {
      expectError(() => new ExponentialMovingAverage(param, { decay: 0.9, ...options } as EmaOptions), { name, message: parts });
    }
  });

  test("device 'cuda' in a build without a usable GPU throws an Error naming the device and why", () => {
    for (const device of ['cuda', 'cuda:0'] as const) {
      expectError(() => new ExponentialMovingAverage(param, { decay: 0.9, device }), {
        name: 'Error',
        message: [`'${device}'`, /not available: \S+/],
      });
    }
  });

  test('parameters must be an iterable of float typed arrays or { name, value }', () => {
    const cases: [unknown, string, string[]][] = [
      [42, 'TypeError', ['parameters', '42']],
      [new Float32Array(3), 'TypeError', ['parameters', 'Float32Array']],
      [[new Int32Array(3)], 'TypeError', ['parameters[0]', 'Int32Array']],
      [[new Float32Array(1), new Uint8Array(3)], 'TypeError', ['parameters[1]', 'Uint8Array']],
      [[new BigInt64Array(1)], 'TypeError', ['parameters[0]', 'BigInt64Array']],
      [[{ name: 'w', value: new Int16Array(2) }], 'TypeError', ['parameters[0]', 'Int16Array']],
      [[{ name: 7, value: new Float32Array(2) }], 'TypeError', ['parameters[0]']],
      [[[1, 2, 3]], 'TypeError', ['parameters[0]', 'array']],
    ];
    for (const [parameters, name, parts] of cases) {
      expectError(() => new ExponentialMovingAverage(parameters as Float32Array[], { decay: 0.9 }), { name, message: parts });
    }
  });
});

describe('failing calls name the problem and change nothing', () => {
  test('assigning an invalid decay throws naming decay and keeps the old one', () => {
    const { ema, params } = setup();
    for (const [value, name] of [[NaN, 'RangeError'], [2, 'RangeError'], ['0.5', 'TypeError']] as const) {
      expectFailureChangesNothing(ema, params, () => {
        (ema as { decay: unknown }).decay = value;
      }, { name, message: ['decay'] });
    }
    expect(ema.decay).toBe(0.9);
  });

  test('a wrong number of explicit parameters names both counts, for every operation', () => {
    const { ema, params } = setup();
    const one = [new Float32Array(6)];
    const three = [new Float32Array(6), new Float64Array(3), new Float32Array(1)];
    for (const list of [one, three]) {
      for (const call of [
        () => ema.update(list), () => ema.copyTo(list), () => ema.store(list), () => ema.restore(list),
        () => ema.averageParameters(list), () => ema.withAveragedParameters(() => 0, list),
      ]) {
        expectFailureChangesNothing(ema, [...params, ...list], call, {
          name: 'RangeError',
          message: [/\b2 parameters\b/, new RegExp(`received ${list.length}\\b`)],
        });
      }
    }
  });

  test('a wrong size names the index, both sizes and the name of an explicitly named parameter', () => {
    const { ema, params } = setup();
    const list = [new Float32Array(6), { name: 'fc.bias', value: new Float64Array(4) }];
    for (const call of [() => ema.update(list), () => ema.copyTo(list), () => ema.store(list), () => ema.restore(list)]) {
      expectFailureChangesNothing(ema, params, call, { name: 'RangeError', message: ['1', 'fc.bias', /\b3\b/, /\b4\b/] });
    }
  });

  test("a wrong size of an unnamed explicit array still names the shadow's registered name", () => {
    const { ema, params } = setup();
    expectFailureChangesNothing(ema, params, () => ema.update([new Float32Array(6), new Float64Array(4)]), {
      name: 'RangeError',
      message: ['parameter 1', 'fc.bias', /\b3\b/, /\b4\b/],
    });
  });

  test('a size mismatch in the last parameter leaves earlier shadows and numUpdates untouched', () => {
    const { ema, params } = setup();
    expectFailureChangesNothing(ema, params, () => ema.update([new Float32Array(6).fill(100), new Float64Array(2)]), {
      name: 'RangeError',
      message: ['parameter 1'],
    });
    expect(ema.numUpdates).toBe(2);
  });

  test('a registered buffer that was detached is reported as detached, and nothing changes', () => {
    const { ema, weight, bias } = setup();
    detach(bias);
    for (const call of [() => ema.update(), () => ema.copyTo(), () => ema.store(), () => ema.restore(), () => ema.averageParameters()]) {
      expectFailureChangesNothing(ema, [weight], call, {
        name: 'RangeError',
        message: ['parameter 1', 'fc.bias', /detached/, /\b3\b/, /\b0\b/],
      });
    }
    ema.update([weight, new Float64Array(3)]); // explicit parameters still work
    expect(ema.numUpdates).toBe(3);
  });

  test('an explicit buffer that was detached is reported as detached', () => {
    const { ema, params } = setup();
    const gone = new Float32Array(6);
    detach(gone);
    expectFailureChangesNothing(ema, params, () => ema.update([gone, new Float64Array(3)]), {
      name: 'RangeError',
      message: ['parameter 0', /detached/, /\b6\b/],
    });
  });

  test('non-float typed arrays are refused with a TypeError naming the position and the type', () => {
    const { ema, params } = setup();
    for (const wrong of [new Int32Array(3), new Uint8Array(3), new Float32Array(3).buffer, [0, 0, 0]]) {
      expectFailureChangesNothing(ema, params, () => ema.update([new Float32Array(6), wrong as unknown as Float64Array]), {
        name: 'TypeError',
        message: ['parameters[1]'],
      });
    }
    expectFailureChangesNothing(ema, params, () => ema.update(7 as unknown as Float32Array[]), {
      name: 'TypeError',
      message: ['parameters', '7'],
    });
  });

  test('restore() with nothing stored throws saying so', () => {
    const weight = new Float32Array([1, 2]);
    const ema = new ExponentialMovingAverage([weight], { decay: 0.9 });
    expectFailureChangesNothing(ema, [weight], () => ema.restore(), { name: 'Error', message: [/nothing.*stored/i, 'store()'] });
  });

  test('to() rejects bad arguments by name, and an unavailable device names itself and the reason', () => {
    const { ema, params } = setup({ dtype: 'float32' });
    const cases: [unknown, string, (string | RegExp)[]][] = [
      [undefined, 'TypeError', ['options']],
      [{ dtype: 'int8' }, 'RangeError', ['dtype', 'int8']],
      [{ dtype: 5 }, 'TypeError', ['dtype', '5']],
      [{ device: 'gpu' }, 'RangeError', ['device', 'gpu']],
      [{ device: 'cuda' }, 'Error', ["'cuda'", /not available: \S+/]],
      [{ device: 'cuda:1', dtype: 'float16' }, 'Error', ["'cuda:1'", /not available/]],
      [{ device: 'cuda:0', dtype: 'bogus' }, 'RangeError', ['dtype']],
    ];
    for (const [options, name, message] of cases) {
      expectFailureChangesNothing(ema, params, () => ema.to(options as { dtype: 'float16' }), { name, message });
    }
    expect(ema.dtype).toBe('float32');
    expect(ema.device).toBe('cpu');
  });
});

describe('loadStateDict validates everything first', () => {
  type Mutation = [string, (state: Record<string, unknown>) => void, string, (string | RegExp)[]];
  const mutations: Mutation[] = [
    ['decay above 1', (s) => { s.decay = 1.01; }, 'RangeError', ['state.decay', '1.01']],
    ['decay NaN', (s) => { s.decay = NaN; }, 'RangeError', ['state.decay', 'NaN']],
    ['decay a string', (s) => { s.decay = '0.5'; }, 'TypeError', ['state.decay']],
    ['negative numUpdates', (s) => { s.numUpdates = -1; }, 'TypeError', ['state.numUpdates', '-1']],
    ['fractional numUpdates', (s) => { s.numUpdates = 2.5; }, 'TypeError', ['state.numUpdates', '2.5']],
    ['numUpdates missing', (s) => { delete s.numUpdates; }, 'TypeError', ['state.numUpdates', 'undefined']],
    ['shadowParams not an array', (s) => { s.shadowParams = new Float32Array(6); }, 'TypeError', ['state.shadowParams']],
    ['one tensor too few', (s) => { (s.shadowParams as unknown[]).pop(); }, 'RangeError', ['state.shadowParams', /\b2\b/, /\b1\b/]],
    ['an integer tensor', (s) => { (s.shadowParams as unknown[])[1] = new Int32Array(3); }, 'TypeError', ['state.shadowParams[1]', 'Int32Array']],
    ['a wrong size', (s) => { (s.shadowParams as unknown[])[1] = new Float64Array(5); }, 'RangeError', ['state.shadowParams[1]', /\b3\b/, /\b5\b/]],
    ['collected wrong size', (s) => { (s.collectedParams as unknown[])[0] = new Float32Array(7); }, 'RangeError', ['state.collectedParams[0]', /\b6\b/, /\b7\b/]],
    ['collected not an array', (s) => { s.collectedParams = 3; }, 'TypeError', ['state.collectedParams']],
    ['names of the wrong length', (s) => { s.names = ['a']; }, 'TypeError', ['state.names']],
    ['a name that is a number', (s) => { s.names = ['a', 5]; }, 'TypeError', ['state.names[1]']],
    ['an unknown dtype', (s) => { s.dtype = 'float8'; }, 'RangeError', ['state.dtype', 'float8']],
  ];

  // A valid state whose shadows, backup, decay and counter all differ from the EMA's, so that a
  // partial load before the failing field would show.
  function validState(): Record<string, unknown> {
    return {
      decay: 0.5,
      numUpdates: 40,
      shadowParams: [new Float32Array(6).fill(7), new Float64Array(3).fill(8)],
      collectedParams: [new Float32Array(6).fill(9), new Float64Array(3).fill(10)],
      names: ['a', null],
      dtype: 'float32',
    };
  }

  test.each(mutations)('%s: throws naming the field and index, and loads nothing', (_, mutate, name, message) => {
    const { ema, params } = setup();
    const state = validState();
    mutate(state);
    expectFailureChangesNothing(ema, params, () => ema.loadStateDict(state as never), { name, message });
  });

  test('a non-object state is a TypeError naming state', () => {
    const { ema, params } = setup();
    for (const state of [null, undefined, 3, 'state']) {
      expectFailureChangesNothing(ema, params, () => ema.loadStateDict(state as never), { name: 'TypeError', message: ['state'] });
    }
  });

  test('the valid state loads (the mutations above are the only problems)', () => {
    const { ema } = setup();
    ema.loadStateDict(validState() as never);
    expect(ema.stateDict()).toMatchObject({ decay: 0.5, numUpdates: 40 });
    expect(Array.from(ema.stateDict().collectedParams![1])).toEqual([10, 10, 10]);
  });
});

describe('disposed EMAs and updateAsync', () => {
  test('every operation on a disposed EMA throws saying it was disposed; dispose() may be repeated', async () => {
    const { ema, params } = setup();
    ema.dispose();
    expect(ema.disposed).toBe(true);
    const disposed = { name: 'Error', message: [/disposed/] };
    for (const call of [
      () => ema.update(), () => ema.update(params), () => ema.copyTo(), () => ema.store(), () => ema.restore(),
      () => ema.averageParameters(), () => ema.withAveragedParameters(() => 0), () => ema.to({ dtype: 'float16' }),
      () => ema.stateDict(), () => ema.loadStateDict({} as never), () => ema.dtype,
    ]) {
      expectError(call, disposed);
    }
    await expectRejection(ema.updateAsync(), disposed);
    ema.dispose();
    ema[Symbol.dispose]();
  });

  test('validation errors of updateAsync() come back as a rejected promise and change nothing', async () => {
    const { ema, params, bias } = setup();
    const before = ema.stateDict();
    const promise = ema.updateAsync([new Float32Array(6), new Float64Array(1)]);
    expect(promise).toBeInstanceOf(Promise);
    await expectRejection(promise, { name: 'RangeError', message: ['parameter 1', /\b3\b/, /\b1\b/] });
    detach(bias);
    await expectRejection(ema.updateAsync(), { name: 'RangeError', message: [/detached/] });
    await expectRejection(ema.updateAsync([new Int8Array(6), new Float64Array(3)] as never), { name: 'TypeError', message: ['parameters[0]'] });
    expectSameState(ema.stateDict(), before);
    ema.update([params[0], new Float64Array(3)]); // and the EMA is not left busy
  });

  test('while an updateAsync() is in flight, synchronous methods and dispose() throw asking to await it', async () => {
    const { ema, params } = setup();
    const pending = ema.updateAsync();
    const busy = { name: 'Error', message: [/updateAsync\(\)/, /await/] };
    for (const call of [
      () => ema.update(), () => ema.copyTo(), () => ema.store(), () => ema.restore(), () => ema.averageParameters(),
      () => ema.to({ dtype: 'float16' }), () => ema.stateDict(), () => ema.loadStateDict({} as never), () => ema.dispose(),
    ]) {
      expectError(call, busy);
    }
    await pending;
    expect(ema.numUpdates).toBe(3);
    ema.copyTo(params);
    ema.dispose();
  });
});
