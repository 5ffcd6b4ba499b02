// Post-hoc EMA synthesis (EDM2, Algorithm 3): the EMA of any sigmaRel at a snapshot time, from the
// snapshots of two or more power-function tracks in a folder. The coefficients come from
// profile.ts; the weighted sum streams the files (weighted_sum.ts). synthesizeInto() writes the
// result into an EMA's shadows, into parameters, or into a safetensors file.
import { writeSafetensorsFile } from '../checkpoint/safetensors';
import { parameterKeys } from '../checkpoint/checkpoint_format';
import { ExponentialMovingAverage } from '../ema';
import { codedError, describe, expectedRangeError, expectedTypeError, invalidArgument, refuseUnknownOptions, withCode } from '../errors';
import { toEntries, type ParameterEntry } from '../parameters';
import { sigmaRelToGamma } from '../schedule_options';
import { solvePhemaCoefficients } from './profile';
import { scanSnapshotFolder, type PostHocSnapshot, type ScannedSnapshot } from './snapshot_files';
import { weightedSum } from './weighted_sum';

export interface SynthesisOptions {
  /** The profile width to reconstruct, in (0, 0.2887). */
  sigmaRel: number;
  /** A snapshot time (in the snapshots' unit); default: the last one. Snapshots after it are not used. */
  at?: number;
}

export interface SynthesisResult {
  /** Tensor names and shapes, in the snapshot files' order. */
  names: string[];
  shapes: number[][];
  /** The synthesized EMA, one Float32Array per tensor. */
  values: Float32Array[];
  /** The weight of each snapshot used (they sum to 1), in the order of `snapshots`. */
  coefficients: Float64Array;
  /** The snapshots used: every one with t <= at, sorted by (t, track). */
  snapshots: PostHocSnapshot[];
  /** The target: its sigmaRel and gamma, its time; and the system's condition number estimate. */
  sigmaRel: number;
  gamma: number;
  at: number;
  condition: number;
}

const OPTION_KEYS = ['sigmaRel', 'at'];

function parseOptions(options: unknown, operation: string): { sigmaRel: number; gamma: number; at: number | undefined } {
  if (typeof options !== 'object' || options === null) throw expectedTypeError('an options object { sigmaRel, at? }', `${operation} options`, options);
  refuseUnknownOptions(options, OPTION_KEYS, `${operation} options`);
  const { sigmaRel, at } = options as Partial<Record<keyof SynthesisOptions, unknown>>;
  let gamma: number;
  try {
    gamma = sigmaRelToGamma(sigmaRel as number);
  } catch (error) {
    // sigmaRelToGamma's own TypeError or RangeError, naming this option instead of a schedule's.
    const e = error as Error;
    throw withCode(new (e instanceof RangeError ? RangeError : TypeError)(e.message.replace('schedule.sigmaRel', `${operation} options.sigmaRel`)), 'INVALID_ARGUMENT');
  }
  if (at !== undefined && typeof at !== 'number') throw expectedTypeError('a snapshot time (a number) or undefined', `${operation} options.at`, at);
  return { sigmaRel: sigmaRel as number, gamma, at: at as number | undefined };
}

/** `at` must be one of the snapshot times; the error lists the nearest ones. */
function checkAt(at: number, times: readonly number[], operation: string): void {
  if (times.includes(at)) return;
  const below = times.filter((t) => t < at).at(-1);
  const above = times.find((t) => t > at);
  const nearest = [below, above].filter((t) => t !== undefined).join(' and ');
  throw expectedRangeError(
    `one of the ${times.length} snapshot times (${times[0]} to ${times[times.length - 1]})`,
    `${operation} options.at`,
    `${describe(at)}; the nearest snapshot time${below !== undefined && above !== undefined ? 's are' : ' is'} ${nearest}`,
  );
}

interface Plan {
  sigmaRel: number;
  used: ScannedSnapshot[];
  coefficients: Float64Array;
  gamma: number;
  at: number;
  condition: number;
}

// Everything but reading tensors: the folder listed and checked, the coefficients solved.
async function plan(dir: string, options: unknown, operation: string): Promise<Plan> {
  const { sigmaRel, gamma, at: requested } = parseOptions(options, operation);
  const all = await scanSnapshotFolder(dir);
  if (all.length === 0) throw codedError('INVALID_CHECKPOINT', `${operation}: no post-hoc EMA snapshots (phema-*.safetensors) in '${dir}'`);
  const times = [...new Set(all.map((s) => s.t))];
  const at = requested ?? times[times.length - 1];
  checkAt(at, times, operation);
  const used = all.filter((s) => s.t <= at);
  const { coefficients, condition } = solvePhemaCoefficients(used.map(({ t, gamma: g }) => ({ t, gamma: g })), { t: at, gamma });
  return { sigmaRel, used, coefficients, gamma, at, condition };
}

async function execute({ sigmaRel, used, coefficients, gamma, at, condition }: Plan): Promise<SynthesisResult> {
  const values = await weightedSum(used, coefficients);
  return {
    names: [...used[0].names],
    shapes: used[0].shapes.map((s) => [...s]),
    values,
    coefficients,
    snapshots: used.map(({ header: _header, ...snapshot }) => snapshot),
    sigmaRel,
    gamma,
    at,
    condition,
  };
}

/**
 * Reconstructs the EMA of `sigmaRel` at snapshot time `at` (default: the last) from the snapshots
 * in `dir` (see listPostHocSnapshots for the checks), reading one group of tensors of one file at
 * a time. Errors: sigmaRel out of range (RangeError), `at` not a snapshot time (naming the nearest),
 * fewer than two distinct gammas, an ill-conditioned system (with its condition estimate).
 */
export async function synthesize(dir: string, options: SynthesisOptions): Promise<SynthesisResult> {
  return execute(await plan(dir, options, 'synthesize()'));
}

/** Where synthesizeInto() puts the result. */
export type SynthesisTarget = ExponentialMovingAverage | readonly unknown[] | string;

/**
 * synthesize(), then writes the result: into an ExponentialMovingAverage's shadows (through
 * stateDict()/loadStateDict(), so its counters and any store()d backup stay), into parameters
 * (an array of parameters of any registered kind, or `{ name, value }`), or into a float32
 * safetensors file at a path (written atomically). Tensor names must match the snapshots' (an
 * unnamed parameter is named by its index, as in checkpoints); nothing is written on a mismatch.
 */
export async function synthesizeInto(dir: string, options: SynthesisOptions, target: SynthesisTarget): Promise<SynthesisResult> {
  const operation = 'synthesizeInto()';
  if (typeof target === 'string') {
    if (target === '') throw expectedTypeError('a file path (a non-empty string)', `${operation} target`, target);
    const result = await execute(await plan(dir, options, operation));
    await writeSafetensorsFile(target, result.names.map((name, i) => ({ name, dtype: 'F32', shape: result.shapes[i], bytes: () => result.values[i] })), {
      format: 'model-ema/phema-synthesized',
      sigma_rel: String(result.sigmaRel),
      gamma: String(result.gamma),
      t: String(result.at),
      unit: result.snapshots[0].unit,
      snapshots: String(result.snapshots.length),
    });
    return result;
  }
  if (target instanceof ExponentialMovingAverage) {
    const ema = target;
    const planned = await plan(dir, options, operation);
    checkNames(parameterKeys(ema.names), ema.sizes, planned.used[0], `${operation} target (the ExponentialMovingAverage)`);
    const result = await execute(planned);
    const state = ema.stateDict();
    state.shadowParams = result.values;
    ema.loadStateDict(state);
    return result;
  }
  if (!Array.isArray(target)) {
    throw expectedTypeError('an ExponentialMovingAverage, an array of parameters, or a file path', `${operation} target`, target);
  }
  const planned = await plan(dir, options, operation);
  const check = (): ParameterEntry[] => {
    const entries = toEntries(target, `${operation} target`);
    checkNames(parameterKeys(entries.map((e) => e.name ?? null)), entries.map((e) => e.kind.numel(e.value)), planned.used[0], `${operation} target`);
    return entries;
  };
  check(); // before the long read...
  const result = await execute(planned);
  const entries = check(); // ...and after it: a parameter may have been disposed meanwhile
  const buffers = entries.map((e) => e.kind.writeTarget(e.value));
  buffers.forEach((buffer, i) => buffer.set(result.values[i]));
  entries.forEach((e, i) => e.kind.commit(e.value, buffers[i]));
  return result;
}

function checkNames(keys: readonly string[], sizes: readonly number[], snapshot: PostHocSnapshot, argument: string): void {
  const { names, shapes } = snapshot;
  if (keys.length !== names.length) {
    throw expectedRangeError(`${names.length} parameters (one per snapshot tensor)`, argument, `${keys.length}`);
  }
  const i = keys.findIndex((key, j) => key !== names[j]);
  if (i >= 0) {
    throw invalidArgument(
      `${argument}: parameter ${i} is named ${JSON.stringify(keys[i])} but the snapshots' tensor ${i} is ${JSON.stringify(names[i])}; names must match in order`,
      RangeError,
    );
  }
  const numel = (shape: readonly number[]): number => shape.reduce((n, d) => n * d, 1);
  const k = sizes.findIndex((n, j) => n !== numel(shapes[j]));
  if (k >= 0) throw expectedRangeError(`${numel(shapes[k])} elements (snapshot tensor ${JSON.stringify(names[k])})`, `${argument} parameter ${k}`, String(sizes[k]));
}
