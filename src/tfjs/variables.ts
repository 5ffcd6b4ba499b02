// TensorFlow.js variables as EMA parameters, recognised by their shape rather than by their class:
// the core package never imports tfjs (an optional peer), so `new ExponentialMovingAverage(
// model.trainableWeights, ...)` works with whichever copy of tfjs built the model, with nothing
// extra to import. The entry points register these kinds (register.ts).
//
// Reading: dataSync() once per variable per operation. The cpu backend hands back its own storage
// (no copy); wasm, webgl and tfjs-node copy once, as they must.
// Writing: the kernels write into a fresh Float32Array, which becomes a tensor (the cpu backend
// adopts the array as the tensor's storage; other backends copy it in once) that the variable
// takes over with assign(); the temporary tensor is disposed at once, so tf.memory().numTensors
// does not move.
import { types } from 'node:util';
import { invalidArgument } from '../errors';
import type { ParamArray, ParameterKind } from '../parameter_kinds';

/** The part of a tfjs-core `tf.Variable` the EMA uses. */
export interface TfVariableLike {
  readonly name: string;
  readonly dtype: string;
  readonly shape: readonly number[];
  readonly isDisposed: boolean;
  dataSync(): ArrayLike<number>;
  assign(value: TensorLike): void;
  bufferSync(): object;
}

/** The part of a tfjs-layers `tf.LayerVariable` (what `model.weights` holds) the EMA uses. */
export interface LayerVariableLike {
  readonly name: string;
  readonly dtype: string;
  /** Typed (number | null)[] by tfjs-layers; always concrete for a variable. */
  readonly shape: readonly (number | null)[];
  /** The underlying tf.Variable itself (typed Tensor by tfjs-layers); throws once disposed. */
  read(): object;
  write(value: TensorLike): unknown;
}

interface TensorLike {
  dispose(): void;
}

type TensorBufferConstructor = new (shape: number[], dtype: 'float32', values: Float32Array) => {
  toTensor(): TensorLike;
};

function isShape(value: unknown): value is readonly number[] {
  return Array.isArray(value) && value.every((d) => Number.isSafeInteger(d) && d >= 0);
}

function numelOf(shape: readonly (number | null)[]): number {
  let n = 1;
  for (const d of shape) n *= d ?? 0;
  return n;
}

function dtypeProblem(dtype: string): string | undefined {
  return dtype === 'float32' ? undefined : `has dtype '${dtype}': only float32 variables can be averaged`;
}

// Tensors are made through the variable's own tfjs (its TensorBuffer class, reached from the public
// bufferSync(), whose toTensor() uses the engine the variable belongs to): no tfjs import, and never
// a tensor from a second copy of tfjs. One bufferSync() per tfjs copy, cached by Variable prototype.
const tensorBufferClasses = new WeakMap<object, TensorBufferConstructor>();

function tensorBufferClassOf(variable: TfVariableLike): TensorBufferConstructor {
  const prototype = Object.getPrototypeOf(variable) as object;
  let TensorBuffer = tensorBufferClasses.get(prototype);
  if (TensorBuffer === undefined) {
    TensorBuffer = variable.bufferSync().constructor as TensorBufferConstructor;
    tensorBufferClasses.set(prototype, TensorBuffer);
  }
  return TensorBuffer;
}

function readVariable(variable: TfVariableLike): ParamArray {
  const values = variable.dataSync();
  return types.isFloat32Array(values) ? values : Float32Array.from(values);
}

function assignVariable(variable: TfVariableLike, written: ParamArray): void {
  // writeTarget() always hands out a fresh Float32Array: the cpu backend keeps it as the tensor's
  // storage, so it must never be reused or written again.
  const TensorBuffer = tensorBufferClassOf(variable);
  const tensor = new TensorBuffer(variable.shape.slice(), 'float32', written as Float32Array).toTensor();
  try {
    variable.assign(tensor);
  } finally {
    tensor.dispose(); // the variable holds its own reference to the data now
  }
}

/** A tfjs-core variable: `tf.variable(...)`, or what a LayerVariable wraps. */
export const tfVariableKind: ParameterKind<TfVariableLike> = {
  label: 'tf.Variable',
  matches(value: unknown): value is TfVariableLike {
    const v = value as Partial<TfVariableLike> | null;
    return (
      typeof v === 'object' && v !== null && typeof v.dataSync === 'function' && typeof v.assign === 'function' &&
      typeof v.isDisposed === 'boolean' && typeof v.dtype === 'string' && isShape(v.shape)
    );
  },
  ownName: (v) => (typeof v.name === 'string' ? v.name : undefined),
  shape: (v) => [...v.shape],
  numel: (v) => (v.isDisposed ? 0 : numelOf(v.shape)),
  unusable: (v) => (v.isDisposed ? 'was disposed' : dtypeProblem(v.dtype)),
  read: readVariable,
  writeTarget: (v) => new Float32Array(numelOf(v.shape)),
  commit: assignVariable,
};

// tfjs-layers' read() returns the tf.Variable it wraps (not a snapshot, despite its doc comment).
function underlying(v: LayerVariableLike): TfVariableLike {
  const core = v.read() as TfVariableLike;
  if (!tfVariableKind.matches(core)) {
    throw invalidArgument(`LayerVariable ${JSON.stringify(v.name)}: read() did not return a tf.Variable; cannot read or write it`, Error);
  }
  return core;
}

function layerVariableDisposed(v: LayerVariableLike): boolean {
  try {
    return (v.read() as Partial<TfVariableLike>).isDisposed === true;
  } catch {
    return true; // read() asserts that the variable is not disposed
  }
}

/**
 * A tfjs-layers variable (`model.weights`, `model.trainableWeights`). Writes go to the underlying
 * tf.Variable, not through write(): write() applies the layer's constraint (maxNorm, ...), which
 * would change the averaged weights and break the bit-exact restore of the raw ones (maxNorm rescales
 * even weights inside its ball), and it does not dispose the constrained tensor it makes.
 */
export const layerVariableKind: ParameterKind<LayerVariableLike> = {
  label: 'tf.LayerVariable',
  matches(value: unknown): value is LayerVariableLike {
    const v = value as Partial<LayerVariableLike> | null;
    return (
      typeof v === 'object' && v !== null && typeof v.read === 'function' && typeof v.write === 'function' &&
      typeof v.dtype === 'string' && typeof v.name === 'string' && isShape(v.shape)
    );
  },
  ownName: (v) => v.name,
  shape: (v) => v.shape.map((d) => d ?? 0),
  numel: (v) => (layerVariableDisposed(v) ? 0 : numelOf(v.shape)),
  unusable: (v) => (layerVariableDisposed(v) ? 'was disposed' : dtypeProblem(v.dtype)),
  read: (v) => readVariable(underlying(v)),
  writeTarget: (v) => new Float32Array(numelOf(v.shape)),
  commit: (v, written) => assignVariable(underlying(v), written),
};
