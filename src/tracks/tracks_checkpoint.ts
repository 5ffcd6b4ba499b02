// EmaTracks' checkpoint: a folder holding one ordinary EMA checkpoint per track (each readable by
// ExponentialMovingAverage.load() and `model-ema inspect`) and `tracks.json`, which names them.
// The set is replaced as a whole: each save writes files under a fresh generation name, then the
// manifest (atomically), and only then removes the files the previous manifest named. A crash at
// any point leaves a manifest whose files are all there (at worst some unreferenced files).
import { randomBytes } from 'node:crypto';
import { mkdirSync, statSync, type Stats } from 'node:fs';
import { mkdir, stat, unlink } from 'node:fs/promises';
import * as path from 'node:path';
import { writeFileAtomic } from '../checkpoint/atomic_write';
import { fileKind, namingPathOnError, openRegularFile } from '../checkpoint/checkpoint_file';
import { describeJsonValue, isObject } from '../checkpoint/untrusted';
import { codedError } from '../errors';

export const TRACKS_FORMAT = 'model-ema-tracks';
export const TRACKS_FORMAT_VERSION = 1;
export const MANIFEST_NAME = 'tracks.json';
const MAX_MANIFEST_BYTES = 1 << 20;
const TRACK_FILE = /^[0-9a-z]+-[0-9]+\.safetensors$/;

export interface TracksManifest {
  format: typeof TRACKS_FORMAT;
  version: typeof TRACKS_FORMAT_VERSION;
  /** In the EmaTracks' order; `file` is a name inside the folder. */
  tracks: { name: string; file: string }[];
}

/** The manifest of a new save of `names`: file names under a fresh generation. */
export function newManifest(names: readonly string[]): TracksManifest {
  const generation = `${Date.now().toString(36)}${randomBytes(4).toString('hex')}`;
  return { format: TRACKS_FORMAT, version: TRACKS_FORMAT_VERSION, tracks: names.map((name, i) => ({ name, file: `${generation}-${i}.safetensors` })) };
}

export function manifestPath(dir: string): string {
  return path.join(dir, MANIFEST_NAME);
}

export async function prepareFolder(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true }).catch(async (error: unknown) => {
    throw folderError(dir, error, await stat(dir).catch(() => null));
  });
}

/** prepareFolder() at once: save() copies the state at its call, into files of a folder that must exist by then. */
export function prepareFolderSync(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true });
  } catch (error) {
    let stats: Stats | null = null;
    try {
      stats = statSync(dir);
    } catch {
      // the mkdir error says it
    }
    throw folderError(dir, error, stats);
  }
}

// mkdir's EEXIST for a FIFO, a device or a file says nothing of what is wrong.
function folderError(dir: string, error: unknown, stats: Stats | null): Error {
  const reason = stats === null || stats.isDirectory() ? (error as Error).message : `it is ${fileKind(stats)}, not a folder`;
  return codedError('INVALID_ARGUMENT', `Cannot save to '${dir}': ${reason}`, { cause: error });
}

/**
 * Removes a failed save's files, unless the manifest now names them (it was renamed in place, then
 * something after failed). Best effort: some may never have been written.
 */
export async function removeTrackFiles(dir: string, files: readonly string[]): Promise<void> {
  const listed = new Set((await readManifest(dir).catch(() => null))?.tracks.map((t) => path.join(dir, t.file)));
  await Promise.all(files.filter((f) => !listed.has(f)).map((file) => unlink(file).catch(() => undefined)));
}

/**
 * After the track files are written: the manifest, atomically, then the files of the manifest it
 * replaced that it does not name (saves to one folder run in call order, so that is never a file of
 * a save still in progress).
 */
export async function commitManifest(dir: string, manifest: TracksManifest): Promise<void> {
  const previous = await readManifest(dir).catch(() => null);
  const bytes = new TextEncoder().encode(`${JSON.stringify(manifest, null, 2)}\n`);
  await writeFileAtomic(manifestPath(dir), async (sink) => sink.append(bytes));
  const kept = new Set(manifest.tracks.map((t) => t.file));
  for (const { file } of previous?.tracks ?? []) {
    if (!kept.has(file)) await unlink(path.join(dir, file)).catch(() => undefined);
  }
}

/** Reads and checks `dir`'s manifest: regular file, bounded size, the format, confined file names. */
export async function readManifest(dir: string): Promise<TracksManifest> {
  const file = manifestPath(dir);
  const { file: handle, size } = await openRegularFile(file);
  return namingPathOnError(file, async () => {
    try {
      if (size > MAX_MANIFEST_BYTES) throw invalid(`it has ${size} bytes, more than a manifest's ${MAX_MANIFEST_BYTES}`);
      const buffer = Buffer.alloc(size);
      const { bytesRead } = await handle.read(buffer, 0, size, 0);
      return decodeManifest(buffer.subarray(0, bytesRead).toString('utf8'));
    } finally {
      await handle.close();
    }
  });
}

function decodeManifest(text: string): TracksManifest {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw invalid(`it is not JSON (${(error as Error).message})`);
  }
  if (!isObject(json) || json.format !== TRACKS_FORMAT) throw invalid(`its format is ${isObject(json) ? describeJsonValue(json.format) : 'missing'}, not '${TRACKS_FORMAT}'`);
  if (json.version !== TRACKS_FORMAT_VERSION) throw invalid(`its version is ${describeJsonValue(json.version)}; this version of model-ema reads ${TRACKS_FORMAT_VERSION}`);
  if (!Array.isArray(json.tracks) || json.tracks.length === 0) throw invalid(`its tracks are ${describeJsonValue(json.tracks)}, not a non-empty list`);
  const seen = new Set<string>();
  const files = new Set<string>();
  const tracks = json.tracks.map((t: unknown, i: number) => {
    if (!isObject(t) || typeof t.name !== 'string' || typeof t.file !== 'string') throw invalid(`tracks[${i}] is ${describeJsonValue(t)}, not { name, file }`);
    if (!TRACK_FILE.test(t.file)) throw invalid(`tracks[${i}].file ${describeJsonValue(t.file)} is not a track file name of this folder`);
    if (seen.has(t.name)) throw invalid(`track ${describeJsonValue(t.name)} is listed twice`);
    if (files.has(t.file)) throw invalid(`tracks[${i}].file ${describeJsonValue(t.file)} is named by another track too`);
    seen.add(t.name);
    files.add(t.file);
    return { name: t.name, file: t.file };
  });
  return { format: TRACKS_FORMAT, version: TRACKS_FORMAT_VERSION, tracks };
}

/** The manifest's file for each of `names` (the EmaTracks' tracks), which it must list exactly. */
export function trackFiles(dir: string, manifest: TracksManifest, names: readonly string[]): string[] {
  const listed = manifest.tracks.map((t) => t.name);
  const missing = names.filter((n) => !listed.includes(n));
  const extra = listed.filter((n) => !names.includes(n));
  if (missing.length > 0 || extra.length > 0) {
    throw codedError(
      'INVALID_CHECKPOINT',
      `Cannot load '${manifestPath(dir)}': its tracks [${listed.map((n) => JSON.stringify(n)).join(', ')}] are not this EmaTracks' ` +
        `[${names.map((n) => JSON.stringify(n)).join(', ')}]`,
    );
  }
  return names.map((n) => path.join(dir, manifest.tracks.find((t) => t.name === n)!.file));
}

function invalid(reason: string): Error {
  return codedError('INVALID_CHECKPOINT', `not an EmaTracks manifest: ${reason}`);
}
