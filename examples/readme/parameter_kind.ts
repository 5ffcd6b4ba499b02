import { ExponentialMovingAverage, registerParameterKind, type ParameterKind } from 'model-ema';

class MyTensor { constructor(public data: Float32Array, public name?: string, public disposed = false) {} }

const myTensorKind: ParameterKind<MyTensor> = {
  label: 'MyTensor',                                   // used in errors; unique among kinds
  matches: (value): value is MyTensor => value instanceof MyTensor,
  ownName: (t) => t.name,                               // or undefined
  shape: (t) => [t.data.length],                        // optional: the shape saved in checkpoints
  numel: (t) => (t.disposed ? 0 : t.data.length),
  unusable: (t) => (t.disposed ? 'was disposed' : undefined),
  read: (t) => t.data,                                  // Float32Array/Float64Array, read in place
  writeTarget: (t) => t.data,                           // the kernels write here...
  commit: () => {},                                     // ...then this makes it the tensor's value
};
registerParameterKind(myTensorKind);                    // priority 0: tried after the built-in kinds

declare module 'model-ema' {                            // ...and for TypeScript: the methods accept it
  interface ParameterTypes { myTensor: MyTensor }
}

const tensors = [new MyTensor(new Float32Array([1, 2]), 'w'), new MyTensor(new Float32Array([3]), 'b')];
const ema = new ExponentialMovingAverage(tensors, { decay: 0.5, useNumUpdates: false });
tensors.forEach((t) => t.data.fill(0));
ema.update();
console.log(ema.names, ema.stateDict().shadowParams.map((s) => Array.from(s)));
