// TensorFlow.js variables as EMA parameters, with no tfjs-specific import: model.trainableWeights
// (tf.LayerVariable), tf.variable(), alone or mixed with typed arrays. Values against the float64
// reference, bit-exact swaps and restores, what one operation reads (one dataSync() per variable),
// no leaked tensors over thousands of operations, and errors that name the variable.
import * as tf from '@tensorflow/tfjs';
import { ExponentialMovingAverage } from '../src';
import { layerVariableKind, tfVariableKind } from '../src/tfjs/variables';
import { expectBitsEqual, expectError, expectSameState } from './helpers/state';
import { effectiveDecay, expectUpdateClose, fillRandom } from './reference';
import {
  coreVariable,
  countDataSync,
  denseModel,
  expectValues,
  perturb,
  quietBackend,
  snapshot,
} from './tfjs_helpers';

beforeAll(() => quietBackend('cpu'));

type Floats = Float32Array | Float64Array;

function shadows(ema: ExponentialMovingAverage): Floats[] {
  return ema.stateDict().shadowParams;
}

describe('tfjs variables as parameters', () => {
  test('model.trainableWeights are accepted as they are, named after the variables, shadows start as exact copies', () => {
    const model = denseModel('names');
    const ema = new ExponentialMovingAverage(model.trainableWeights, { decay: 0.99 });
    expect(ema.names).toEqual(['names_hidden/kernel', 'names_hidden/bias', 'names_out/kernel', 'names_out/bias']);
    expect(ema.sizes).toEqual([35, 7, 14, 2]);
    const initial = snapshot(model.trainableWeights);
    shadows(ema).forEach((s, i) => expectBitsEqual(s as Float32Array, initial[i], `shadow ${i}`));
    ema.dispose();
    model.dispose();
  });

  test('a tf.variable keeps its own name, or the one tfjs generated for it', () => {
    const named = tf.variable(tf.ones([2, 3]), true, 'encoder/w');
    const unnamed = tf.variable(tf.zeros([4]));
    const ema = new ExponentialMovingAverage([named, unnamed], { decay: 0.5 });
    expect(ema.names).toEqual(['encoder/w', unnamed.name]);
    expect(ema.sizes).toEqual([6, 4]);
    ema.dispose();
    tf.dispose([named, unnamed]);
  });

  test('the cpu backend is read without a copy: the kernels get the backend\'s own storage', () => {
    const model = denseModel('zerocopy');
    const [kernel] = model.trainableWeights;
    const core = coreVariable(kernel);
    expect(layerVariableKind.matches(kernel)).toBe(true);
    expect(tfVariableKind.matches(core)).toBe(true);
    expect(layerVariableKind.read(kernel)).toBe(core.dataSync());
    expect(tfVariableKind.read(core)).toBe(core.dataSync());
    model.dispose();
  });

  test('a mix of Float32Array, Float64Array, tf.variable, LayerVariable and { name, value } follows the float64 reference', () => {
    const model = denseModel('mixed');
    const [kernel, bias] = model.trainableWeights;
    const variable = tf.variable(tf.randomNormal([3, 4], 0, 1, 'float32', 7), true, 'mixed/extra');
    const named = tf.variable(tf.randomNormal([5], 0, 1, 'float32', 8));
    const f32 = fillRandom(new Float32Array(9), 1);
    const f64 = fillRandom(new Float64Array(6), 2);
    const params = [f32, kernel, variable, { name: 'renamed', value: named }, f64, bias];
    const ema = new ExponentialMovingAverage(params, { decay: 0.8 });
    expect(ema.names).toEqual([null, 'mixed_hidden/kernel', 'mixed/extra', 'renamed', null, 'mixed_hidden/bias']);
    const tfParams = [kernel, variable, named, bias];
    for (let step = 1; step <= 25; step++) {
      perturb(tfParams, 100 + step);
      fillRandom(f32, 200 + step);
      fillRandom(f64, 300 + step);
      const before = shadows(ema);
      const values: Floats[] = [f32, ...snapshot([kernel, variable, named]), f64, ...snapshot([bias])];
      ema.update();
      const d = effectiveDecay(0.8, step);
      shadows(ema).forEach((s, i) => expectUpdateClose(s, before[i], values[i], d, 'float32', 2, `step ${step}, parameter ${i}`));
    }
    ema.dispose();
    model.dispose();
    tf.dispose([variable, named]);
  });

  test('update(), store() and opening a scope read each variable with one dataSync(); copyTo(), restore() and closing read none', () => {
    const model = denseModel('reads');
    const variable = tf.variable(tf.ones([3]), true, 'reads/v');
    const params = [...model.trainableWeights, variable];
    const ema = new ExponentialMovingAverage(params, { decay: 0.9 });
    // The very first write in a process fetches tfjs's TensorBuffer class with one bufferSync().
    ema.copyTo();
    const counter = countDataSync(params);
    const ones = params.map(() => 1);
    const zeros = params.map(() => 0);
    try {
      ema.update();
      expect(counter.take()).toEqual(ones);
      ema.store();
      expect(counter.take()).toEqual(ones);
      ema.copyTo();
      expect(counter.take()).toEqual(zeros);
      ema.restore();
      expect(counter.take()).toEqual(zeros);
      const scope = ema.averageParameters();
      expect(counter.take()).toEqual(ones);
      scope.restore();
      expect(counter.take()).toEqual(zeros);
      ema.update(params); // explicit parameters: the same
      expect(counter.take()).toEqual(ones);
    } finally {
      counter.stop();
    }
    ema.dispose();
    model.dispose();
    variable.dispose();
  });

  test.each(['float32', 'float64', 'bfloat16'] as const)(
    'copyTo() writes the shadows (%s storage); restore() and scopes put the raw weights back bit for bit',
    (dtype) => {
      const model = denseModel(`swap_${dtype}`);
      const variable = tf.variable(tf.randomNormal([4, 4], 0, 1, 'float32', 3), true, `swap_${dtype}/v`);
      const params = [...model.trainableWeights, variable];
      const ema = new ExponentialMovingAverage(params, { decay: 0.7, dtype });
      for (let step = 0; step < 5; step++) {
        perturb(params, 40 + step);
        ema.update();
      }
      const raw = snapshot(params);
      const averaged = shadows(ema).map((s) => Float32Array.from(s));

      ema.store();
      ema.copyTo();
      expectValues(params, averaged, 'after copyTo()');
      ema.restore();
      expectValues(params, raw, 'after restore()');

      const outer = ema.averageParameters();
      expectValues(params, averaged, 'in the scope');
      const inner = ema.averageParameters();
      inner.restore();
      expectValues(params, averaged, 'after closing the inner scope');
      outer.restore();
      expectValues(params, raw, 'after closing the outer scope');

      const result = ema.withAveragedParameters(() => snapshot(params));
      result.forEach((r, i) => expectBitsEqual(r, averaged[i], `withAveragedParameters() saw ${params[i].name}`));
      expectValues(params, raw, 'after withAveragedParameters()');
      ema.dispose();
      model.dispose();
      variable.dispose();
    },
  );

  test('writes bypass a LayerVariable\'s constraint: maxNorm does not touch the swapped weights, restore is bit-exact', () => {
    const model = denseModel('constrained', { constraint: true });
    const ema = new ExponentialMovingAverage(model.trainableWeights, { decay: 0.5 });
    perturb(model.trainableWeights, 5);
    ema.update();
    const raw = snapshot(model.trainableWeights);
    const averaged = shadows(ema).map((s) => Float32Array.from(s));
    const tensors = tf.memory().numTensors;
    ema.withAveragedParameters(() => expectValues(model.trainableWeights, averaged, 'in the scope'));
    expectValues(model.trainableWeights, raw, 'after the scope');
    expect(tf.memory().numTensors).toBe(tensors);
    ema.dispose();
    model.dispose();
  });

  test('no tensor leaks: 6000 operations on variables leave tf.memory() where it was', async () => {
    const model = denseModel('leaks', { constraint: true, batchNorm: true });
    const variable = tf.variable(tf.ones([10]), true, 'leaks/v');
    const params = [...model.weights, variable];
    const ema = new ExponentialMovingAverage(params, { decay: 0.99 });
    ema.update(); // first use of every code path before the baseline
    ema.withAveragedParameters(() => undefined);
    const before = tf.memory();
    for (let i = 0; i < 1000; i++) {
      ema.update();
      ema.store();
      ema.copyTo();
      ema.restore();
      ema.withAveragedParameters(() => undefined);
      ema.averageParameters().restore();
    }
    await ema.updateAsync();
    const after = tf.memory();
    expect(after.numTensors).toBe(before.numTensors);
    expect(after.numDataBuffers).toBe(before.numDataBuffers);
    expect(after.numBytes).toBe(before.numBytes);
    ema.dispose();
    model.dispose();
    variable.dispose();
  });

  test('updateAsync() over variables gives the same shadows as update()', async () => {
    const model = denseModel('async');
    const a = new ExponentialMovingAverage(model.trainableWeights, { decay: 0.9 });
    const b = new ExponentialMovingAverage(model.trainableWeights, { decay: 0.9 });
    for (let step = 0; step < 5; step++) {
      perturb(model.trainableWeights, 60 + step);
      a.update();
      await b.updateAsync();
    }
    expectSameState(b.stateDict(), a.stateDict());
    a.dispose();
    b.dispose();
    model.dispose();
  });

  test('explicit parameters: copyTo() into another model of the same architecture, sizes checked with names', () => {
    const source = denseModel('source');
    const target = denseModel('target');
    const ema = new ExponentialMovingAverage(source.trainableWeights, { decay: 0.9 });
    perturb(source.trainableWeights, 9);
    ema.update();
    const averaged = shadows(ema).map((s) => Float32Array.from(s));
    const sourceRaw = snapshot(source.trainableWeights);
    ema.copyTo(target.trainableWeights);
    expectValues(target.trainableWeights, averaged, 'target after copyTo(target)');
    expectValues(source.trainableWeights, sourceRaw, 'source untouched');

    const other = tf.variable(tf.zeros([3, 3]), true, 'wrong/size');
    const params = [other, ...target.trainableWeights.slice(1)];
    expectError(() => ema.copyTo(params), {
      name: 'RangeError',
      message: ['35 elements', 'parameter 0 ("wrong/size")', 'received 9'],
    });
    ema.dispose();
    tf.dispose([other]);
    source.dispose();
    target.dispose();
  });
});

describe('errors name the variable', () => {
  test('a disposed variable is refused at construction, by name', () => {
    const v = tf.variable(tf.ones([2]), true, 'gone/early');
    v.dispose();
    expectError(() => new ExponentialMovingAverage([v], { decay: 0.9 }), {
      name: 'TypeError',
      message: ['parameters[0]', '"gone/early"', 'was disposed'],
    });
  });

  test('a registered variable disposed later: every operation says which one, and changes nothing', () => {
    const model = denseModel('later');
    const extra = tf.variable(tf.ones([2]), true, 'later/extra');
    const ema = new ExponentialMovingAverage([...model.trainableWeights, extra], { decay: 0.9 });
    ema.update();
    extra.dispose();
    const before = ema.stateDict();
    for (const [operation, call] of [
      ['update()', () => ema.update()],
      ['copyTo()', () => ema.copyTo()],
      ['store()', () => ema.store()],
      ['averageParameters()', () => ema.averageParameters()],
    ] as const) {
      expectError(call, { name: 'Error', message: [operation, 'parameter 4 ("later/extra")', 'was disposed'] });
    }
    expectSameState(ema.stateDict(), before);
    model.dispose();
    expectError(() => ema.update(), { name: 'Error', message: ['parameter 0 ("later_hidden/kernel")', 'was disposed'] });
    ema.dispose();
  });

  test('a disposed variable passed explicitly is named too', () => {
    const live = tf.variable(tf.ones([2]), true, 'explicit/live');
    const dead = tf.variable(tf.ones([2]), true, 'explicit/dead');
    const ema = new ExponentialMovingAverage([live], { decay: 0.9 });
    dead.dispose();
    expectError(() => ema.update([dead]), { name: 'TypeError', message: ['parameters[0]', '"explicit/dead"', 'was disposed'] });
    ema.dispose();
    live.dispose();
  });

  test.each([
    ['int32', () => tf.variable(tf.tensor1d([1, 2], 'int32'), true, 'steps/int')],
    ['bool', () => tf.variable(tf.tensor1d([1, 0], 'bool'), true, 'mask/bool')],
  ])('a %s variable is refused at construction with its name and dtype', (dtype, make) => {
    const v = make();
    expectError(() => new ExponentialMovingAverage([tf.variable(tf.ones([1])), v], { decay: 0.9 }), {
      name: 'TypeError',
      message: ['parameters[1]', `"${v.name}"`, `dtype '${dtype}'`, 'float32'],
    });
    v.dispose();
  });

  test('an int32 LayerVariable is refused with its name and dtype', () => {
    const layerVariable = new tf.LayerVariable(tf.tensor1d([1, 2], 'int32'), 'int32', 'counter');
    expectError(() => new ExponentialMovingAverage([layerVariable], { decay: 0.9 }), {
      name: 'TypeError',
      message: ['parameters[0]', '"counter"', "dtype 'int32'"],
    });
    layerVariable.dispose();
  });

  test('an int32 variable passed to update() is refused and changes nothing', () => {
    const v = tf.variable(tf.ones([2]), true, 'ok/float');
    const counter = tf.variable(tf.tensor1d([1, 2], 'int32'), true, 'bad/int');
    const ema = new ExponentialMovingAverage([v], { decay: 0.9 });
    const before = ema.stateDict();
    expectError(() => ema.update([counter]), { name: 'TypeError', message: ['"bad/int"', "dtype 'int32'"] });
    expectSameState(ema.stateDict(), before);
    ema.dispose();
    tf.dispose([v, counter]);
  });

  test('a tf.Tensor (immutable) is not a parameter: the error lists what is accepted', () => {
    const t = tf.ones([2]);
    // @ts-expect-error the types refuse it too: a Tensor has no assign()
    expectError(() => new ExponentialMovingAverage([t], { decay: 0.9 }), {
      name: 'TypeError',
      message: ['tf.Variable', 'tf.LayerVariable', 'parameters[0]', 'received a Tensor'],
    });
    t.dispose();
  });
});
