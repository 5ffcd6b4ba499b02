// Type tests for what the EMA's methods accept as parameters, compiled by test/types.test.ts with
// tsc --strict: each `@ts-expect-error` line must fail to compile (an unused directive is itself
// an error), every other line must compile. Never run, only compiled.
import * as tf from '@tensorflow/tfjs';
import { ExponentialMovingAverage, registerParameterKind, type NamedParameter, type Parameter, type ParameterKind } from '../../src';

declare const ema: ExponentialMovingAverage;
const options = { decay: 0.999 };

// What the registered kinds accept: typed arrays, tfjs variables and layer weights, and { name, value }.
new ExponentialMovingAverage([new Float32Array(3), new Float64Array(2)], options);
new ExponentialMovingAverage([{ name: 'fc.weight', value: new Float32Array(3) }], options);
new ExponentialMovingAverage([tf.variable(tf.zeros([2, 2]))], options);
new ExponentialMovingAverage([{ name: 'v', value: tf.variable(tf.zeros([2])) }], options);
declare const model: tf.LayersModel;
new ExponentialMovingAverage(model.trainableWeights, options);
new ExponentialMovingAverage(model.weights, options);
new ExponentialMovingAverage(new Set([new Float32Array(1)]), options); // any iterable
const mixed: Parameter[] = [new Float32Array(1), { name: 'b', value: new Float64Array(1) }];
ema.update(mixed);
ema.copyTo([new Float32Array(3)]);
const named: NamedParameter = { name: 'w', value: new Float64Array(1) };
ema.store([named]);

// What they do not: the examples, and near misses.
// @ts-expect-error a number[] is not a parameter
new ExponentialMovingAverage([[1, 2, 3]], options);
// @ts-expect-error an Int32Array is not a float parameter
new ExponentialMovingAverage([new Int32Array(4)], options);
// @ts-expect-error a Map is not a parameter
new ExponentialMovingAverage([new Map()], options);
// @ts-expect-error the issue's list as a whole
new ExponentialMovingAverage([[1, 2, 3], new Int32Array(4), new Map()], options);
// @ts-expect-error a tf.Tensor is immutable (no assign): not a parameter
new ExponentialMovingAverage([tf.zeros([2])], options);
// @ts-expect-error a name needs a value of a registered kind
ema.update([{ name: 'w', value: [1, 2] }]);
// @ts-expect-error a name must be a string
ema.copyTo([{ name: 1, value: new Float32Array(1) }]);
// @ts-expect-error a single array is not a list of parameters... (a Float32Array iterates numbers)
ema.update(new Float32Array(3));
// @ts-expect-error a plain object is not a parameter
ema.restore([{}]);

// A kind of your own: registering it at run time, declaring its type by declaration merging.
class MyTensor {
  constructor(public data: Float32Array) {}
}
declare module '../../src' {
  interface ParameterTypes {
    myTensor: MyTensor;
  }
}
const myKind: ParameterKind<MyTensor> = {
  label: 'MyTensor',
  matches: (value): value is MyTensor => value instanceof MyTensor,
  ownName: () => undefined,
  numel: (t) => t.data.length,
  unusable: () => undefined,
  read: (t) => t.data,
  writeTarget: (t) => t.data,
  commit: () => {},
};
registerParameterKind(myKind);
new ExponentialMovingAverage([new MyTensor(new Float32Array(2)), new Float32Array(1)], options);
class NotRegistered {
  values = new Float32Array(2);
}
// @ts-expect-error a class whose type was not added to ParameterTypes
new ExponentialMovingAverage([new NotRegistered()], options);
