// Post-hoc EMA synthesis (EDM2 Algorithm 3) against independent float64 implementations written
// here: the profile inner product against numerical quadrature of the profiles' product, the
// coefficients against plain Gaussian elimination, the synthesized tensors against float64 weighted
// sums of the stored snapshot values (decoded arithmetically), and, end to end, a synthesized
// sigmaRel against a power-function EMA of that sigmaRel simulated directly in float64.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { ExponentialMovingAverage } from '../src';
import { readSafetensorsFile } from '../src/checkpoint/safetensors';
import { ERROR_CODES } from '../src/errors';
import { MAX_CONDITION, profileInnerProduct, solvePhemaCoefficients, synthesize, synthesizeInto, writePostHocSnapshot, type PostHocSnapshotInput } from '../src/posthoc';
import { weightedSum } from '../src/posthoc/weighted_sum';
import { scanSnapshotFolder } from '../src/posthoc/snapshot_files';
import { sigmaRelToGamma } from '../src/schedule_options';
import { fillRandom, random, roundTo, ulp } from './reference';
import { quietBackend } from './tfjs_helpers';

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'model-ema-synth-'));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

const G05 = sigmaRelToGamma(0.05);
const G10 = sigmaRelToGamma(0.1);

// --- independent references -------------------------------------------------------------------

/** p_{t,g}(tau) = (g+1) tau^g / t^(g+1) on [0, t]. */
const profile = (t: number, g: number) => (tau: number): number => (tau <= t ? ((g + 1) * tau ** g) / t ** (g + 1) : 0);

/** Composite Gauss-Legendre (5 points per panel) of f over [0, b]. */
function integrate(f: (x: number) => number, b: number, panels = 2000): number {
  const nodes = [0, -0.5384693101056831, 0.5384693101056831, -0.906179845938664, 0.906179845938664];
  const weights = [0.5688888888888889, 0.47862867049936647, 0.47862867049936647, 0.23692688505618908, 0.23692688505618908];
  const h = b / panels;
  let sum = 0;
  for (let p = 0; p < panels; p++) {
    const mid = (p + 0.5) * h;
    for (let k = 0; k < 5; k++) sum += weights[k] * f(mid + (nodes[k] * h) / 2);
  }
  return (sum * h) / 2;
}

/** A x = b by Gaussian elimination with partial pivoting (no symmetry used). */
function gaussianSolve(a: number[][], b: number[]): number[] {
  const n = b.length;
  const m = a.map((row, i) => [...row, b[i]]);
  for (let k = 0; k < n; k++) {
    let p = k;
    for (let i = k + 1; i < n; i++) if (Math.abs(m[i][k]) > Math.abs(m[p][k])) p = i;
    [m[k], m[p]] = [m[p], m[k]];
    for (let i = k + 1; i < n; i++) {
      const f = m[i][k] / m[k][k];
      for (let j = k; j <= n; j++) m[i][j] -= f * m[k][j];
    }
  }
  const x = new Array<number>(n).fill(0);
  for (let i = n - 1; i >= 0; i--) {
    let s = m[i][n];
    for (let j = i + 1; j < n; j++) s -= m[i][j] * x[j];
    x[i] = s / m[i][i];
  }
  return x;
}

/** The reference coefficients: the inner products by quadrature, the solve by elimination. */
function referenceCoefficients(points: { t: number; gamma: number }[], target: { t: number; gamma: number }): number[] {
  const ip = (a: { t: number; gamma: number }, b: { t: number; gamma: number }) => {
    const pa = profile(a.t, a.gamma);
    const pb = profile(b.t, b.gamma);
    return integrate((x) => pa(x) * pb(x), Math.min(a.t, b.t));
  };
  const x = gaussianSolve(points.map((p) => points.map((q) => ip(p, q))), points.map((p) => ip(p, target)));
  const sum = x.reduce((s, v) => s + v, 0);
  return x.map((v) => v / sum);
}

// --- helpers ----------------------------------------------------------------------------------

const TRACKS = [0.05, 0.1];

async function writeSnapshot(t: number, track: number, names: string[], values: Float32Array[], extra: Partial<PostHocSnapshotInput> = {}): Promise<void> {
  const sigmaRel = extra.sigmaRel ?? TRACKS[track];
  await writePostHocSnapshot(dir, { names, values, gamma: sigmaRelToGamma(sigmaRel), sigmaRel, t, unit: 'steps', track, tracks: 2, dtype: 'float16', ...extra });
}

const storedAs = (v: number, dtype: 'float16' | 'bfloat16' | 'float32'): number =>
  dtype === 'float16' && Number.isFinite(v) && Math.abs(v) > 65504 ? Math.sign(v) * 65504 : roundTo(v, dtype);

// --- the math ---------------------------------------------------------------------------------

describe('profile inner product and coefficients', () => {
  test.each([
    [100, G05, 100, G10],
    [40, G05, 100, G10],
    [100, G05, 40, G10],
    [7, 0.5, 1000, 3],
    [1e6, G10, 3e5, G10],
  ])('<p(%d, %d), p(%d, %d)> equals the quadrature of the profiles\' product', (ta, ga, tb, gb) => {
    const exact = profileInnerProduct(ta, ga, tb, gb);
    const pa = profile(ta, ga);
    const pb = profile(tb, gb);
    const quadrature = integrate((x) => pa(x) * pb(x), Math.min(ta, tb));
    expect(Math.abs(exact - quadrature)).toBeLessThan(1e-9 * quadrature);
    expect(Math.abs(profileInnerProduct(tb, gb, ta, ga) - exact)).toBeLessThan(1e-14 * exact); // symmetric
  });

  test('the profile inner product refuses a time that is not positive, naming it', () => {
    expect(() => profileInnerProduct(0, 1, 1, 1)).toThrow(/a positive finite number for profileInnerProduct ta, ga\.t but received 0/);
  });

  test.each([
    ['3 times', [1000, 2000, 3000], 3000, 0.075],
    ['10 times, an earlier target, a wider profile', [100, 200, 300, 400, 500, 600, 700, 800, 900, 1000], 700, 0.15],
  ])('coefficients (%s) equal the quadrature + Gaussian elimination reference and sum to 1', (_what, times, at, sigmaRel) => {
    const points = times.filter((t) => t <= at).flatMap((t) => [{ t, gamma: G05 }, { t, gamma: G10 }]);
    const target = { t: at, gamma: sigmaRelToGamma(sigmaRel) };
    const { coefficients, condition } = solvePhemaCoefficients(points, target);
    const expected = referenceCoefficients(points, target);
    coefficients.forEach((c, i) => expect(Math.abs(c - expected[i])).toBeLessThan(1e-6 * Math.max(1, Math.abs(expected[i]))));
    expect(Math.abs(coefficients.reduce((s, c) => s + c, 0) - 1)).toBeLessThan(1e-12);
    expect(condition).toBeGreaterThan(1);
    expect(condition).toBeLessThan(MAX_CONDITION);
  });

  test('realistic sets pass: EDM2\'s two default tracks at 10, 50 and 200 evenly spaced times', () => {
    for (const n of [10, 50, 200]) {
      const points = Array.from({ length: n }, (_, i) => [{ t: (i + 1) * 4096, gamma: G05 }, { t: (i + 1) * 4096, gamma: G10 }]).flat();
      const { condition, coefficients } = solvePhemaCoefficients(points, { t: n * 4096, gamma: sigmaRelToGamma(0.2) });
      expect(condition).toBeLessThan(1e8); // measured: 2.2e2, 1.0e5, 2.7e7
      expect(Math.abs(coefficients.reduce((s, c) => s + c, 0) - 1)).toBeLessThan(1e-12);
    }
  });

  test('fewer than two distinct gammas is an error', () => {
    const points = [{ t: 10, gamma: G05 }, { t: 20, gamma: G05 }];
    expect(() => solvePhemaCoefficients(points, { t: 20, gamma: G10 })).toThrow(`needs snapshots of at least two distinct gammas, but the 2 snapshot(s) have only gamma ${G05}`);
  });

  test('an ill-conditioned system is an error with its condition estimate', () => {
    const nearlyEqual = [{ t: 100, gamma: G05 }, { t: 100, gamma: G05 * (1 + 1e-6) }, { t: 100, gamma: G10 }];
    let error: (Error & { code?: string }) | undefined;
    try {
      solvePhemaCoefficients(nearlyEqual, { t: 100, gamma: sigmaRelToGamma(0.08) });
    } catch (e) {
      error = e as Error;
    }
    expect(error?.name).toBe('RangeError');
    expect(error?.code).toBe(ERROR_CODES.INVALID_ARGUMENT);
    expect(error?.message).toMatch(/ill-conditioned: condition number estimate \d\.\d\de\+(1[3-9]|[2-9]\d), above the limit 1e\+12/);
    const duplicated = [{ t: 100, gamma: G05 }, { t: 100, gamma: G05 }, { t: 100, gamma: G10 }];
    expect(() => solvePhemaCoefficients(duplicated, { t: 100, gamma: G10 })).toThrow(/condition number estimate Infinity \(singular to working precision\)/);
  });
});

// --- synthesis over files -----------------------------------------------------------------------

/** Snapshots of awkward sizes at the given times, values the writer got kept per (t, track). */
async function writeAwkwardRun(times: number[], dtype: 'float16' | 'bfloat16' | 'float32', sizes = [0, 1, 7, 4097]) {
  const names = sizes.map((n, i) => `t${i}_${n}`);
  const written = new Map<string, Float32Array[]>();
  let seed = 1;
  for (const t of times) {
    for (const track of [0, 1]) {
      const values = sizes.map((n) => fillRandom(new Float32Array(n), seed++, 100));
      written.set(`${t}/${track}`, values);
      await writeSnapshot(t, track, names, values, { dtype });
    }
  }
  return { names, written };
}

/**
 * Asserts `actual` (float32) equals sum_k c_k stored_k computed here in float64, within what the
 * final rounding to float32 and float64 summation can account for: 1 float32 ulp of the result
 * plus 1e-12 of sum_k |c_k stored_k|.
 */
function expectWeightedSum(actual: Float32Array, terms: { c: number; values: ArrayLike<number> }[], context: string): void {
  for (let j = 0; j < actual.length; j++) {
    let sum = 0;
    let magnitude = 0;
    for (const { c, values } of terms) {
      sum += c * values[j];
      magnitude += Math.abs(c * values[j]);
    }
    const tolerance = ulp(sum, 'float32') + 1e-12 * magnitude;
    if (!(Math.abs(actual[j] - sum) <= tolerance)) throw new Error(`${context} element ${j}: ${actual[j]}, expected ${sum} within ${tolerance}`);
  }
}

describe('synthesize', () => {
  test.each(['float16', 'bfloat16', 'float32'] as const)(
    '%s snapshots: every tensor (0, 1, 7, 4097 elements) is the float64 weighted sum of the stored values',
    async (dtype) => {
      const { names, written } = await writeAwkwardRun([100, 200, 300, 400], dtype);
      const result = await synthesize(dir, { sigmaRel: 0.13, at: 300 });
      expect(result.names).toEqual(names);
      expect(result.shapes).toEqual([[0], [1], [7], [4097]]);
      expect(result.at).toBe(300);
      expect(result.snapshots.map((s) => [s.t, s.track])).toEqual([[100, 0], [100, 1], [200, 0], [200, 1], [300, 0], [300, 1]]);
      const expected = referenceCoefficients(result.snapshots.map((s) => ({ t: s.t, gamma: s.gamma })), { t: 300, gamma: sigmaRelToGamma(0.13) });
      result.coefficients.forEach((c, i) => expect(Math.abs(c - expected[i])).toBeLessThan(1e-6 * Math.max(1, Math.abs(expected[i]))));
      names.forEach((_, i) => {
        const terms = result.snapshots.map((s, k) => ({ c: result.coefficients[k], values: Array.from(written.get(`${s.t}/${s.track}`)![i], (v) => storedAs(v, dtype)) }));
        expectWeightedSum(result.values[i], terms, `${dtype} ${names[i]}`);
        // Against the values as given (before rounding to the snapshot dtype): off by at most
        // sum_k |c_k| * half an ulp of the dtype at each value, plus the float32 rounding.
        const given = result.snapshots.map((s) => written.get(`${s.t}/${s.track}`)![i]);
        for (let j = 0; j < result.values[i].length; j++) {
          let sum = 0;
          let bound = 0;
          given.forEach((values, k) => {
            sum += result.coefficients[k] * values[j];
            bound += Math.abs(result.coefficients[k]) * (dtype === 'float32' ? 0 : ulp(values[j], dtype) / 2);
          });
          expect(Math.abs(result.values[i][j] - sum)).toBeLessThanOrEqual(bound + ulp(sum, 'float32') + 1e-12 * Math.abs(sum));
        }
      });
    },
  );

  test('a target equal to a snapshot\'s own (gamma, t) reproduces that snapshot', async () => {
    const { written } = await writeAwkwardRun([100, 200, 300], 'float16');
    const result = await synthesize(dir, { sigmaRel: 0.1, at: 200 }); // track 1's profile at t = 200
    const own = result.snapshots.findIndex((s) => s.t === 200 && s.track === 1);
    expect(Math.abs(result.coefficients[own] - 1)).toBeLessThan(1e-9);
    const stored = written.get('200/1')!.map((v) => Array.from(v, (x) => storedAs(x, 'float16')));
    // Off the stored tensor by at most the other coefficients' share of the values, and the rounding.
    const others = result.coefficients.reduce((s, c, k) => s + Math.abs(k === own ? c - 1 : c), 0);
    expect(others).toBeLessThan(1e-8);
    result.values.forEach((values, i) => {
      const largest = Math.max(0, ...[...written.values()].flatMap((v) => Array.from(v[i], Math.abs)));
      values.forEach((v, j) => expect(Math.abs(v - stored[i][j])).toBeLessThanOrEqual(ulp(stored[i][j], 'float32') + others * largest));
    });
  });

  test('at defaults to the last snapshot time; groups of tensors give the same sums as one group', async () => {
    const sizes = Array.from({ length: 300 }, (_, i) => 1 + (i % 5)); // many small tensors
    await writeAwkwardRun([50, 100, 150], 'float16', sizes);
    const result = await synthesize(dir, { sigmaRel: 0.07 });
    expect(result.at).toBe(150);
    expect(result.snapshots).toHaveLength(6);
    const scanned = await scanSnapshotFolder(dir);
    for (const perGroup of [1, 7, 100]) {
      const values = await weightedSum(scanned, result.coefficients, perGroup);
      values.forEach((v, i) => expect(Buffer.from(v.buffer).equals(Buffer.from(result.values[i].buffer))).toBe(true));
    }
  });

  test('a file changed after the folder was listed is named, not read as if it were the listed one', async () => {
    await writeAwkwardRun([50, 100], 'float16');
    const scanned = await scanSnapshotFolder(dir);
    await writeSnapshot(100, 1, ['t0_0', 't1_1', 't2_7', 't3_4097'], [0, 1, 7, 4097].map((n) => new Float32Array(n)), { dtype: 'float32' });
    await expect(weightedSum(scanned, new Float64Array(4).fill(0.25))).rejects.toThrow(
      `Cannot read '${path.join(dir, 'phema-000000000000100-01.safetensors')}': the file changed since the snapshot folder was listed`,
    );
  });

  test('a synthesized sigmaRel lands close to a power-function EMA of that sigmaRel simulated directly', async () => {
    // A float64 simulation: 64 parameters on random walks with drift for 3000 steps; power-function
    // EMAs (d = (1 - 1/t)^(gamma + 1) each step) of sigmaRel 0.05 and 0.10 snapshotted every 100
    // steps (float32), and EMAs of the targets kept directly.
    const n = 64;
    const steps = 3000;
    const next = random(42);
    const params = new Float64Array(n);
    const drift = Float64Array.from({ length: n }, () => next() - 0.5);
    const targets = [0.075, 0.15];
    const gammas = [...TRACKS, ...targets].map(sigmaRelToGamma);
    const emas = gammas.map(() => new Float64Array(n));
    for (let t = 1; t <= steps; t++) {
      for (let i = 0; i < n; i++) params[i] += 0.01 * drift[i] + 0.1 * (next() - 0.5);
      gammas.forEach((g, e) => {
        const d = (1 - 1 / t) ** (g + 1);
        for (let i = 0; i < n; i++) emas[e][i] = d * emas[e][i] + (1 - d) * params[i];
      });
      if (t % 100 === 0) {
        for (const track of [0, 1]) await writeSnapshot(t, track, ['p'], [Float32Array.from(emas[track])], { dtype: 'float32' });
      }
    }
    for (const [k, sigmaRel] of targets.entries()) {
      const direct = emas[2 + k];
      const { values } = await synthesize(dir, { sigmaRel });
      // Relative to how far the target is from the nearest tracked EMA (the signal to recover).
      const error = Math.max(...Array.from(direct, (v, i) => Math.abs(values[0][i] - v)));
      const signal = Math.max(...Array.from(direct, (v, i) => Math.min(Math.abs(emas[0][i] - v), Math.abs(emas[1][i] - v))));
      // Observed: 1.0e-4 of the signal for 0.075 (between the tracks), 3.4e-4 for 0.15 (beyond
      // them); asserted with about 10x margin.
      expect(error / signal).toBeLessThan(k === 0 ? 1e-3 : 3e-3);
    }
  });
});

describe('synthesize: errors', () => {
  async function rejection(promise: Promise<unknown>): Promise<Error & { code?: string }> {
    const error = await promise.then(() => undefined, (e: Error) => e);
    if (error === undefined) throw new Error('expected a rejection');
    return error;
  }

  test('sigmaRel out of range is a RangeError naming the option; a misspelt option is refused', async () => {
    await writeAwkwardRun([10, 20], 'float16', [3]);
    for (const sigmaRel of [0, 0.3, NaN, -0.1]) {
      const error = await rejection(synthesize(dir, { sigmaRel }));
      expect(error.name).toBe('RangeError');
      expect(error.code).toBe(ERROR_CODES.INVALID_ARGUMENT);
      expect(error.message).toMatch(/^Expected a number in \(0, 0\.2887\) for synthesize\(\) options\.sigmaRel but received /);
    }
    expect((await rejection(synthesize(dir, { sigmaRel: '0.1' as unknown as number }))).name).toBe('TypeError');
    expect((await rejection(synthesize(dir, { sigmaRel: 0.1, At: 10 } as unknown as { sigmaRel: number }))).message).toMatch(
      /Unknown option 'At' in synthesize\(\) options \(did you mean 'at'\?\)/,
    );
  });

  test('at that is not a snapshot time names the nearest times', async () => {
    await writeAwkwardRun([100, 200, 300], 'float16', [3]);
    const error = await rejection(synthesize(dir, { sigmaRel: 0.1, at: 250 }));
    expect(error.message).toBe('Expected one of the 3 snapshot times (100 to 300) for synthesize() options.at but received 250; the nearest snapshot times are 200 and 300');
    expect(error.code).toBe(ERROR_CODES.INVALID_ARGUMENT);
    expect((await rejection(synthesize(dir, { sigmaRel: 0.1, at: 1000 }))).message).toMatch(/received 1000; the nearest snapshot time is 300$/);
  });

  test('a folder of one track (fewer than two distinct gammas) is an error', async () => {
    for (const t of [10, 20]) await writePostHocSnapshot(dir, { names: ['x'], values: [new Float32Array(2)], gamma: G05, sigmaRel: 0.05, t, unit: 'samples', track: 0, tracks: 1, dtype: 'float16' });
    expect((await rejection(synthesize(dir, { sigmaRel: 0.1 }))).message).toMatch(/at least two distinct gammas, but the 2 snapshot\(s\) have only gamma/);
  });

  test('two tracks of nearly equal sigmaRel give an ill-conditioned system, with its estimate', async () => {
    for (const t of [10, 20]) {
      for (const [track, sigmaRel] of [0.1, 0.1 + 1e-7].entries()) await writeSnapshot(t, track, ['x'], [new Float32Array(2)], { sigmaRel });
    }
    const error = await rejection(synthesize(dir, { sigmaRel: 0.07 }));
    expect(error.message).toMatch(/over 4 snapshots is ill-conditioned: condition number estimate (\d\.\d\de\+\d+|Infinity).*above the limit 1e\+12/);
  });

  test('a missing, truncated or foreign file, a FIFO, and an empty folder are errors naming them', async () => {
    await writeAwkwardRun([10, 20], 'float16', [3]);
    const last = path.join(dir, 'phema-000000000000020-01.safetensors');
    const bytes = fs.readFileSync(last);
    fs.writeFileSync(last, bytes.subarray(0, bytes.length - 1));
    expect((await rejection(synthesize(dir, { sigmaRel: 0.1 }))).message).toMatch(new RegExp(`^Cannot read '${last.replace(/[.]/g, '\\.')}': the file is truncated`));
    fs.writeFileSync(last, 'not a safetensors file at all');
    expect((await rejection(synthesize(dir, { sigmaRel: 0.1 }))).message).toMatch(/phema-000000000000020-01\.safetensors': not a post-hoc EMA snapshot: its header length field says/);
    fs.unlinkSync(last);
    expect((await rejection(synthesize(dir, { sigmaRel: 0.1 }))).message).toMatch(/^Missing post-hoc EMA snapshot '.*phema-000000000000020-01\.safetensors'/);
    execFileSync('mkfifo', [last]);
    try {
      expect((await rejection(synthesize(dir, { sigmaRel: 0.1 }))).message).toMatch(/phema-000000000000020-01\.safetensors': it is a FIFO/);
    } finally {
      fs.unlinkSync(last);
    }
    const empty = fs.mkdtempSync(path.join(dir, 'empty-'));
    expect((await rejection(synthesize(empty, { sigmaRel: 0.1 }))).message).toBe(`synthesize(): no post-hoc EMA snapshots (phema-*.safetensors) in '${empty}'`);
  });
});

describe('synthesizeInto', () => {
  const NAMES = ['w', 'b'];
  async function writeNamedRun(): Promise<void> {
    let seed = 100;
    for (const t of [10, 20, 30]) {
      for (const track of [0, 1]) await writeSnapshot(t, track, NAMES, [fillRandom(new Float32Array(5), seed++), fillRandom(new Float32Array(2), seed++)]);
    }
  }

  test('into an ExponentialMovingAverage: its shadows become the synthesized values, its counters stay', async () => {
    await writeNamedRun();
    const w = new Float32Array(5).fill(1);
    const b = new Float32Array(2).fill(2);
    const ema = new ExponentialMovingAverage([{ name: 'w', value: w }, { name: 'b', value: b }], { decay: 0.9 });
    ema.update();
    const before = ema.stateDict();
    const result = await synthesizeInto(dir, { sigmaRel: 0.08, at: 20 }, ema);
    const after = ema.stateDict();
    expect(after.shadowParams.map((v) => Array.from(v))).toEqual(result.values.map((v) => Array.from(v)));
    expect({ ...after, shadowParams: null }).toEqual({ ...before, shadowParams: null });
    expect(result.values).toEqual((await synthesize(dir, { sigmaRel: 0.08, at: 20 })).values);
  });

  test('into parameters (Float32Array, Float64Array, { name, value }); unnamed ones are named by index', async () => {
    let seed = 1;
    for (const t of [10, 20]) for (const track of [0, 1]) await writeSnapshot(t, track, ['0', '1'], [fillRandom(new Float32Array(5), seed++), fillRandom(new Float32Array(2), seed++)]);
    const f32 = new Float32Array(5);
    const f64 = new Float64Array(2);
    const result = await synthesizeInto(dir, { sigmaRel: 0.08 }, [f32, f64]);
    expect(Array.from(f32)).toEqual(Array.from(result.values[0]));
    expect(Array.from(f64)).toEqual(Array.from(result.values[1]));
    const named = new Float64Array(5);
    await expect(synthesizeInto(dir, { sigmaRel: 0.08 }, [{ name: 'w', value: named }, f64])).rejects.toThrow(
      'synthesizeInto() target: parameter 0 is named "w" but the snapshots\' tensor 0 is "0"; names must match in order',
    );
    expect(named.every((v) => v === 0)).toBe(true); // nothing written
  });

  test('a name, count or size mismatch writes nothing and names the first mismatch', async () => {
    await writeNamedRun();
    const w = new Float32Array(5).fill(7);
    const b = new Float32Array(2).fill(7);
    await expect(synthesizeInto(dir, { sigmaRel: 0.08 }, [{ name: 'w', value: w }, { name: 'bias', value: b }])).rejects.toThrow(
      /parameter 1 is named "bias" but the snapshots' tensor 1 is "b"/,
    );
    await expect(synthesizeInto(dir, { sigmaRel: 0.08 }, [{ name: 'w', value: w }])).rejects.toThrow(
      'Expected 2 parameters (one per snapshot tensor) for synthesizeInto() target but received 1',
    );
    await expect(synthesizeInto(dir, { sigmaRel: 0.08 }, [{ name: 'w', value: w }, { name: 'b', value: new Float32Array(3) }])).rejects.toThrow(
      'Expected 2 elements (snapshot tensor "b") for synthesizeInto() target parameter 1 but received 3',
    );
    const ema = new ExponentialMovingAverage([{ name: 'w', value: w }, { name: 'c', value: b }], { decay: 0.9 });
    const before = ema.stateDict();
    await expect(synthesizeInto(dir, { sigmaRel: 0.08 }, ema)).rejects.toThrow(/the ExponentialMovingAverage\): parameter 1 is named "c" but the snapshots' tensor 1 is "b"/);
    expect(ema.stateDict()).toEqual(before);
    expect([...w, ...b].every((v) => v === 7)).toBe(true);
    await expect(synthesizeInto(dir, { sigmaRel: 0.08 }, 42 as unknown as string)).rejects.toThrow(
      'Expected an ExponentialMovingAverage, an array of parameters, or a file path for synthesizeInto() target but received 42',
    );
  });

  test('into a path: a float32 safetensors file with the synthesized values, written atomically', async () => {
    await writeNamedRun();
    const out = path.join(dir, 'out', 'synthesized.safetensors');
    fs.mkdirSync(path.dirname(out));
    const result = await synthesizeInto(dir, { sigmaRel: 0.15, at: 30 }, out);
    const parsed = await readSafetensorsFile(out);
    expect(parsed.tensors.map((t) => [t.name, t.dtype, t.shape])).toEqual([['w', 'F32', [5]], ['b', 'F32', [2]]]);
    parsed.tensors.forEach((t, i) => expect(Buffer.from(t.bytes).equals(Buffer.from(result.values[i].buffer))).toBe(true));
    expect({ ...parsed.metadata }).toMatchObject({ format: 'model-ema/phema-synthesized', sigma_rel: '0.15', t: '30', unit: 'steps', snapshots: '6' });
    expect(fs.readdirSync(path.dirname(out))).toEqual(['synthesized.safetensors']);
  });
});

describe('synthesizeInto tfjs variables', () => {
  test('tf.variable targets (named after the variables) receive the synthesized values', async () => {
    await quietBackend('cpu');
    let seed = 5;
    for (const t of [10, 20]) for (const track of [0, 1]) await writeSnapshot(t, track, ['dense/kernel', 'dense/bias'], [fillRandom(new Float32Array(6), seed++), fillRandom(new Float32Array(3), seed++)]);
    const kernel = tf.variable(tf.zeros([2, 3]), true, 'dense/kernel');
    const bias = tf.variable(tf.zeros([3]), true, 'dense/bias');
    try {
      const result = await synthesizeInto(dir, { sigmaRel: 0.09 }, [kernel, bias]);
      expect(Array.from(kernel.dataSync())).toEqual(Array.from(result.values[0]));
      expect(Array.from(bias.dataSync())).toEqual(Array.from(result.values[1]));
    } finally {
      kernel.dispose();
      bias.dispose();
    }
  });
});
