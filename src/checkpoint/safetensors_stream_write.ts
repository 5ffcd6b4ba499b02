// Writing a safetensors file's data buffer as a stream: the tensors' bytes are copied into two
// reused buffers of at most STREAM_CHUNK_BYTES (several small tensors share one; a large one spans
// many), and each full buffer is written with one call while the next one is filled and the
// pieces just handed to the writer are checksummed. So save() needs no per-tensor allocations
// (fresh pages are the slowest part of a copy), writes in large calls, and hashes while the
// previous write runs on libuv's thread pool.
import { SAFETENSORS_BYTES } from '../dtypes';
import type { AtomicFileSink } from './atomic_write';
import { producedBytes, type TensorSource } from './safetensors_encode';
import { STREAM_CHUNK_BYTES } from './safetensors_stream_read';

/**
 * Appends every tensor's bytes (`byteLengths`, from layoutTensors) to `sink`, in order. Calls each
 * tensor's `written` with its pieces right after they were handed to the writer and `finished` after
 * its last one, and `onWritten(index)` once the tensor's last byte was written. Errors (a source's,
 * a listener's, the file system's) pass through, once no write is in flight.
 */
export async function writeTensorData(
  sink: AtomicFileSink,
  tensors: readonly TensorSource[],
  byteLengths: readonly number[],
  onWritten: (index: number) => void,
): Promise<void> {
  const size = Math.min(STREAM_CHUNK_BYTES, byteLengths.reduce((n, b) => n + b, 0));
  const buffers = [0, 1].map(() => Buffer.allocUnsafeSlow(size)); // only the filled part is ever written
  let which = 0;
  let fill = 0;
  let pieces: { tensor: number; bytes: Uint8Array }[] = []; // views of what the buffer holds
  let ended: number[] = []; // tensors whose last byte the buffer holds
  let writing: { done: Promise<void>; ended: number[] } | null = null;

  const settle = async (): Promise<void> => {
    if (writing === null) return;
    const { done, ended: written } = writing;
    await done;
    writing = null;
    for (const t of written) onWritten(t);
  };
  const flush = async (): Promise<void> => {
    await settle(); // one write at a time: the sink appends in order
    writing = { done: fill > 0 ? sink.append(buffers[which].subarray(0, fill)) : Promise.resolve(), ended };
    // The write runs on libuv's thread pool; the checksums of what it writes are computed here meanwhile.
    for (const { tensor, bytes } of pieces) tensors[tensor].written?.(bytes);
    for (const t of ended) tensors[t].finished?.();
    pieces = [];
    ended = [];
    fill = 0;
    which ^= 1; // the other buffer's write was settled above
  };

  try {
    for (let t = 0; t < tensors.length; t++) {
      const tensor = tensors[t];
      const length = byteLengths[t];
      const element = SAFETENSORS_BYTES[tensor.dtype];
      const whole = tensor.readInto === undefined ? producedBytes(tensor, length) : null;
      for (let offset = 0; offset < length; ) {
        const n = Math.min(length - offset, Math.floor((size - fill) / element) * element); // whole elements
        if (n === 0) {
          await flush();
          continue;
        }
        const out = buffers[which].subarray(fill, fill + n);
        if (whole === null) tensor.readInto!(out, offset);
        else out.set(whole.subarray(offset, offset + n));
        pieces.push({ tensor: t, bytes: out });
        fill += n;
        offset += n;
      }
      ended.push(t);
    }
    if (fill > 0 || ended.length > 0) await flush();
    await settle();
  } catch (error) {
    await (writing as { done: Promise<void> } | null)?.done.catch(() => undefined); // the file is closed only once no write uses it
    throw error;
  }
}
