// float16 holds finite values up to 65504. A larger finite value would become Infinity when it
// enters float16 shadows, then NaN at the first update, for good and without a word; so it is
// refused where values enter the shadows (constructor, loadStateDict, load, to()), naming the
// parameter. Updates saturate at +-65504 instead (native, element_ops.h).
import { expectedRangeError } from './errors';

export const FLOAT16_MAX = 65504;

/** The index of the first finite value beyond +-65504, or -1. */
function firstBeyondFloat16(values: ArrayLike<number>): number {
  for (let j = 0; j < values.length; j++) {
    const v = values[j];
    if ((v > FLOAT16_MAX || v < -FLOAT16_MAX) && Number.isFinite(v)) return j;
  }
  return -1;
}

/**
 * Throws a RangeError naming the parameter (its name, else its index), the element and the value,
 * if any of `count` tensors (read lazily by `read`) holds a finite value float16 cannot hold.
 * `where`: what the values are, for the message ('parameters', 'state.shadowParams', ...).
 */
export function checkFloat16Range(
  count: number,
  read: (index: number) => ArrayLike<number>,
  nameOf: (index: number) => string | null | undefined,
  where: string,
): void {
  for (let i = 0; i < count; i++) {
    const values = read(i);
    const j = firstBeyondFloat16(values);
    if (j < 0) continue;
    const name = nameOf(i);
    const label = name === null || name === undefined ? `${where}[${i}]` : `${where}[${i}] ('${name}')`;
    throw expectedRangeError(
      `finite values within +-${FLOAT16_MAX} (the float16 range) for float16 shadows`,
      `${label}[${j}]`,
      `${values[j]}; keep float32 or bfloat16 shadows for this model, or scale the parameter`,
    );
  }
}

/** The values of a checkpoint's raw little-endian tensor bytes, for checking (float16 needs none). */
export function valuesOfBytes(bytes: Uint8Array, dtype: 'float32' | 'float64' | 'bfloat16'): ArrayLike<number> {
  const copy = bytes.slice(); // aligned, whatever the view's offset in the file
  if (dtype === 'float32') return new Float32Array(copy.buffer);
  if (dtype === 'float64') return new Float64Array(copy.buffer);
  const halves = new Uint16Array(copy.buffer);
  const words = new Uint32Array(halves.length);
  for (let i = 0; i < halves.length; i++) words[i] = halves[i] << 16; // bfloat16 is a float32's upper half
  return new Float32Array(words.buffer);
}
