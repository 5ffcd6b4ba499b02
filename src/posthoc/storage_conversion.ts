// float32 values to and from the snapshot dtypes' raw bytes, through the native arenas: the same
// conversions as the EMA's own shadows (round to nearest even; float16 saturating at +-65504), so
// there is no second implementation to disagree with them.
//
// To the storage dtype: an update with decay 0 (UpdateRule::kCopy in element_ops.h), which copies
// each parameter through the shadows' saturation, where a plain copyFrom would turn a finite value
// beyond 65504 into Infinity. From it: writeBytes, then copyTo into buffers the caller reuses.
import type { ShadowArena } from '../native';
import { newShadowArena } from '../native';
import type { SnapshotDType } from './snapshot_format';

/**
 * Encodes `values` (one Float32Array per tensor) in `dtype`, copying them now (float32 too), so
 * that changing the arrays while the file is being written changes nothing in it; `bytesOf(i)`
 * gives tensor i's raw little-endian bytes (a fresh copy). Call dispose() when done.
 */
export function encodeTensors(values: readonly Float32Array[], dtype: SnapshotDType): { bytesOf(i: number): Uint8Array; dispose(): void } {
  const arena = newShadowArena(dtype, values.map((v) => v.length), null);
  try {
    arena.update(values, { decay: 0 });
  } catch (error) {
    arena.dispose();
    throw error;
  }
  return { bytesOf: (i) => arena.readBytes(i), dispose: () => arena.dispose() };
}

/**
 * Decodes groups of tensors of one dtype into float32, reusing one arena per dtype for the group's
 * sizes. `decode(dtype, raw, out)`: raw[i] holds tensor i's bytes, out[i] receives its values.
 */
export class TensorDecoder {
  readonly #sizes: readonly number[];
  readonly #arenas = new Map<SnapshotDType, ShadowArena>();

  constructor(sizes: readonly number[]) {
    this.#sizes = sizes;
  }

  decode(dtype: SnapshotDType, raw: readonly Uint8Array[], out: Float32Array[]): void {
    let arena = this.#arenas.get(dtype);
    if (arena === undefined) {
      arena = newShadowArena(dtype, this.#sizes, null);
      this.#arenas.set(dtype, arena);
    }
    raw.forEach((bytes, i) => arena.writeBytes(i, bytes));
    arena.copyTo(out);
  }

  dispose(): void {
    for (const arena of this.#arenas.values()) arena.dispose();
    this.#arenas.clear();
  }
}
