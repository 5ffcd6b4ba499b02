// Scopes under hostile use (issue 12 items 2, 3, 4, 9): thenables whose `then` throws or misbehaves,
// overlapping scopes over different parameter lists, parameters that lose their contents while a
// scope is open, and the messages for a Proxy parameter and an EMA disposed mid-call.
import { ExponentialMovingAverage } from '../src';
import { fillRandom } from './reference';
import { copyAll, expectBitsEqual } from './helpers/state';

type Floats = Float32Array | Float64Array;

function model(seed: number): Floats[] {
  return [fillRandom(new Float32Array(5), seed), fillRandom(new Float64Array(1025), seed + 1)];
}

// An EMA over `params` whose shadows differ from them everywhere.
function setup() {
  const params = model(1);
  const ema = new ExponentialMovingAverage(params, { decay: 0.9 });
  ema.update(model(10));
  return { ema, params, raw: copyAll(params) };
}

function averaged(ema: ExponentialMovingAverage, like: readonly Floats[]): Floats[] {
  return ema.stateDict().shadowParams.map((s, i) => (like[i] instanceof Float64Array ? Float64Array.from(s) : Float32Array.from(s)));
}

function expectValues(params: readonly Floats[], expected: readonly Floats[], context: string): void {
  params.forEach((p, i) => expectBitsEqual(p, expected[i], `${context}, tensor ${i}`));
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('withAveragedParameters() with hostile thenables (item 3)', () => {
  test('a `then` getter that throws: the raw weights come back, the error comes out, update() works', () => {
    const { ema, params, raw } = setup();
    const failure = new Error('then getter');
    const hostile = Object.defineProperty({}, 'then', { get: () => { throw failure; } });
    expect(() => ema.withAveragedParameters(() => hostile)).toThrow(failure);
    expectValues(params, raw, 'after the throwing getter');
    ema.update();
  });

  test('a `then` method that throws: the raw weights come back, the error comes out, update() works', () => {
    const { ema, params, raw } = setup();
    const failure = new Error('then method');
    expect(() => ema.withAveragedParameters(() => ({ then: () => { throw failure; } }))).toThrow(failure);
    expectValues(params, raw, 'after the throwing then');
    ema.update();
  });

  test('a `then` that calls both callbacks, twice, restores once and breaks nothing', () => {
    const { ema, params, raw } = setup();
    let results: unknown[] = [];
    const thenable = {
      then(onFulfilled: (v: unknown) => unknown, onRejected: (e: unknown) => unknown) {
        results.push(onFulfilled('value'));
        params[0].fill(7); // the caller changes the weights after the scope closed
        for (const call of [() => onRejected(new Error('late')), () => onFulfilled('again')]) {
          try {
            results.push(call());
          } catch (error) {
            results.push(error);
          }
        }
        return 'then result';
      },
    };
    expect(ema.withAveragedParameters(() => thenable)).toBe('then result');
    expect(results[0]).toBe('value');
    expect(params[0]).toEqual(new Float32Array(5).fill(7)); // not restored a second time
    expectBitsEqual(params[1], raw[1], 'tensor 1');
    results = [];
    ema.update();
  });

  test('a `then` that calls back and then throws: restored once, the error comes out', () => {
    const { ema, params, raw } = setup();
    const failure = new Error('after callback');
    const thenable = {
      then(onFulfilled: (v: unknown) => unknown) {
        onFulfilled(1);
        throw failure;
      },
    };
    expect(() => ema.withAveragedParameters(() => thenable)).toThrow(failure);
    expectValues(params, raw, 'after the thenable');
    ema.update();
  });
});
