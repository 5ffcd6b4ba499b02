// EDM2's post-hoc EMA math (Karras et al. 2024, "Analyzing and Improving the Training Dynamics of
// Diffusion Models", Appendix C.3 and Algorithm 3), in float64. A power-function EMA with exponent
// gamma, read at time t, is (in the continuous limit) the parameters averaged with the weight
// profile p_{t,g}(tau) = (g + 1) tau^g / t^(g + 1) on [0, t]. Any other profile is approximated by a
// combination sum_i x_i p_i of the snapshots' profiles that is closest in L2: the normal equations
// A x = b with A_ij = <p_i, p_j> and b_i = <p_i, p_target>.
import { describe, expectedRangeError, expectedTypeError, invalidArgument, withCode } from '../errors';
import { solveSymmetricPositive } from './spd_solve';

/** A power-function profile: its time (progress, in steps or samples) and exponent. */
export interface ProfilePoint {
  t: number;
  gamma: number;
}

export interface PhemaCoefficients {
  /** One weight per snapshot, in the order given; they sum to 1. */
  coefficients: Float64Array;
  /** Estimated 1-norm condition number of the (equilibrated) system that was solved. */
  condition: number;
}

/**
 * The largest condition number accepted. Measured (1-norm, equilibrated) for the two tracks of
 * EDM2's defaults, sigmaRel 0.05 and 0.10 (gamma 16.97 and 6.94), with n snapshot times evenly
 * spaced (any time scale gives the same numbers: A scales as 1/t):
 *   n = 10: 2.2e2;  n = 50: 1.0e5;  n = 200: 2.7e7;  n = 500: 1.1e9;  n = 1000: 1.7e10
 * (growing about as n^4), so 1e12 passes up to about 2500 snapshot times per track, far more than
 * EDM2's ~270, and still leaves float64 about 4 correct digits in the worst case. What it refuses
 * are degenerate sets: two tracks with nearly the same gamma (the condition grows as 1/d^2 for a
 * relative gamma difference d: 1.5e12 at d = 1e-5, 1.5e14 at 1e-6) or a duplicated snapshot
 * (singular). Nearly equal times alone grow it only as 1/d (1.7e11 at d = 1e-12), since the
 * profiles' jump at t keeps them apart.
 */
export const MAX_CONDITION = 1e12;

function checkPoint(point: unknown, argument: string): ProfilePoint {
  if (typeof point !== 'object' || point === null) throw expectedTypeError('{ t, gamma }', argument, point);
  const { t, gamma } = point as Partial<Record<keyof ProfilePoint, unknown>>;
  if (typeof t !== 'number') throw expectedTypeError('a positive finite number', `${argument}.t`, t);
  if (!(t > 0 && t < Infinity)) throw expectedRangeError('a positive finite number', `${argument}.t`, describe(t));
  // gamma > -1 makes the profile integrable; the inner product's denominator needs ga + gb + 1 > 0.
  if (typeof gamma !== 'number') throw expectedTypeError('a finite number above -0.5', `${argument}.gamma`, gamma);
  if (!(gamma > -0.5 && gamma < Infinity)) throw expectedRangeError('a finite number above -0.5', `${argument}.gamma`, describe(gamma));
  return { t, gamma };
}

/**
 * <p_a, p_b> = integral over [0, min(ta, tb)] of p_{ta,ga} p_{tb,gb}
 *            = (ga+1)(gb+1) (ta/tb)^e / ((ga+gb+1) max(ta, tb)), e = gb if ta < tb else -ga.
 */
export function profileInnerProduct(ta: number, ga: number, tb: number, gb: number): number {
  checkPoint({ t: ta, gamma: ga }, 'profileInnerProduct ta, ga');
  checkPoint({ t: tb, gamma: gb }, 'profileInnerProduct tb, gb');
  return innerProduct(ta, ga, tb, gb);
}

function innerProduct(ta: number, ga: number, tb: number, gb: number): number {
  const e = ta < tb ? gb : -ga;
  return ((ga + 1) * (gb + 1) * (ta / tb) ** e) / ((ga + gb + 1) * Math.max(ta, tb));
}

/**
 * EDM2 Algorithm 3: the weights x (normalised to sum 1) such that sum_i x_i p_{snapshot i} is the
 * least-squares approximation of p_target. Throws (code ERR_MODEL_EMA_INVALID_ARGUMENT) when the
 * snapshots have fewer than two distinct gammas, or when the system is too ill-conditioned to
 * trust (condition estimate above {@link MAX_CONDITION}).
 */
export function solvePhemaCoefficients(snapshots: readonly ProfilePoint[], target: ProfilePoint): PhemaCoefficients {
  if (!Array.isArray(snapshots)) throw expectedTypeError('an array of { t, gamma }', 'snapshots', snapshots);
  const points = snapshots.map((s: unknown, i) => checkPoint(s, `snapshots[${i}]`));
  const goal = checkPoint(target, 'target');
  const gammas = [...new Set(points.map((p) => p.gamma))];
  if (gammas.length < 2) {
    throw invalidArgument(
      `Post-hoc EMA needs snapshots of at least two distinct gammas, but the ${points.length} snapshot(s) have ` +
        `${gammas.length === 0 ? 'none' : `only gamma ${gammas[0]}`}: a single power-function EMA cannot be reshaped into another`,
      RangeError,
    );
  }
  const n = points.length;
  const a = new Float64Array(n * n);
  const b = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) a[i * n + j] = a[j * n + i] = innerProduct(points[i].t, points[i].gamma, points[j].t, points[j].gamma);
    b[i] = innerProduct(points[i].t, points[i].gamma, goal.t, goal.gamma);
  }
  const { x, condition } = solveSymmetricPositive({ n, values: a }, b);
  const sum = x.reduce((s, v) => s + v, 0);
  if (!(condition <= MAX_CONDITION) || !(Math.abs(sum) > 0 && Number.isFinite(sum))) {
    throw illConditioned(condition, points, goal);
  }
  return { coefficients: x.map((v) => v / sum), condition };
}

function illConditioned(condition: number, points: readonly ProfilePoint[], target: ProfilePoint): Error {
  const estimate = condition === Infinity ? 'Infinity (singular to working precision)' : condition.toExponential(2);
  return withCode(
    new RangeError(
      `Post-hoc EMA: the system for target (t ${target.t}, gamma ${target.gamma}) over ${points.length} snapshots is ` +
        `ill-conditioned: condition number estimate ${estimate}, above the limit ${MAX_CONDITION.toExponential(0)}. ` +
        'Snapshots with the same or nearly the same (t, gamma) (two tracks of nearly equal sigmaRel, a snapshot written ' +
        'twice) carry no independent information; use tracks whose sigmaRels differ clearly',
    ),
    'INVALID_ARGUMENT',
  );
}
