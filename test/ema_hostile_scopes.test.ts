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

describe('overlapping scopes over different parameter lists (item 2)', () => {
  test.each([
    ['opening order', [0, 1]],
    ['reverse order', [1, 0]],
  ] as const)('registered model then a replica, closed in %s: each gets its own raw weights back', (_, order) => {
    const { ema, params, raw } = setup();
    const replica = model(20);
    const replicaRaw = copyAll(replica);
    const scopes = [ema.averageParameters(), ema.averageParameters(replica)];
    expectValues(params, averaged(ema, params), 'model inside');
    expectValues(replica, averaged(ema, replica), 'replica inside');
    for (const i of order) scopes[i].restore();
    expectValues(params, raw, 'the model after both scopes');
    expectValues(replica, replicaRaw, 'the replica after both scopes');
    ema.update();
  });

  test.each([
    ['opening order', [5, 30]],
    ['reverse order', [30, 5]],
  ] as const)('two concurrent withAveragedParameters() over different lists finishing in %s', async (_, delays) => {
    const { ema, params, raw } = setup();
    const replica = model(20);
    const replicaRaw = copyAll(replica);
    const first = ema.withAveragedParameters(async () => {
      await sleep(delays[0]);
      return 'first';
    });
    const second = ema.withAveragedParameters(async () => {
      await sleep(delays[1]);
      return 'second';
    }, replica);
    await expect(Promise.all([first, second])).resolves.toEqual(['first', 'second']);
    expectValues(params, raw, 'the model after both');
    expectValues(replica, replicaRaw, 'the replica after both');
    ema.update();
  });

  test('a scope over the model between two scopes over a replica still inherits the right backup', () => {
    const { ema, params, raw } = setup();
    const replica = model(20);
    const replicaRaw = copyAll(replica);
    const a = ema.averageParameters();
    const b = ema.averageParameters(replica);
    const c = ema.averageParameters();
    a.restore(); // c inherits the raw model weights
    expectValues(params, averaged(ema, params), 'model after closing the outer scope');
    b.restore();
    expectValues(replica, replicaRaw, 'replica');
    c.restore();
    expectValues(params, raw, 'model');
    ema.update();
  });

  test('a scope over a list that shares only some parameters with an open scope is refused', () => {
    const { ema, params, raw } = setup();
    const scope = ema.averageParameters();
    expect(() => ema.averageParameters([params[0], new Float64Array(1025)])).toThrow(/some of the parameters of an open/);
    scope.restore();
    expectValues(params, raw, 'after the refused scope');
    ema.update();
  });
});

describe('a scope whose parameters lost their contents still closes (item 4)', () => {
  test('a detached buffer: the other parameters are restored, the error names it, the EMA stays usable', () => {
    const { ema, params, raw } = setup();
    const scope = ema.averageParameters([{ name: 'w', value: params[0] }, { name: 'b', value: params[1] }]);
    const taken = params[0].buffer as ArrayBuffer;
    structuredClone(taken, { transfer: [taken] });
    expect(() => scope.restore()).toThrow(/parameter 0 \("w"\).*detached/s);
    expect(scope.closed).toBe(true);
    expectBitsEqual(params[1], raw[1], 'the healthy parameter, restored');
    scope.restore(); // closed: harmless
    ema.update([new Float32Array(5), new Float64Array(1025)]);
    expect(ema.numUpdates).toBe(2);
  });

  test('the out-of-order case: the scope that inherits the backup closes too', () => {
    const { ema, params, raw } = setup();
    const outer = ema.averageParameters();
    const inner = ema.averageParameters();
    outer.restore();
    const taken = params[1].buffer as ArrayBuffer;
    structuredClone(taken, { transfer: [taken] });
    expect(() => inner.restore()).toThrow(/parameter 1/);
    expect(inner.closed).toBe(true);
    expectBitsEqual(params[0], raw[0], 'tensor 0');
    ema.update([new Float32Array(5), new Float64Array(1025)]);
  });
});

describe('messages (item 9)', () => {
  test('a Proxy around a Float32Array is named as a Proxy', () => {
    const { ema } = setup();
    const proxy = new Proxy(new Float32Array(5), {});
    let message = '';
    try {
      ema.update([proxy, new Float64Array(1025)]);
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toMatch(/Proxy/);
    expect(message).toMatch(/proxies are not accepted/);
    expect(message).not.toMatch(/received a Float32Array/);
  });

  test('an iterator that disposes the EMA mid-call: the message says the EMA was disposed', () => {
    for (const call of ['update', 'copyTo', 'store', 'averageParameters'] as const) {
      const { ema } = setup();
      function* disposing() {
        yield new Float32Array(5);
        ema.dispose();
        yield new Float64Array(1025);
      }
      let message = '';
      try {
        (ema[call] as (p: Iterable<Floats>) => unknown)(disposing());
      } catch (error) {
        message = (error as Error).message;
      }
      expect(message).toMatch(/ExponentialMovingAverage was disposed during the call/);
      expect(message).not.toMatch(/ShadowArena/);
    }
  });
});
