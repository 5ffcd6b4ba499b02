// The streamed weighted sum over snapshot files: sum_k c_k * snapshot_k, tensor by tensor, without
// ever holding more than the output, one group of tensors' accumulator, and that group's bytes of
// one snapshot.
//
// Tensors are taken in groups of consecutive tensors (file order) of up to GROUP_ELEMENTS elements
// (a larger tensor is a group of its own). For each group, every snapshot file is opened in turn,
// its size and header bytes compared with what was listed (the folder may have changed since; a
// byte comparison, not a second parse of the header per group), the group's bytes
// read with one bounded positional read, decoded to float32 by the native arena (the same
// conversion as the shadows'), and added into the accumulator. So a file is opened once per group,
// never more than one file is open, and memory beyond the output is bounded by the group size.
//
// The accumulator is float64: the coefficients have mixed signs (for sigmaRel 0.2 from EDM2's two
// default tracks, sum |c| is about 2 while sum c is 1) and there can be hundreds of snapshots, so a
// float32 sum would add rounding at every term; in float64 the only rounding that matters is the
// final one to float32. It costs 8 bytes per element of the current group only.
import { codedError } from '../errors';
import { namingPathOnError, openRegularFile } from '../checkpoint/checkpoint_file';
import type { HeaderEntry } from '../checkpoint/safetensors_decode';
import type { ScannedSnapshot } from './snapshot_files';
import { readAt, readHeaderBytes } from './snapshot_header';
import { TensorDecoder } from './storage_conversion';

/** Elements per group of tensors (accumulator 8 bytes, decoded 4, raw at most 4, arena at most 4 per element). */
export const GROUP_ELEMENTS = 1 << 22;

interface Group {
  first: number; // index of the first tensor (file order)
  count: number;
  sizes: number[];
}

function groupsOf(entries: readonly HeaderEntry[], elementsPerGroup: number): Group[] {
  const groups: Group[] = [];
  let current: Group | null = null;
  let elements = 0;
  entries.forEach((entry, i) => {
    const size = entry.shape.reduce((n, d) => n * d, 1);
    if (current === null || elements + size > elementsPerGroup) {
      current = { first: i, count: 0, sizes: [] };
      groups.push(current);
      elements = 0;
    }
    current.count++;
    current.sizes.push(size);
    elements += size;
  });
  return groups;
}

/**
 * sum_k coefficients[k] * snapshots[k], per tensor, rounded once to float32. Every snapshot must
 * have the same tensors (listPostHocSnapshots checked that); `elementsPerGroup` is for tests.
 */
export async function weightedSum(
  snapshots: readonly ScannedSnapshot[],
  coefficients: Float64Array,
  elementsPerGroup = GROUP_ELEMENTS,
): Promise<Float32Array[]> {
  const entries = snapshots[0].header.entries;
  const out: Float32Array[] = [];
  for (const group of groupsOf(entries, elementsPerGroup)) {
    const acc = group.sizes.map((n) => new Float64Array(n));
    const decoded = group.sizes.map((n) => new Float32Array(n));
    const decoder = new TensorDecoder(group.sizes);
    const raw = new Uint8Array(4 * group.sizes.reduce((n, s) => n + s, 0)); // float32 is the widest snapshot dtype
    try {
      for (let k = 0; k < snapshots.length; k++) {
        await readGroup(snapshots[k], group, raw, decoder, decoded);
        const c = coefficients[k];
        for (let i = 0; i < group.count; i++) addScaled(acc[i], c, decoded[i]);
      }
    } finally {
      decoder.dispose();
    }
    for (const a of acc) out.push(Float32Array.from(a));
  }
  return out;
}

function addScaled(acc: Float64Array, c: number, values: Float32Array): void {
  for (let j = 0; j < acc.length; j++) acc[j] += c * values[j];
}

// The group's tensors of one snapshot, decoded into `decoded`.
async function readGroup(snapshot: ScannedSnapshot, group: Group, raw: Uint8Array, decoder: TensorDecoder, decoded: Float32Array[]): Promise<void> {
  const { file, size } = await openRegularFile(snapshot.path);
  try {
    await namingPathOnError(snapshot.path, async () => {
      const { header } = snapshot;
      const headerBytes = await readHeaderBytes(file, size);
      if (size !== header.size || !Buffer.from(headerBytes).equals(header.headerBytes)) {
        throw codedError('INVALID_CHECKPOINT', 'the file changed since the snapshot folder was listed (its size or header differs); list and synthesize again');
      }
      const entries = header.entries.slice(group.first, group.first + group.count);
      const begin = entries[0].begin;
      const length = entries[entries.length - 1].end - begin;
      const bytes = await readAt(file, raw, length, header.dataStart + begin);
      decoder.decode(header.dtype, entries.map((e) => bytes.subarray(e.begin - begin, e.end - begin)), decoded);
    });
  } finally {
    await file.close();
  }
}
