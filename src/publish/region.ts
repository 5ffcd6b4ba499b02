// The published region: the shared memory that publish() writes and PublishedWeightsReader reads,
// from any thread. Two data buffers of float32 tensors (double buffering: version v lives in
// buffer v % 2, so the newest version is never the one being overwritten) and a control block of
// 64-bit words: the newest version, and per buffer a generation counter (a seqlock: odd while the
// buffer is being written) and the version it holds. Memory is two copies of the weights, whatever
// the number of readers; readers never write to the region, so a reader cannot hold the writer up.
import { describe, expectedRangeError, expectedTypeError } from '../errors';

/** Tells a handle from any other object; the suffix is the layout version. */
export const HANDLE_FORMAT = 'model-ema/published-weights@1';

/** Words of the control block (a BigInt64Array over `control`). */
export const LATEST = 0; // the newest complete version; 0 before the first publish
export const CLOSED = 1; // 1 once the publishing EMA was disposed: no version will follow
export const SEQ = 2; // SEQ + b: buffer b's generation, odd while it is being written
export const HELD = 4; // HELD + b: the version buffer b holds (0: none, or a write that failed)
export const CONTROL_WORDS = 6;

/** Float32 elements each tensor's offset is a multiple of (64 bytes: whole cache lines). */
const ALIGN = 16;

/**
 * What ema.shareable() returns: plain data and SharedArrayBuffers, so `postMessage` (structured
 * clone) hands it to a worker without copying the weights. Pass it to `new PublishedWeightsReader()`.
 */
export interface PublishedWeightsHandle {
  readonly format: typeof HANDLE_FORMAT;
  readonly control: SharedArrayBuffer;
  readonly buffers: readonly [SharedArrayBuffer, SharedArrayBuffer];
  /** Element count of each tensor, in parameter order. */
  readonly sizes: readonly number[];
  /** Each parameter's name, or null. */
  readonly names: readonly (string | null)[];
}

/** Where each tensor starts in a data buffer (elements), and the buffer's length in elements. */
export function tensorOffsets(sizes: readonly number[]): { offsets: number[]; total: number } {
  let total = 0;
  const offsets = sizes.map((size) => {
    const offset = total;
    total += Math.ceil(size / ALIGN) * ALIGN;
    return offset;
  });
  return { offsets, total };
}

/** A new, empty region (version 0) for tensors of these sizes. */
export function createRegion(sizes: readonly number[], names: readonly (string | null)[]): PublishedWeightsHandle {
  const { total } = tensorOffsets(sizes);
  const buffer = (): SharedArrayBuffer => {
    const shared = new SharedArrayBuffer(total * Float32Array.BYTES_PER_ELEMENT);
    // Touch every page now: the first write to a fresh page is expensive (about 14 us per 4 KiB on
    // the CI VM, 0.25 s for ResNet-50), and it belongs here, not in the first publishes.
    new Int32Array(shared).fill(0);
    return shared;
  };
  return Object.freeze({
    format: HANDLE_FORMAT,
    control: new SharedArrayBuffer(CONTROL_WORDS * BigInt64Array.BYTES_PER_ELEMENT),
    buffers: Object.freeze([buffer(), buffer()] as const),
    sizes: Object.freeze([...sizes]),
    names: Object.freeze([...names]),
  });
}

/** One Float32Array per tensor over one data buffer. */
export function tensorViews(buffer: SharedArrayBuffer, sizes: readonly number[]): Float32Array[] {
  const { offsets } = tensorOffsets(sizes);
  return sizes.map((size, i) => new Float32Array(buffer, offsets[i] * Float32Array.BYTES_PER_ELEMENT, size));
}

function isSharedArrayBuffer(value: unknown): value is SharedArrayBuffer {
  return Object.prototype.toString.call(value) === '[object SharedArrayBuffer]';
}

/**
 * Checks a handle received from another thread (or made up), every field, naming the field and
 * the value: the reader then makes views that cannot fall outside the buffers.
 */
export function checkHandle(handle: unknown): PublishedWeightsHandle {
  if (typeof handle !== 'object' || handle === null || (handle as { format?: unknown }).format !== HANDLE_FORMAT) {
    throw expectedTypeError(`a handle from ema.shareable() (format '${HANDLE_FORMAT}')`, 'handle', handle);
  }
  const h = handle as Record<keyof PublishedWeightsHandle, unknown>;
  if (!Array.isArray(h.sizes) || !h.sizes.every((n) => Number.isSafeInteger(n) && (n as number) >= 0)) {
    throw expectedTypeError('an array of element counts (non-negative integers)', 'handle.sizes', h.sizes);
  }
  const sizes = h.sizes as number[];
  if (!Array.isArray(h.names) || h.names.length !== sizes.length || !h.names.every((n) => n === null || typeof n === 'string')) {
    throw expectedTypeError(`an array of ${sizes.length} names (string or null)`, 'handle.names', h.names);
  }
  if (!isSharedArrayBuffer(h.control)) throw expectedTypeError('a SharedArrayBuffer', 'handle.control', h.control);
  const controlBytes = CONTROL_WORDS * BigInt64Array.BYTES_PER_ELEMENT;
  if (h.control.byteLength !== controlBytes) {
    throw expectedRangeError(`${controlBytes} bytes`, 'handle.control', `${h.control.byteLength} bytes`);
  }
  if (!Array.isArray(h.buffers) || h.buffers.length !== 2) throw expectedTypeError('two SharedArrayBuffers', 'handle.buffers', h.buffers);
  const bytes = tensorOffsets(sizes).total * Float32Array.BYTES_PER_ELEMENT;
  h.buffers.forEach((buffer: unknown, b) => {
    if (!isSharedArrayBuffer(buffer)) throw expectedTypeError('a SharedArrayBuffer', `handle.buffers[${b}]`, buffer);
    if (buffer.byteLength !== bytes) {
      throw expectedRangeError(`${bytes} bytes (the tensors of handle.sizes)`, `handle.buffers[${b}]`, `${describe(buffer.byteLength)} bytes`);
    }
  });
  return handle as PublishedWeightsHandle;
}
