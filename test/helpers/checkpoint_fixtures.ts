// Shared test fixtures: an EMA-like state held in plain typed arrays, turned into the
// CheckpointSource / ExpectedParameters that ema_checkpoint.ts takes, and byte helpers.
import type {
  CheckpointSource,
  CollectedDType,
  DecodedCheckpoint,
  ExpectedParameters,
  StorageDType,
} from '../../src/checkpoint/ema_checkpoint';

export interface StateFixture {
  decay: number;
  numUpdates: number | null;
  dtype: StorageDType;
  names: (string | null)[];
  /** Float32Array/Float64Array, or Uint16Array bit patterns for float16/bfloat16. */
  shadow: ArrayBufferView[];
  collected: { dtype: CollectedDType; values: ArrayBufferView[] } | null;
  shapes?: (number[] | null)[];
}

export function bytesOf(view: ArrayBufferView): Uint8Array {
  return new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
}

export function sameBytes(a: ArrayBufferView, b: ArrayBufferView): boolean {
  return Buffer.compare(bytesOf(a), bytesOf(b)) === 0;
}

const ELEMENT_BYTES: Record<StorageDType, number> = { float32: 4, float64: 8, float16: 2, bfloat16: 2 };

export function sourceOf(state: StateFixture): CheckpointSource {
  return {
    decay: state.decay,
    numUpdates: state.numUpdates,
    progress: { schedule: state.numUpdates === null ? { kind: 'constant' } : { kind: 'torch_ema' }, step: state.numUpdates ?? 0, samples: 0, seconds: 0 },
    nonFiniteStats: { skippedUpdates: 0, skippedElements: 0 },
    dtype: state.dtype,
    names: state.names,
    sizes: expectedOf(state).sizes,
    shapes: state.shapes,
    shadowBytes: (i) => state.shadow[i],
    collected: state.collected && { dtype: state.collected.dtype, bytes: (i) => state.collected!.values[i] },
  };
}

export function expectedOf(state: StateFixture): ExpectedParameters {
  return { names: state.names, sizes: state.shadow.map((v) => v.byteLength / ELEMENT_BYTES[state.dtype]) };
}

/** Whether a decoded checkpoint holds exactly the fixture's values (bit for bit). */
export function decodedEquals(decoded: DecodedCheckpoint, state: StateFixture): boolean {
  if (decoded.decay !== state.decay || decoded.numUpdates !== state.numUpdates || decoded.dtype !== state.dtype) return false;
  if (decoded.shadow.length !== state.shadow.length || !decoded.shadow.every((b, i) => sameBytes(b, state.shadow[i]))) return false;
  if (state.collected === null) return decoded.collected === null && decoded.collectedDType === null;
  const values = state.collected.values;
  return (
    decoded.collectedDType === state.collected.dtype &&
    decoded.collected !== null &&
    decoded.collected.length === values.length &&
    decoded.collected.every((b, i) => sameBytes(b, values[i]))
  );
}

/** Deterministic pseudo-random floats (no Math.random, so failures reproduce). */
export function floats<T extends Float32Array | Float64Array>(Type: new (n: number) => T, n: number, seed: number): T {
  const out = new Type(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    out[i] = (x / 0xffffffff) * 4 - 2;
  }
  return out;
}

export function halfBits(n: number, seed: number): Uint16Array {
  const out = new Uint16Array(n);
  for (let i = 0; i < n; i++) out[i] = (seed * 7919 + i * 104729) & 0xffff;
  return out;
}

/** A small state with named, unnamed and duplicate-named parameters and a float64 backup. */
export function mixedState(): StateFixture {
  return {
    decay: 0.9999,
    numUpdates: 42,
    dtype: 'float32',
    names: ['layer/w', null, 'b', 'b', '1'],
    shadow: [floats(Float32Array, 6, 1), floats(Float32Array, 3, 2), floats(Float32Array, 2, 3), floats(Float32Array, 2, 4), floats(Float32Array, 1, 5)],
    collected: {
      dtype: 'float64',
      values: [floats(Float64Array, 6, 6), floats(Float64Array, 3, 7), floats(Float64Array, 2, 8), floats(Float64Array, 2, 9), floats(Float64Array, 1, 10)],
    },
    shapes: [[2, 3], null, null, [2], null],
  };
}
