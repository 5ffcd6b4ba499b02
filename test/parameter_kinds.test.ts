// registerParameterKind(): a user's own tensor class becomes a parameter kind, used end to end like
// the built-in ones; kinds are tried by priority; bad registrations are refused. The registry is
// per module instance, and jest gives each test file its own, so these registrations stay here.
import { ExponentialMovingAverage, ParameterKind, registerParameterKind } from '../src';
import { expectError } from './helpers/state';
import { expectSame, updateStep } from './reference';

/** A user's tensor: a Float32Array inside, which commit() replaces (as a framework would). */
class Tensor {
  released = false;
  constructor(
    public data: Float32Array,
    readonly label?: string,
  ) {}
}

/** A class two kinds below both claim, told apart by the name they give its values. */
class Dual {
  readonly data = values(1);
}

// A kind's type joins what the EMA's methods accept, as the README tells users to do.
declare module '../src' {
  interface ParameterTypes {
    testTensor: Tensor;
    testDual: Dual;
  }
}

let commits = 0;
const tensorKind: ParameterKind<Tensor> = {
  label: 'Tensor',
  matches: (value): value is Tensor => value instanceof Tensor,
  ownName: (t) => t.label,
  numel: (t) => (t.released ? 0 : t.data.length),
  unusable: (t) => (t.data.length === 3 ? 'has the forbidden size 3' : undefined),
  read: (t) => t.data,
  writeTarget: (t) => new Float32Array(t.data.length),
  commit: (t, written) => {
    commits++;
    t.data = written as Float32Array;
  },
  lostContents: (t) => (t.released ? { refused: 'is a released Tensor', note: 'it was released' } : undefined),
};

const values = (...xs: number[]): Float32Array => Float32Array.from(xs);
const shadowsOf = (ema: ExponentialMovingAverage): number[][] => ema.stateDict().shadowParams.map((s) => Array.from(s));

describe('a custom parameter kind', () => {
  test('before it is registered, its values are refused with the list of accepted kinds', () => {
    expectError(() => new ExponentialMovingAverage([new Tensor(values(1))], { decay: 0.5 }), {
      name: 'TypeError',
      message: ['Expected a Float32Array/Float64Array, tf.Variable, tf.LayerVariable or { name, value } for parameters[0]', 'a Tensor'],
    });
  });

  test('once registered it works end to end: update, copyTo, store/restore, scopes, names, mixed with typed arrays', () => {
    registerParameterKind(tensorKind);
    const weight = new Tensor(values(1, 2, 4, 8), 'weight');
    const bias = new Float32Array([0.5, -0.5]);
    const ema = new ExponentialMovingAverage([weight, bias], { decay: 0.75, useNumUpdates: false });
    expect(ema.names).toEqual(['weight', null]);
    expect(shadowsOf(ema)).toEqual([[1, 2, 4, 8], [0.5, -0.5]]);

    const step = new Tensor(values(3, 3, 3, 3));
    ema.update([step, values(1, 1)]);
    const expected = [[1, 2, 4, 8].map((s) => updateStep(s, 3, 0.75, 'float32')), [0.5, -0.5].map((s) => updateStep(s, 1, 0.75, 'float32'))];
    expect(shadowsOf(ema)).toEqual(expected);
    ema.update(); // the registered tensor, read through the kind
    expected[0] = expected[0].map((s, i) => updateStep(s, [1, 2, 4, 8][i], 0.75, 'float32'));
    expected[1] = expected[1].map((s, i) => updateStep(s, [0.5, -0.5][i], 0.75, 'float32'));
    expect(shadowsOf(ema)).toEqual(expected);

    ema.store();
    commits = 0;
    ema.copyTo(); // written through writeTarget() and commit()
    expect(commits).toBe(1);
    expectSame(weight.data, Float32Array.from(expected[0]), 'weight after copyTo');
    ema.restore();
    expectSame(weight.data, values(1, 2, 4, 8), 'weight after restore');

    ema.withAveragedParameters(() => expectSame(weight.data, Float32Array.from(expected[0]), 'weight in the scope'));
    expectSame(weight.data, values(1, 2, 4, 8), 'weight after the scope');
    ema.dispose();
  });

  test("its checks run before anything changes, with the kind's own words", () => {
    const weight = new Tensor(values(1, 2), 'weight');
    const ema = new ExponentialMovingAverage([weight], { decay: 0.5 });
    const before = ema.stateDict();

    expectError(() => ema.update([new Tensor(values(1, 2, 3))]), { name: 'TypeError', message: ['parameters[0]', 'has the forbidden size 3'] });
    expectError(() => ema.update([new Tensor(values(1, 2, 3, 4))]), {
      name: 'RangeError',
      message: ['Expected 2 elements (the size of its shadow) for parameter 0', 'but received 4'],
    });
    weight.released = true;
    expectError(() => ema.update(), { name: 'RangeError', message: ["parameter 0 (\"weight\")", 'received 0 (it was released)'] });
    expectError(() => new ExponentialMovingAverage([weight], { decay: 0.5 }), { name: 'TypeError', message: ['parameters[0] is a released Tensor'] });
    expect(ema.stateDict().shadowParams.map((s) => Array.from(s))).toEqual(before.shadowParams.map((s) => Array.from(s)));
    expect(ema.numUpdates).toBe(0);
    ema.dispose();
  });
});

describe('registerParameterKind()', () => {
  const dualKind = (label: string): ParameterKind<Dual> => ({
    label,
    matches: (value): value is Dual => value instanceof Dual,
    ownName: () => label,
    numel: (d) => d.data.length,
    unusable: () => undefined,
    read: (d) => d.data,
    writeTarget: (d) => d.data,
    commit: () => undefined,
  });
  const winner = (): string | null => {
    const ema = new ExponentialMovingAverage([new Dual()], { decay: 0.5 });
    const [name] = ema.names;
    ema.dispose();
    return name;
  };

  test('kinds are tried by priority, highest first; ties go to the kind registered first; re-registering changes the priority', () => {
    const first = dualKind('dual-first');
    const second = dualKind('dual-second');
    registerParameterKind(first, 5);
    registerParameterKind(second, 5);
    expect(winner()).toBe('dual-first');
    registerParameterKind(second, 6);
    expect(winner()).toBe('dual-second');
    registerParameterKind(first, 40); // above the built-in kinds too
    expect(winner()).toBe('dual-first');
  });

  test('refuses what is not a kind, a priority that is not a finite number, and a second kind under a taken label', () => {
    expectError(() => registerParameterKind(null as unknown as ParameterKind), { name: 'TypeError', message: ['a ParameterKind', 'for kind', 'null'] });
    const { commit: _, ...noCommit } = dualKind('incomplete');
    expectError(() => registerParameterKind(noCommit as unknown as ParameterKind), { name: 'TypeError', message: ['commit', 'for kind'] });
    expectError(() => registerParameterKind(dualKind('p'), NaN), { name: 'RangeError', message: ['a finite number for priority', 'NaN'] });
    expectError(() => registerParameterKind(dualKind('p'), '1' as unknown as number), { name: 'TypeError', message: ['priority', '"1"'] });
    registerParameterKind(tensorKind); // the same kind again: harmless
    expectError(() => registerParameterKind({ ...tensorKind }), { name: 'Error', message: ['a different parameter kind is already registered as "Tensor"'] });
  });
});
