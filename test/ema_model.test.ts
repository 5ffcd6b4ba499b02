// Model-based test of the whole facade: random sequences of operations on one EMA (updates sync and
// async, copyTo, store/restore, scopes opened and closed in any order, to(), state dicts,
// serialize/deserialize, parameter changes, and calls that must fail), each checked step by step
// against a plain JavaScript model of the contract that computes every update as the kernels do
// (reference.ts's updateStep). A failing call must throw and leave every observable state as it was.
import * as fc from 'fast-check';
import { AveragedParametersScope, EmaStateDict, ExponentialMovingAverage } from '../src';
import { effectiveDecay, random, updateStep } from './reference';
import { expectError, tagOf } from './helpers/state';

type DType = 'float32' | 'float64';
type Kind = 'f32' | 'f64';
type Floats = Float32Array | Float64Array;

const roundTo = (dtype: DType, x: number): number => (dtype === 'float32' ? Math.fround(x) : x);
const kindDType = (kind: Kind): DType => (kind === 'f32' ? 'float32' : 'float64');
const roundKind = (kind: Kind, x: number): number => roundTo(kindDType(kind), x);

// Mostly ordinary values over eight orders of magnitude; now and then a zero of either sign, a
// float32 subnormal, a value near the float32 limit, an infinity or a NaN.
const SPECIALS = [0, -0, 1, -1, 0.5, 1e-40, -3e38, 3e38, Infinity, -Infinity, NaN];
function valuesFor(seed: number, n: number): number[] {
  const next = random(seed);
  return Array.from({ length: n }, () => {
    if (next() < 0.04) return SPECIALS[Math.floor(next() * SPECIALS.length)];
    return (next() - 0.5) * 10 ** Math.floor(next() * 8 - 4);
  });
}

interface TensorSetup {
  kind: Kind;
  size: number;
  named: boolean;
  seed: number;
}

interface Setup {
  decay: number;
  useNumUpdates: boolean;
  dtype: DType;
  tensors: TensorSetup[];
}

interface Backup {
  dtype: DType;
  values: number[][];
}

/** What loading a state dict or a checkpoint brings back. */
interface Snapshot {
  dtype: DType;
  decay: number;
  numUpdates: number | null;
  shadows: number[][];
  backup: Backup | null;
}

interface Model {
  dtype: DType;
  decay: number;
  numUpdates: number | null;
  kinds: Kind[];
  sizes: number[];
  names: (string | null)[];
  shadows: number[][];
  backup: Backup | null;
  params: number[][];
  /** Open scopes, oldest first: the values each will put back. */
  scopes: number[][][];
  savedDict: Snapshot | null;
  savedBytes: Snapshot | null;
}

interface Real {
  ema: ExponentialMovingAverage;
  params: Floats[];
  scopes: AveragedParametersScope[];
  savedDict: EmaStateDict | null;
  savedBytes: Uint8Array | null;
}

const clone = (values: number[][]): number[][] => values.map((v) => [...v]);
const snapshotOf = (m: Model): Snapshot => ({
  dtype: m.dtype,
  decay: m.decay,
  numUpdates: m.numUpdates,
  shadows: clone(m.shadows),
  backup: m.backup && { dtype: m.backup.dtype, values: clone(m.backup.values) },
});
// A backup holds the raw weights bit for bit: float64 when the shadows or any parameter are.
const backupDType = (m: Model, arrays: DType[]): DType =>
  m.dtype === 'float64' || arrays.includes('float64') ? 'float64' : 'float32';
const averagedFor = (m: Model): number[][] => m.shadows.map((s, i) => s.map((v) => roundKind(m.kinds[i], v)));

function modelUpdate(m: Model): void {
  const next = m.numUpdates === null ? null : m.numUpdates + 1;
  const d = effectiveDecay(m.decay, next);
  m.shadows = m.shadows.map((s, i) => s.map((v, j) => updateStep(v, m.params[i][j], d, m.dtype)));
  m.numUpdates = next;
}

function expectValues(actual: ArrayLike<number>, expected: readonly number[], context: string): void {
  if (actual.length !== expected.length) throw new Error(`${context}: length ${actual.length}, expected ${expected.length}`);
  for (let i = 0; i < expected.length; i++) {
    if (!Object.is(actual[i], expected[i])) throw new Error(`${context}: element ${i} is ${actual[i]}, expected ${expected[i]}`);
  }
}

const arrayTag = (dtype: DType): string => (dtype === 'float64' ? 'Float64Array' : 'Float32Array');

/** Everything observable agrees with the model: options, counters, shadows, backup, parameters. */
function expectAgrees(m: Model, r: Real): void {
  const { ema } = r;
  expect(ema.decay).toBe(m.decay);
  expect(ema.numUpdates).toBe(m.numUpdates);
  expect(ema.dtype).toBe(m.dtype);
  expect(ema.sizes).toEqual(m.sizes);
  expect(ema.currentDecay).toBe(effectiveDecay(m.decay, m.numUpdates === null ? null : m.numUpdates + 1));
  const state = ema.stateDict();
  expect(state.names).toEqual(m.names);
  expect(state.dtype).toBe(m.dtype);
  expect(state.decay).toBe(m.decay);
  expect(state.numUpdates).toBe(m.numUpdates);
  state.shadowParams.forEach((s, i) => {
    expect(tagOf(s)).toBe(arrayTag(m.dtype));
    expectValues(s, m.shadows[i], `shadow ${i}`);
  });
  if (m.backup === null) {
    expect(state.collectedParams).toBeNull();
  } else {
    const backup = m.backup;
    expect(state.collectedParams).not.toBeNull();
    state.collectedParams!.forEach((c, i) => {
      expect(tagOf(c)).toBe(arrayTag(backup.dtype));
      expectValues(c, backup.values[i], `backup ${i}`);
    });
  }
  r.params.forEach((p, i) => expectValues(p, m.params[i], `parameter ${i}`));
  expect(r.scopes.map((s) => s.closed)).toEqual(m.scopes.map(() => false));
}

type Command = fc.AsyncCommand<Model, Real>;

// Each command decides from the model whether the call must succeed or fail (updates refuse while a
// scope is open, restore() needs a backup), runs it, updates the model, and compares everything.
abstract class Step implements Command {
  check(_m: Readonly<Model>): boolean {
    return true;
  }
  async run(m: Model, r: Real): Promise<void> {
    await this.apply(m, r);
    expectAgrees(m, r);
  }
  abstract apply(m: Model, r: Real): void | Promise<void>;
  abstract toString(): string;
}

const SCOPE_OPEN = { name: 'Error', message: ['averageParameters() scope is open'] };

class Update extends Step {
  constructor(readonly explicit: boolean) {
    super();
  }
  apply(m: Model, r: Real): void {
    const args = this.explicit ? [r.params] : [];
    if (m.scopes.length > 0) {
      expectError(() => r.ema.update(...args), SCOPE_OPEN);
      return;
    }
    r.ema.update(...args);
    modelUpdate(m);
  }
  toString(): string {
    return `update(${this.explicit ? 'params' : ''})`;
  }
}

class UpdateAsync extends Step {
  constructor(readonly calls: 1 | 2) {
    super();
  }
  async apply(m: Model, r: Real): Promise<void> {
    const promises = Array.from({ length: this.calls }, () => r.ema.updateAsync());
    // Synchronous operations refuse while async work is queued.
    expectError(() => r.ema.copyTo(), { name: 'Error', message: ['copyTo(): an updateAsync()', 'still running'] });
    const settled = await Promise.allSettled(promises);
    if (m.scopes.length > 0) {
      for (const s of settled) {
        expect(s.status).toBe('rejected');
        expect(((s as PromiseRejectedResult).reason as Error).message).toContain('averageParameters() scope is open');
      }
      return;
    }
    for (const s of settled) expect(s.status).toBe('fulfilled');
    for (let i = 0; i < this.calls; i++) modelUpdate(m);
  }
  toString(): string {
    return `updateAsync() x${this.calls}`;
  }
}

class CopyTo extends Step {
  constructor(readonly explicit: boolean) {
    super();
  }
  apply(m: Model, r: Real): void {
    r.ema.copyTo(...(this.explicit ? [r.params] : []));
    m.params = averagedFor(m);
  }
  toString(): string {
    return `copyTo(${this.explicit ? 'params' : ''})`;
  }
}

/** copyTo() into fresh buffers of another type: values converted to each buffer's type. */
class CopyToFresh extends Step {
  constructor(readonly kinds: Kind[]) {
    super();
  }
  apply(m: Model, r: Real): void {
    const targets = m.sizes.map((n, i) => (this.kinds[i % this.kinds.length] === 'f32' ? new Float32Array(n) : new Float64Array(n)));
    r.ema.copyTo(targets);
    targets.forEach((t, i) => {
      const kind: Kind = t instanceof Float32Array ? 'f32' : 'f64';
      expectValues(t, m.shadows[i].map((v) => roundKind(kind, v)), `fresh target ${i}`);
    });
  }
  toString(): string {
    return `copyTo(fresh ${this.kinds.join(',')})`;
  }
}

class Store extends Step {
  constructor(readonly explicit: boolean) {
    super();
  }
  apply(m: Model, r: Real): void {
    r.ema.store(...(this.explicit ? [r.params] : []));
    m.backup = { dtype: backupDType(m, m.kinds.map(kindDType)), values: clone(m.params) };
  }
  toString(): string {
    return `store(${this.explicit ? 'params' : ''})`;
  }
}

class Restore extends Step {
  constructor(readonly explicit: boolean) {
    super();
  }
  apply(m: Model, r: Real): void {
    const args = this.explicit ? [r.params] : [];
    const backup = m.backup;
    if (backup === null) {
      expectError(() => r.ema.restore(...args), { name: 'Error', message: ['restore(): nothing is stored'] });
      return;
    }
    r.ema.restore(...args);
    m.params = backup.values.map((v, i) => v.map((x) => roundKind(m.kinds[i], x)));
  }
  toString(): string {
    return `restore(${this.explicit ? 'params' : ''})`;
  }
}

class OpenScope extends Step {
  constructor(readonly explicit: boolean) {
    super();
  }
  apply(m: Model, r: Real): void {
    r.scopes.push(r.ema.averageParameters(...(this.explicit ? [r.params] : [])));
    m.scopes.push(clone(m.params));
    m.params = averagedFor(m);
  }
  toString(): string {
    return `averageParameters(${this.explicit ? 'params' : ''})`;
  }
}

// Closing the innermost scope puts its raw values back; closing another one writes nothing and hands
// its raw values to the scope opened just after it.
class CloseScope extends Step {
  constructor(readonly pick: number) {
    super();
  }
  override check(m: Readonly<Model>): boolean {
    return m.scopes.length > 0;
  }
  apply(m: Model, r: Real): void {
    const index = this.pick % m.scopes.length;
    const [scope] = r.scopes.splice(index, 1);
    scope.restore();
    expect(scope.closed).toBe(true);
    scope[Symbol.dispose](); // closing twice is harmless
    const [values] = m.scopes.splice(index, 1);
    if (index === m.scopes.length) m.params = values.map((v, i) => v.map((x) => roundKind(m.kinds[i], x)));
    else m.scopes[index] = values;
  }
  toString(): string {
    return `closeScope(#${this.pick})`;
  }
}

class WithAveraged extends Step {
  constructor(readonly fails: boolean) {
    super();
  }
  apply(m: Model, r: Real): void {
    const inside = averagedFor(m);
    const run = (): string => {
      r.params.forEach((p, i) => expectValues(p, inside[i], `parameter ${i} inside withAveragedParameters`));
      if (this.fails) throw new Error('callback failed');
      return 'result';
    };
    if (this.fails) expectError(() => r.ema.withAveragedParameters(run), { name: 'Error', message: ['callback failed'], code: null });
    else expect(r.ema.withAveragedParameters(run)).toBe('result');
  }
  toString(): string {
    return `withAveragedParameters(${this.fails ? 'throws' : 'returns'})`;
  }
}

class To extends Step {
  constructor(readonly dtype: DType) {
    super();
  }
  apply(m: Model, r: Real): void {
    expect(r.ema.to({ dtype: this.dtype })).toBe(r.ema);
    m.shadows = m.shadows.map((s) => s.map((v) => roundTo(this.dtype, v)));
    m.dtype = this.dtype;
  }
  toString(): string {
    return `to({ dtype: '${this.dtype}' })`;
  }
}

class SetDecay extends Step {
  constructor(readonly value: number) {
    super();
  }
  apply(m: Model, r: Real): void {
    if (!(this.value >= 0 && this.value <= 1)) {
      expectError(() => (r.ema.decay = this.value), { name: 'RangeError', message: ['decay', String(this.value)] });
      return;
    }
    r.ema.decay = this.value;
    m.decay = this.value;
  }
  toString(): string {
    return `decay = ${this.value}`;
  }
}

class TakeStateDict extends Step {
  apply(m: Model, r: Real): void {
    r.savedDict = r.ema.stateDict();
    // What stateDict() returns is a copy: writing into it changes nothing (checked after this step).
    r.ema.stateDict().shadowParams.forEach((s) => s.fill(42));
    m.savedDict = snapshotOf(m);
  }
  toString(): string {
    return 'stateDict()';
  }
}

class LoadStateDict extends Step {
  override check(m: Readonly<Model>): boolean {
    return m.savedDict !== null;
  }
  apply(m: Model, r: Real): void {
    const saved = m.savedDict!;
    r.ema.loadStateDict(r.savedDict!);
    m.shadows = saved.shadows.map((s) => s.map((v) => roundTo(m.dtype, v)));
    m.backup = saved.backup && { dtype: backupDType(m, [saved.backup.dtype]), values: clone(saved.backup.values) };
    m.decay = saved.decay;
    m.numUpdates = saved.numUpdates;
  }
  toString(): string {
    return 'loadStateDict(saved)';
  }
}

class Serialize extends Step {
  apply(m: Model, r: Real): void {
    r.savedBytes = r.ema.serialize();
    m.savedBytes = snapshotOf(m);
  }
  toString(): string {
    return 'serialize()';
  }
}

class Deserialize extends Step {
  override check(m: Readonly<Model>): boolean {
    return m.savedBytes !== null;
  }
  apply(m: Model, r: Real): void {
    const saved = m.savedBytes!;
    r.ema.deserialize(r.savedBytes!);
    // Shadows convert to this EMA's dtype; the backup keeps the dtype it was saved in.
    m.shadows = saved.shadows.map((s) => s.map((v) => roundTo(m.dtype, v)));
    m.backup = saved.backup && { dtype: saved.backup.dtype, values: clone(saved.backup.values) };
    m.decay = saved.decay;
    m.numUpdates = saved.numUpdates;
  }
  toString(): string {
    return 'deserialize(saved)';
  }
}

class Mutate extends Step {
  constructor(readonly pick: number, readonly seed: number) {
    super();
  }
  override check(m: Readonly<Model>): boolean {
    return m.sizes.length > 0;
  }
  apply(m: Model, r: Real): void {
    const index = this.pick % m.sizes.length;
    const values = valuesFor(this.seed, m.sizes[index]);
    r.params[index].set(values);
    m.params[index] = values.map((v) => roundKind(m.kinds[index], v));
  }
  toString(): string {
    return `mutate(#${this.pick}, seed ${this.seed})`;
  }
}

type BadCall = 'update-count' | 'update-size' | 'copyTo-count' | 'store-size' | 'loadStateDict-count' | 'deserialize-truncated' | 'construct-nan-decay';

// Calls that must throw and change nothing (the comparison after the step checks the nothing).
class Bad extends Step {
  constructor(readonly call: BadCall) {
    super();
  }
  apply(m: Model, r: Real): void {
    const { ema, params } = r;
    const tooMany = [...params, new Float32Array(1)];
    const countError = { name: 'RangeError', message: [`Expected ${m.sizes.length} parameters (one per shadow)`, String(m.sizes.length + 1)] };
    const resized = (): Floats[] | null => {
      const index = m.sizes.findIndex(() => true);
      if (index === -1) return null;
      return params.map((p, i) => (i === index ? new Float64Array(p.length + 1) : p));
    };
    const sizeError = { name: 'RangeError', message: [`Expected ${m.sizes[0]} elements (the size of its shadow)`, `${m.sizes[0] + 1}`] };
    switch (this.call) {
      case 'update-count':
        expectError(() => ema.update(tooMany), m.scopes.length > 0 ? SCOPE_OPEN : countError);
        return;
      case 'update-size': {
        const wrong = resized();
        if (wrong !== null) expectError(() => ema.update(wrong), m.scopes.length > 0 ? SCOPE_OPEN : sizeError);
        return;
      }
      case 'copyTo-count':
        expectError(() => ema.copyTo(tooMany), countError);
        return;
      case 'store-size': {
        const wrong = resized();
        if (wrong !== null) expectError(() => ema.store(wrong), sizeError);
        return;
      }
      case 'loadStateDict-count': {
        const state = ema.stateDict();
        state.shadowParams.push(new Float32Array(1));
        expectError(() => ema.loadStateDict(state), { name: 'RangeError', message: ['state.shadowParams', `${m.sizes.length + 1}`] });
        return;
      }
      case 'deserialize-truncated': {
        const bytes = ema.serialize();
        expectError(() => ema.deserialize(bytes.subarray(0, bytes.length - 1)), { name: 'Error', message: ['Invalid safetensors file'] });
        return;
      }
      case 'construct-nan-decay':
        expectError(() => new ExponentialMovingAverage(params, { decay: NaN }), { name: 'RangeError', message: ['decay', 'NaN'] });
        return;
    }
  }
  toString(): string {
    return `bad ${this.call}`;
  }
}

const setupArb: fc.Arbitrary<Setup> = fc.record({
  decay: fc.oneof(fc.constantFrom(0, 1, 0.5, 0.9, 0.999), fc.double({ min: 0, max: 1, noNaN: true })),
  useNumUpdates: fc.boolean(),
  dtype: fc.constantFrom<DType>('float32', 'float64'),
  tensors: fc.array(
    fc.record({
      kind: fc.constantFrom<Kind>('f32', 'f64'),
      size: fc.constantFrom(0, 1, 7, 33),
      named: fc.boolean(),
      seed: fc.nat(),
    }),
    { minLength: 0, maxLength: 3 },
  ),
});

const explicitArb = fc.boolean();
const commandArbs: fc.Arbitrary<Command>[] = [
  explicitArb.map((e) => new Update(e)),
  explicitArb.map((e) => new Update(e)),
  fc.constantFrom<1 | 2>(1, 2).map((n) => new UpdateAsync(n)),
  explicitArb.map((e) => new CopyTo(e)),
  fc.array(fc.constantFrom<Kind>('f32', 'f64'), { minLength: 1, maxLength: 3 }).map((k) => new CopyToFresh(k)),
  explicitArb.map((e) => new Store(e)),
  explicitArb.map((e) => new Restore(e)),
  explicitArb.map((e) => new OpenScope(e)),
  fc.nat(5).map((p) => new CloseScope(p)),
  fc.nat(5).map((p) => new CloseScope(p)),
  fc.boolean().map((f) => new WithAveraged(f)),
  fc.constantFrom<DType>('float32', 'float64').map((d) => new To(d)),
  fc.oneof(fc.double({ min: 0, max: 1, noNaN: true }), fc.constantFrom(NaN, -0.5, 1.5, Infinity)).map((v) => new SetDecay(v)),
  fc.constant(new TakeStateDict()),
  fc.constant(new LoadStateDict()),
  fc.constant(new Serialize()),
  fc.constant(new Deserialize()),
  fc.tuple(fc.nat(5), fc.nat()).map(([p, s]) => new Mutate(p, s)),
  fc
    .constantFrom<BadCall>('update-count', 'update-size', 'copyTo-count', 'store-size', 'loadStateDict-count', 'deserialize-truncated', 'construct-nan-decay')
    .map((c) => new Bad(c)),
];

function start(setup: Setup): { model: Model; real: Real } {
  const params = setup.tensors.map((t) => {
    const array = t.kind === 'f32' ? new Float32Array(t.size) : new Float64Array(t.size);
    array.set(valuesFor(t.seed, t.size));
    return array;
  });
  const names = setup.tensors.map((t, i) => (t.named ? `layer${i}.weight` : null));
  const ema = new ExponentialMovingAverage(
    params.map((value, i) => (names[i] === null ? value : { name: names[i]!, value })),
    { decay: setup.decay, useNumUpdates: setup.useNumUpdates, dtype: setup.dtype },
  );
  const values = params.map((p) => Array.from(p));
  const model: Model = {
    dtype: setup.dtype,
    decay: setup.decay,
    numUpdates: setup.useNumUpdates ? 0 : null,
    kinds: setup.tensors.map((t) => t.kind),
    sizes: setup.tensors.map((t) => t.size),
    names,
    shadows: values.map((v) => v.map((x) => roundTo(setup.dtype, x))),
    backup: null,
    params: values,
    scopes: [],
    savedDict: null,
    savedBytes: null,
  };
  return { model, real: { ema, params, scopes: [], savedDict: null, savedBytes: null } };
}

test('random sequences of operations agree step by step with a plain JavaScript model of the contract', async () => {
  await fc.assert(
    fc.asyncProperty(setupArb, fc.commands(commandArbs, { maxCommands: 60, size: 'max' }), async (setup, commands) => {
      const { model, real } = start(setup);
      try {
        expectAgrees(model, real);
        await fc.asyncModelRun(() => ({ model, real }), commands);
      } finally {
        for (const scope of real.scopes.reverse()) scope.restore();
        real.ema.dispose();
      }
    }),
    { numRuns: 100 },
  );
});
