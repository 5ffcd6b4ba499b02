// Float32Array and Float64Array parameters: the kernels read and write them in place (no copy). A
// typed array can lose its contents while the EMA holds it (its buffer transferred to a worker or
// detached): the kind says so, and the EMA refuses it or names the cause of a size mismatch.
import { isParamArray, type ParamArray, type ParameterKind } from '../parameter_kinds';

/** Priority of the typed-array kind: tried before every other built-in kind. */
export const TYPED_ARRAY_PRIORITY = 30;

export function isDetached(buffer: ArrayBufferLike): boolean {
  // Node 20 lacks ArrayBuffer.prototype.detached; making a view of a detached buffer throws.
  if (buffer.byteLength !== 0) return false;
  try {
    new Uint8Array(buffer);
    return false;
  } catch {
    return true;
  }
}

export const typedArrayKind: ParameterKind<ParamArray> = {
  label: 'Float32Array/Float64Array',
  matches: isParamArray,
  ownName: () => undefined,
  numel: (value) => value.length,
  unusable: () => undefined,
  read: (value) => value,
  writeTarget: (value) => value,
  commit: () => undefined,
  lostContents: (value) =>
    isDetached(value.buffer)
      ? { refused: 'is a typed array whose buffer was detached (transferred away)', note: 'its buffer was detached or transferred' }
      : undefined,
};
