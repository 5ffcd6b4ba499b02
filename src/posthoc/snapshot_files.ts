// The post-hoc EMA snapshot folder: writing one snapshot (atomically, streamed one tensor at a time)
// and listing a folder's snapshots (headers only), checked as a set: one run's files, every track
// present at every time. File layout and metadata: snapshot_format.ts.
import { readdir } from 'node:fs/promises';
import * as path from 'node:path';
import { types } from 'node:util';
import { writeSafetensorsFile } from '../checkpoint/safetensors';
import { prefixError } from '../checkpoint/checkpoint_file';
import { SAFETENSORS_CODE } from '../dtypes';
import { codedError, describe, expectedRangeError, expectedTypeError, refuseUnknownOptions } from '../errors';
import { sigmaRelToGamma } from '../schedule_options';
import { checkParameterName } from '../state_rules';
import {
  encodeSnapshotMetadata, gammaAgrees, isSnapshotCandidate, MAX_SNAPSHOT_T, MAX_TRACKS, parseSnapshotFileName,
  SNAPSHOT_DTYPES, SNAPSHOT_UNITS, snapshotFileName, type SnapshotDType, type SnapshotMetadata, type SnapshotUnit,
} from './snapshot_format';
import { readSnapshotHeader, type SnapshotHeader } from './snapshot_header';
import { encodeTensors } from './storage_conversion';

/** One snapshot to write: one track's values at progress t, with the metadata its file records. */
export interface PostHocSnapshotInput extends SnapshotMetadata {
  names: readonly string[];
  /** Each tensor's shape (its product must be the tensor's length); default 1-D. */
  shapes?: readonly (readonly number[])[];
  values: readonly Float32Array[];
}

/** One snapshot file of a folder, as listPostHocSnapshots() found it. */
export interface PostHocSnapshot extends SnapshotMetadata {
  /** The file's full path. */
  path: string;
  /** Tensor names and shapes, in file order (the same for every snapshot of a folder). */
  names: readonly string[];
  shapes: readonly (readonly number[])[];
}

const INPUT_KEYS = ['names', 'shapes', 'values', 'gamma', 'sigmaRel', 't', 'unit', 'track', 'tracks', 'dtype'];

function integerIn(value: unknown, lo: number, hi: number, argument: string): number {
  if (typeof value !== 'number') throw expectedTypeError(`an integer in [${lo}, ${hi}]`, argument, value);
  if (!(Number.isSafeInteger(value) && value >= lo && value <= hi)) throw expectedRangeError(`an integer in [${lo}, ${hi}]`, argument, describe(value));
  return value;
}

function oneOf<T extends string>(value: unknown, allowed: readonly T[], argument: string): T {
  const expected = `one of ${allowed.map((a) => `'${a}'`).join(', ')}`;
  if (typeof value !== 'string') throw expectedTypeError(expected, argument, value);
  if (!allowed.includes(value as T)) throw expectedRangeError(expected, argument, describe(value));
  return value as T;
}

function checkSnapshotInput(s: unknown): PostHocSnapshotInput & { shapes: number[][] } {
  if (typeof s !== 'object' || s === null) throw expectedTypeError('a snapshot object { names, values, gamma, sigmaRel, t, unit, track, tracks, dtype }', 'snapshot', s);
  refuseUnknownOptions(s, INPUT_KEYS, 'the snapshot');
  const o = s as Record<string, unknown>;
  if (!Array.isArray(o.names)) throw expectedTypeError('an array of tensor names', 'snapshot.names', o.names);
  const names = o.names as unknown[];
  const seen = new Set<string>();
  names.forEach((name, i) => {
    if (typeof name !== 'string') throw expectedTypeError('a string', `snapshot.names[${i}]`, name);
    checkParameterName(name, `snapshot.names[${i}]`);
    if (name === '__metadata__') throw expectedRangeError('a name other than "__metadata__" (safetensors reserves it)', `snapshot.names[${i}]`, describe(name));
    if (seen.has(name)) throw expectedRangeError('unique names', `snapshot.names[${i}]`, `${describe(name)}, used twice`);
    seen.add(name);
  });
  if (!Array.isArray(o.values)) throw expectedTypeError('an array of Float32Array', 'snapshot.values', o.values);
  if (o.values.length !== names.length) throw expectedRangeError(`${names.length} tensors (one per name)`, 'snapshot.values', String(o.values.length));
  const values = o.values as unknown[];
  values.forEach((v, i) => {
    if (!types.isFloat32Array(v)) throw expectedTypeError('a Float32Array', `snapshot.values[${i}]`, v);
  });
  const shapes = checkShapes(o.shapes, values as Float32Array[]);
  const sigmaRel = o.sigmaRel as number;
  sigmaRelToGamma(sigmaRel); // its own RangeError for a sigmaRel out of (0, 0.2887)
  if (typeof o.gamma !== 'number') throw expectedTypeError('a positive number', 'snapshot.gamma', o.gamma);
  if (!gammaAgrees(o.gamma, sigmaRel)) {
    throw expectedRangeError(`the gamma of sigmaRel ${sigmaRel} (${sigmaRelToGamma(sigmaRel)})`, 'snapshot.gamma', describe(o.gamma));
  }
  const tracks = integerIn(o.tracks, 1, MAX_TRACKS, 'snapshot.tracks');
  return {
    names: names as string[],
    shapes,
    values: values as Float32Array[],
    gamma: o.gamma,
    sigmaRel,
    t: integerIn(o.t, 1, MAX_SNAPSHOT_T, 'snapshot.t'),
    unit: oneOf(o.unit, SNAPSHOT_UNITS, 'snapshot.unit'),
    track: integerIn(o.track, 0, tracks - 1, 'snapshot.track'),
    tracks,
    dtype: oneOf(o.dtype, SNAPSHOT_DTYPES, 'snapshot.dtype'),
  };
}

function checkShapes(shapes: unknown, values: readonly Float32Array[]): number[][] {
  if (shapes === undefined) return values.map((v) => [v.length]);
  if (!Array.isArray(shapes) || shapes.length !== values.length) {
    throw expectedTypeError(`undefined or an array of ${values.length} shapes`, 'snapshot.shapes', shapes);
  }
  return shapes.map((shape: unknown, i) => {
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw expectedTypeError('an array of non-negative integers', `snapshot.shapes[${i}]`, shape);
    }
    const product = shape.reduce((n: number, d: number) => n * d, 1);
    if (product !== values[i].length) {
      throw expectedRangeError(`a shape of ${values[i].length} elements (snapshot.values[${i}].length)`, `snapshot.shapes[${i}]`, `[${shape.join(', ')}]`);
    }
    return [...(shape as number[])];
  });
}

/**
 * Writes one snapshot into `dir` (which must exist) as `phema-<t>-<track>.safetensors`, atomically:
 * the file appears complete or not at all. Values are rounded to `dtype` to nearest even (float16
 * saturates at +-65504, as float16 shadows do). Resolves to the file's path.
 */
export async function writePostHocSnapshot(dir: string, snapshot: PostHocSnapshotInput): Promise<string> {
  if (typeof dir !== 'string' || dir === '') throw expectedTypeError('a folder path (a non-empty string)', 'dir', dir);
  const s = checkSnapshotInput(snapshot);
  const target = path.join(dir, snapshotFileName(s.t, s.track));
  const encoded = encodeTensors(s.values, s.dtype);
  try {
    const code = SAFETENSORS_CODE[s.dtype];
    await writeSafetensorsFile(
      target,
      s.names.map((name, i) => ({ name, dtype: code, shape: s.shapes[i], bytes: () => encoded.bytesOf(i) })),
      encodeSnapshotMetadata(s),
    );
  } finally {
    encoded.dispose();
  }
  return target;
}

/** A listed snapshot with where its tensors are (what synthesis reads). */
export interface ScannedSnapshot extends PostHocSnapshot {
  header: SnapshotHeader;
}

/** listPostHocSnapshots() with each file's header kept for reading its tensors. */
export async function scanSnapshotFolder(dir: string): Promise<ScannedSnapshot[]> {
  if (typeof dir !== 'string' || dir === '') throw expectedTypeError('a folder path (a non-empty string)', 'dir', dir);
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (error) {
    throw prefixError(error, `Cannot read the snapshot folder '${dir}': `);
  }
  const files: { file: string; t: number; track: number }[] = [];
  for (const file of names.filter(isSnapshotCandidate)) {
    const position = parseSnapshotFileName(file);
    if (position === undefined) {
      throw codedError('INVALID_CHECKPOINT', `Cannot read '${path.join(dir, file)}': not a post-hoc EMA snapshot: its name is not of the form phema-<t, 15 digits>-<track, 2 digits>.safetensors`);
    }
    files.push({ file, ...position });
  }
  files.sort((a, b) => a.t - b.t || a.track - b.track);
  const snapshots: ScannedSnapshot[] = [];
  for (const { file, t, track } of files) {
    const where = path.join(dir, file);
    const header = await readSnapshotHeader(where);
    if (header.t !== t || header.track !== track) {
      throw mismatch(where, `its metadata says t ${header.t}, track ${header.track}, but its name says t ${t}, track ${track}`);
    }
    const shapes = header.entries.map((e) => e.shape);
    snapshots.push({ ...withoutHeaderDetails(header), path: where, names: header.entries.map((e) => e.name), shapes, header });
  }
  checkSet(dir, snapshots);
  return snapshots;
}

function withoutHeaderDetails({ gamma, sigmaRel, t, unit, track, tracks, dtype }: SnapshotHeader): SnapshotMetadata {
  return { gamma, sigmaRel, t, unit, track, tracks, dtype };
}

/**
 * The snapshots in `dir`, sorted by (t, track), after checking each file's header (only headers are
 * read) and the set as a whole. Files not named `phema-*.safetensors` are ignored (so are the
 * hidden temporary files of an interrupted write). Errors name the file: a truncated or foreign
 * file (not this format, bad JSON, names or shapes that differ from the other snapshots), mixed
 * units, and a missing file (a time with files for some tracks but not all).
 */
export async function listPostHocSnapshots(dir: string): Promise<PostHocSnapshot[]> {
  return (await scanSnapshotFolder(dir)).map(({ header: _header, ...snapshot }) => snapshot);
}

function mismatch(file: string, what: string): Error {
  return codedError('INVALID_CHECKPOINT', `Cannot use '${file}' as a post-hoc EMA snapshot: ${what}`);
}

// One run's snapshots: the first file sets names, shapes, unit and track count; each track keeps
// its gamma; every time has all tracks.
function checkSet(dir: string, snapshots: readonly ScannedSnapshot[]): void {
  if (snapshots.length === 0) return;
  const first = snapshots[0];
  const gammaOf = new Map<number, ScannedSnapshot>();
  for (const s of snapshots) {
    const named = `'${path.basename(first.path)}'`;
    if (s.unit !== first.unit) throw mismatch(s.path, `its unit is '${s.unit}' but ${named} counts '${first.unit}': mixed units in one folder`);
    if (s.tracks !== first.tracks) throw mismatch(s.path, `it is one of ${s.tracks} tracks but ${named} is one of ${first.tracks}`);
    const difference = firstDifference(s, first);
    if (difference !== undefined) throw mismatch(s.path, `${difference} (compared with ${named}): not from the same model`);
    const sameTrack = gammaOf.get(s.track);
    if (sameTrack === undefined) gammaOf.set(s.track, s);
    else if (sameTrack.gamma !== s.gamma) {
      throw mismatch(s.path, `track ${s.track} has gamma ${s.gamma} here but ${sameTrack.gamma} in '${path.basename(sameTrack.path)}'`);
    }
  }
  for (let i = 0; i < snapshots.length; ) {
    const t = snapshots[i].t;
    const present = new Set<number>();
    for (; i < snapshots.length && snapshots[i].t === t; i++) present.add(snapshots[i].track);
    for (let track = 0; track < first.tracks; track++) {
      if (!present.has(track)) {
        throw codedError(
          'INVALID_CHECKPOINT',
          `Missing post-hoc EMA snapshot '${path.join(dir, snapshotFileName(t, track))}': time ${t} has files for track(s) ` +
            `${[...present].join(', ')} but not for track ${track} of ${first.tracks}`,
        );
      }
    }
  }
}

function firstDifference(s: PostHocSnapshot, reference: PostHocSnapshot): string | undefined {
  if (s.names.length !== reference.names.length) return `it has ${s.names.length} tensors, not ${reference.names.length}`;
  for (let i = 0; i < s.names.length; i++) {
    if (s.names[i] !== reference.names[i]) return `tensor ${i} is ${JSON.stringify(s.names[i])}, not ${JSON.stringify(reference.names[i])}`;
    const a = s.shapes[i];
    const b = reference.shapes[i];
    if (a.length !== b.length || a.some((d, j) => d !== b[j])) {
      return `tensor ${JSON.stringify(s.names[i])} has shape [${a.join(', ')}], not [${b.join(', ')}]`;
    }
  }
  return undefined;
}
