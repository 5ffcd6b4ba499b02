// Reading a safetensors file as a stream: the length field and header first (validated, shown to
// the caller before any tensor data is read), then the data buffer in chunks of at most
// STREAM_CHUNK_BYTES through three reused buffers, each tensor's bytes handed to its receiver in
// order. While the caller works on one chunk (checksums on this thread, copies into an arena on
// libuv's pool), the next one is read (on the pool too), and no buffer ever holds more than one
// chunk, however large the file: a load needs the memory of its destination plus 3 chunks.
import { type FileHandle } from 'node:fs/promises';
import { SAFETENSORS_BYTES } from '../dtypes';
import type { ProgressListener } from './checkpoint_format';
import { openRegularFile } from './checkpoint_file';
import { checkedHeaderLength, fail, parseHeader, type HeaderEntry, type SafetensorsHeader } from './safetensors_decode';

/** The most bytes one read buffer holds; STREAM_BUFFERS of them are all the memory a streamed read allocates. */
export const STREAM_CHUNK_BYTES = 16 << 20;
export const STREAM_BUFFERS = 3;

/** Where one tensor's bytes go as they arrive. */
export interface TensorReceiver {
  /**
   * `bytes` (whole elements of the tensor's dtype, a view of a SharedArrayBuffer) are the tensor's
   * data from `byteOffset` on; called in order, without gaps. The view stays unchanged until the
   * returned promise (if any) settles, and not longer: then its buffer is reused.
   */
  chunk(bytes: Uint8Array, byteOffset: number): void | Promise<void>;
  /** Every byte of the tensor has arrived (also for a tensor of 0 bytes). */
  end(): void;
}

/**
 * Reads `path`: refuses anything but a regular file, validates the header, calls `open` with it
 * (throw there to stop before any tensor data is read), then streams every tensor's bytes to the
 * receiver `open` returned for it, in data order. Errors from receivers and `onProgress` abort the
 * read and pass through; a file that ends early (it shrank while being read) is an error.
 */
export async function streamSafetensorsFile(
  path: string,
  open: (header: SafetensorsHeader) => (tensor: HeaderEntry) => TensorReceiver,
  onProgress?: ProgressListener,
): Promise<SafetensorsHeader> {
  const { file, size } = await openRegularFile(path); // refuses FIFOs, devices, directories
  try {
    if (size < 8) fail(`the file has ${size} bytes, fewer than the 8-byte header length field`);
    const prefix = await readExactly(file, Buffer.allocUnsafe(8), 0);
    const raw = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
    const headerLength = checkedHeaderLength(raw, size);
    const dataStart = 8 + headerLength;
    const { metadata, entries } = parseHeader(await readExactly(file, Buffer.allocUnsafe(headerLength), 8), size - dataStart);
    const header: SafetensorsHeader = { metadata, tensors: entries.map(({ name, dtype, shape }) => ({ name, dtype, shape: [...shape] })) };
    const receiverOf = open(header);
    const receivers = entries.map((entry) => receiverOf(entry));
    await streamData(file, dataStart, size - dataStart, entries, receivers, (bytes, totalBytes) => onProgress?.({ file: path, bytes, totalBytes }));
    return header;
  } finally {
    await file.close();
  }
}

/** The data buffer, chunk by chunk, to the receivers; entries are in data order and tile it (parseHeader checked). */
async function streamData(
  file: FileHandle,
  dataStart: number,
  total: number,
  entries: readonly HeaderEntry[],
  receivers: readonly TensorReceiver[],
  progress: (bytes: number, total: number) => void,
): Promise<void> {
  // What receivers still do with each buffer (their promises, whose failure is kept, never left unhandled).
  const uses: Promise<void>[][] = Array.from({ length: STREAM_BUFFERS }, () => []);
  let failure: { error: unknown } | null = null;
  const release = async (b: number): Promise<void> => {
    const pending = uses[b];
    uses[b] = [];
    await Promise.all(pending);
    if (failure !== null) throw failure.error;
  };
  let next = 0; // the first entry not yet ended
  const deliver = (chunk: Uint8Array, start: number, b: number): void => {
    const end = start + chunk.length;
    for (; next < entries.length; next++) {
      const { begin, end: tensorEnd } = entries[next];
      const from = Math.max(begin, start);
      const to = Math.min(tensorEnd, end);
      if (to > from) {
        const work = receivers[next].chunk(chunk.subarray(from - start, to - start), from - begin);
        if (work) uses[b].push(work.catch((error: unknown) => void (failure ??= { error })));
      }
      if (tensorEnd > end) return; // continues in the next chunk
      receivers[next].end();
    }
  };
  if (total === 0) {
    deliver(new Uint8Array(0), 0, 0);
    if (entries.length > 0) progress(0, 0);
    return;
  }
  const chunkEnd = chunkEnds(entries, total);
  const size = Math.min(STREAM_CHUNK_BYTES, total);
  // SharedArrayBuffers: receivers may hand views of them to native work on other threads.
  const buffers = Array.from({ length: STREAM_BUFFERS }, () => new Uint8Array(new SharedArrayBuffer(size)));
  const read = async (k: number, start: number): Promise<Uint8Array> => {
    const b = k % STREAM_BUFFERS;
    await release(b); // whatever still reads this buffer, from STREAM_BUFFERS chunks ago
    return readExactly(file, buffers[b].subarray(0, chunkEnd(start) - start), dataStart + start);
  };
  let pending: Promise<Uint8Array> | null = read(0, 0);
  try {
    for (let k = 0, start = 0; pending !== null; k++) {
      const chunk: Uint8Array = await pending;
      const end = start + chunk.length;
      // The next read fills another buffer while this chunk is checked and copied.
      pending = end < total ? read(k + 1, end) : null;
      deliver(chunk, start, k % STREAM_BUFFERS);
      progress(end, total);
      start = end;
    }
    for (let b = 0; b < STREAM_BUFFERS; b++) await release(b);
  } catch (error) {
    // The file is closed, and the receivers' destinations freed, only once nothing uses them.
    await pending?.catch(() => undefined);
    await Promise.all(uses.flat());
    throw error;
  }
}

/**
 * Where the chunk starting at `start` ends: at most STREAM_CHUNK_BYTES on, moved back to an element
 * boundary of the tensor it ends in, so that receivers always get whole elements.
 */
function chunkEnds(entries: readonly HeaderEntry[], total: number): (start: number) => number {
  let index = 0;
  return (start) => {
    const limit = Math.min(start + STREAM_CHUNK_BYTES, total);
    while (entries[index].end < limit) index++; // chunks only move forward
    const { begin, end, dtype } = entries[index];
    if (end === limit) return limit;
    const element = SAFETENSORS_BYTES[dtype];
    // Past `start` by at least one element: `start` is an element boundary and the chunk spans several elements.
    return begin + Math.floor((limit - begin) / element) * element;
  };
}

/** Fills `into` from `position`, looping over short reads; an early end of file is an error. */
async function readExactly(file: FileHandle, into: Uint8Array, position: number): Promise<Uint8Array> {
  for (let done = 0; done < into.length; ) {
    const { bytesRead } = await file.read(into, done, into.length - done, position + done);
    if (bytesRead === 0) fail(`the file ended at byte ${position + done} while reading ${into.length} bytes from ${position} (it shrank while being read)`);
    done += bytesRead;
  }
  return into;
}
