// The post-hoc EMA snapshot file: one safetensors file per (time, track), holding one track's
// shadows at progress t, with the profile that produced them in its metadata. File names are a
// pure function of (t, track), zero-padded so that sorting names sorts by (t, track), and so that
// a checker can tell which files a complete folder must hold.
//
// Metadata (all strings, as safetensors requires):
//   format "model-ema/phema", format_version "1", gamma and sigma_rel (shortest round-trip
//   decimal), t (integer), unit ("steps" | "samples"), track and tracks (integers), dtype.
import { codedError } from '../errors';
import { sigmaRelToGamma } from '../schedule_options';

export const SNAPSHOT_FORMAT = 'model-ema/phema';
export const SNAPSHOT_FORMAT_VERSION = '1';

export type SnapshotDType = 'float16' | 'bfloat16' | 'float32';
export const SNAPSHOT_DTYPES: readonly SnapshotDType[] = ['float16', 'bfloat16', 'float32'];
export type SnapshotUnit = 'steps' | 'samples';
export const SNAPSHOT_UNITS: readonly SnapshotUnit[] = ['steps', 'samples'];

/** The largest t a file name can hold (15 digits). */
export const MAX_SNAPSHOT_T = 999_999_999_999_999;
/** Tracks per folder: track indices are two digits. */
export const MAX_TRACKS = 100;

/** The profile and position of one snapshot, as its metadata records them. */
export interface SnapshotMetadata {
  gamma: number;
  sigmaRel: number;
  t: number;
  unit: SnapshotUnit;
  track: number;
  tracks: number;
  dtype: SnapshotDType;
}

/** `phema-<t, 15 digits>-<track, 2 digits>.safetensors`. */
export function snapshotFileName(t: number, track: number): string {
  return `phema-${String(t).padStart(15, '0')}-${String(track).padStart(2, '0')}.safetensors`;
}

/** Names the listing looks at; one that matches this but not {@link SNAPSHOT_NAME} is a foreign file. */
export const SNAPSHOT_NAME_PREFIX = 'phema-';
export const SNAPSHOT_NAME_SUFFIX = '.safetensors';
const SNAPSHOT_NAME = /^phema-(\d{15})-(\d{2})\.safetensors$/;

/** (t, track) of a well-formed snapshot file name, else undefined. */
export function parseSnapshotFileName(name: string): { t: number; track: number } | undefined {
  const match = SNAPSHOT_NAME.exec(name);
  return match === null ? undefined : { t: Number(match[1]), track: Number(match[2]) };
}

export function isSnapshotCandidate(name: string): boolean {
  return name.startsWith(SNAPSHOT_NAME_PREFIX) && name.endsWith(SNAPSHOT_NAME_SUFFIX);
}

export function encodeSnapshotMetadata(m: SnapshotMetadata): Record<string, string> {
  return {
    format: SNAPSHOT_FORMAT,
    format_version: SNAPSHOT_FORMAT_VERSION,
    gamma: String(m.gamma),
    sigma_rel: String(m.sigmaRel),
    t: String(m.t),
    unit: m.unit,
    track: String(m.track),
    tracks: String(m.tracks),
    dtype: m.dtype,
  };
}

const METADATA_KEYS = ['format', 'format_version', 'gamma', 'sigma_rel', 't', 'unit', 'track', 'tracks', 'dtype'];

function foreign(what: string): never {
  throw codedError('INVALID_CHECKPOINT', `not a model-ema post-hoc EMA snapshot: ${what}`);
}

const DECIMAL = /^-?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?$/i;
const INTEGER = /^\d{1,16}$/;

function numberField(metadata: Record<string, string>, key: string, valid: (v: number) => boolean, expected: string): number {
  const text = metadata[key];
  const value = DECIMAL.test(text) ? Number(text) : NaN;
  if (!valid(value)) foreign(`metadata ${key} is ${JSON.stringify(text)}, expected ${expected}`);
  return value;
}

/** Checks a file's metadata against the format; errors say what is wrong (the caller names the file). */
export function parseSnapshotMetadata(metadata: Record<string, string>): SnapshotMetadata {
  if (metadata.format !== SNAPSHOT_FORMAT) {
    foreign(`metadata format is ${metadata.format === undefined ? 'missing' : JSON.stringify(metadata.format)}, expected ${JSON.stringify(SNAPSHOT_FORMAT)}`);
  }
  if (metadata.format_version !== SNAPSHOT_FORMAT_VERSION) {
    foreign(`metadata format_version is ${JSON.stringify(metadata.format_version ?? null)}; this version of model-ema reads version ${SNAPSHOT_FORMAT_VERSION}`);
  }
  for (const key of METADATA_KEYS) if (metadata[key] === undefined) foreign(`metadata ${key} is missing`);
  const isInteger = (key: string, lo: number, hi: number) => (v: number) => INTEGER.test(metadata[key]) && v >= lo && v <= hi;
  const gamma = numberField(metadata, 'gamma', (v) => v > 0 && v < Infinity, 'a positive number');
  const sigmaRel = numberField(metadata, 'sigma_rel', (v) => v > 0 && v < Math.sqrt(1 / 12), 'a number in (0, 0.2887)');
  const t = numberField(metadata, 't', isInteger('t', 1, MAX_SNAPSHOT_T), `an integer in [1, ${MAX_SNAPSHOT_T}]`);
  const tracks = numberField(metadata, 'tracks', isInteger('tracks', 1, MAX_TRACKS), `an integer in [1, ${MAX_TRACKS}]`);
  const track = numberField(metadata, 'track', isInteger('track', 0, tracks - 1), `an integer in [0, ${tracks - 1}] (tracks is ${tracks})`);
  const unit = metadata.unit as SnapshotUnit;
  if (!SNAPSHOT_UNITS.includes(unit)) foreign(`metadata unit is ${JSON.stringify(unit)}, expected "steps" or "samples"`);
  const dtype = metadata.dtype as SnapshotDType;
  if (!SNAPSHOT_DTYPES.includes(dtype)) foreign(`metadata dtype is ${JSON.stringify(dtype)}, expected one of ${SNAPSHOT_DTYPES.join(', ')}`);
  if (!gammaAgrees(gamma, sigmaRel)) foreign(`metadata gamma ${gamma} is not the gamma of sigma_rel ${sigmaRel} (${sigmaRelToGamma(sigmaRel)})`);
  return { gamma, sigmaRel, t, unit, track, tracks, dtype };
}

/** Whether gamma is sigmaRel's gamma (to the bisection's accuracy, with room for a decimal round trip). */
export function gammaAgrees(gamma: number, sigmaRel: number): boolean {
  return Math.abs(gamma - sigmaRelToGamma(sigmaRel)) <= 1e-9 * gamma;
}
