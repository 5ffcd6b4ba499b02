// Reading one snapshot file's header, and nothing else: the file is opened as checkpoint_file.ts
// opens checkpoints (regular files only, never blocking on a FIFO, size fixed by fstat), and every
// read is bounded by that size and MAX_HEADER_BYTES before anything is allocated.
import type { FileHandle } from 'node:fs/promises';
import { codedError } from '../errors';
import { namingPathOnError, openRegularFile } from '../checkpoint/checkpoint_file';
import { MAX_HEADER_BYTES, parseHeader, type HeaderEntry } from '../checkpoint/safetensors_decode';
import { SAFETENSORS_CODE } from '../dtypes';
import { parseSnapshotMetadata, type SnapshotMetadata } from './snapshot_format';

/** A snapshot's validated header: its metadata, and where each tensor's bytes are in the file. */
export interface SnapshotHeader extends SnapshotMetadata {
  /** Tensors in data order (the order they were written in). */
  entries: HeaderEntry[];
  /** Offset of the data buffer in the file: entry offsets are relative to it. */
  dataStart: number;
  /** The file's size when it was read. */
  size: number;
  /** The header's JSON bytes as read: synthesis compares them to tell that a file has not changed. */
  headerBytes: Uint8Array;
}

function invalid(what: string): never {
  throw codedError('INVALID_CHECKPOINT', what);
}

/** Reads exactly `length` bytes at `position` (the caller has checked both against the file's size). */
export async function readAt(file: FileHandle, buffer: Uint8Array, length: number, position: number): Promise<Uint8Array> {
  let done = 0;
  while (done < length) {
    const { bytesRead } = await file.read(buffer, done, Math.min(length - done, 1 << 30), position + done);
    if (bytesRead === 0) invalid(`the file ended at byte ${position + done} while reading ${length} bytes from ${position} (it shrank while being read)`);
    done += bytesRead;
  }
  return buffer.subarray(0, length);
}

/**
 * The header JSON bytes of an open file of `size` bytes, after bounded checks of the length field.
 * Errors do not name the file (the caller does).
 */
export async function readHeaderBytes(file: FileHandle, size: number): Promise<Uint8Array> {
  if (size < 8) invalid(`the file is truncated: it has ${size} bytes, fewer than the 8-byte header length field of a safetensors file`);
  const prefix = await readAt(file, new Uint8Array(8), 8, 0);
  const headerLength = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
  if (headerLength > BigInt(MAX_HEADER_BYTES)) {
    invalid(`not a post-hoc EMA snapshot: its header length field says ${headerLength} bytes, more than the ${MAX_HEADER_BYTES}-byte limit`);
  }
  if (headerLength > BigInt(size - 8)) {
    invalid(`the file is truncated: its header length field says ${headerLength} bytes but only ${size - 8} bytes follow it`);
  }
  return readAt(file, new Uint8Array(Number(headerLength)), Number(headerLength), 8);
}

/** Validates the header of an open snapshot file of `size` bytes. Errors do not name the file (the caller does). */
export async function readSnapshotHeaderFrom(file: FileHandle, size: number): Promise<SnapshotHeader> {
  const headerBytes = await readHeaderBytes(file, size);
  const dataStart = 8 + headerBytes.length;
  const claimed = claimedDataLength(headerBytes);
  if (claimed !== undefined && claimed > size - dataStart) {
    invalid(`the file is truncated: its header describes ${claimed} bytes of tensor data but only ${size - dataStart} bytes follow the header`);
  }
  const { metadata, entries } = parseHeader(headerBytes, size - dataStart);
  const parsed = parseSnapshotMetadata(metadata);
  const code = SAFETENSORS_CODE[parsed.dtype];
  const odd = entries.find((e) => e.dtype !== code);
  if (odd !== undefined) invalid(`not a post-hoc EMA snapshot: tensor ${JSON.stringify(odd.name)} is ${odd.dtype}, but the metadata says every tensor is ${parsed.dtype} (${code})`);
  return { ...parsed, entries, dataStart, size, headerBytes };
}

/** Opens `path` safely and reads its header; errors name the path ("Cannot read '<path>': ..."). */
export async function readSnapshotHeader(path: string): Promise<SnapshotHeader> {
  const { file, size } = await openRegularFile(path);
  try {
    return await namingPathOnError(path, () => readSnapshotHeaderFrom(file, size));
  } finally {
    await file.close();
  }
}

// The largest data_offsets end the header claims, if the header is readable JSON at all: a file cut
// short is then reported as truncated rather than as a tensor "past the end of the data buffer".
function claimedDataLength(headerBytes: Uint8Array): number | undefined {
  try {
    const root = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(headerBytes)) as Record<string, unknown>;
    let most = 0;
    for (const [name, value] of Object.entries(root)) {
      if (name === '__metadata__') continue;
      const end = (value as { data_offsets?: unknown[] } | null)?.data_offsets?.[1];
      if (typeof end === 'number' && Number.isSafeInteger(end)) most = Math.max(most, end);
    }
    return most;
  } catch {
    return undefined;
  }
}
