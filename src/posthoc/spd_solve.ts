// Solving A x = b for a symmetric positive semi-definite A (a Gram matrix), in float64, with an
// estimate of how ill-conditioned A is. Post-hoc EMA's profile matrix has entries spanning many
// orders of magnitude (they scale as 1/t) and grows ill-conditioned as snapshots crowd together,
// so the solve is done carefully:
//   1. symmetric equilibration: A' = D A D with D = diag(1/sqrt(A_ii)), so A' has a unit diagonal
//      (the condition number that matters is the equilibrated one: a scale per snapshot is free);
//   2. Cholesky with diagonal pivoting (largest remaining diagonal first), which stops at the first
//      pivot that is not clearly positive instead of taking the square root of rounding noise;
//   3. the 1-norm condition number of A' estimated from the factor (Hager's method, with Higham's
//      alternating-sign vector as a second guess): a few triangular solves, O(n^2) each, rather
//      than an explicit inverse.

/** A row-major n x n matrix. */
export interface SquareMatrix {
  n: number;
  values: Float64Array;
}

/** The factor P^T A' P = L L^T of an equilibrated matrix, with the scaling and permutation used. */
interface PivotedCholesky {
  n: number;
  lower: Float64Array; // row-major, the lower triangle of L (the rest is zero)
  order: Int32Array; // order[k]: the original row in position k
  scale: Float64Array; // D's diagonal, per original row
}

export interface SpdSolution {
  x: Float64Array;
  /** Estimated 1-norm condition number of the equilibrated matrix; Infinity when it is singular to working precision. */
  condition: number;
}

// A pivot below this (relative to the unit diagonal of A') is rounding noise: the matrix is
// singular to working precision.
const PIVOT_FLOOR = 64 * Number.EPSILON;

/** Solves A x = b. A singular (to working precision) matrix gives x = NaN and condition Infinity. */
export function solveSymmetricPositive(a: SquareMatrix, b: Float64Array): SpdSolution {
  const factor = pivotedCholesky(a);
  if (factor === null) return { x: new Float64Array(a.n).fill(NaN), condition: Infinity };
  const x = solveWithFactor(factor, b);
  return { x, condition: oneNormOf(equilibrated(a, factor.scale)) * inverseOneNormEstimate(factor) };
}

function equilibrated({ n, values }: SquareMatrix, scale: Float64Array): SquareMatrix {
  const out = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) out[i * n + j] = values[i * n + j] * scale[i] * scale[j];
  return { n, values: out };
}

function pivotedCholesky(a: SquareMatrix): PivotedCholesky | null {
  const { n } = a;
  const scale = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const d = a.values[i * n + i];
    if (!(d > 0 && d < Infinity)) return null; // a zero profile, or NaN from bad input
    scale[i] = 1 / Math.sqrt(d);
  }
  const order = Int32Array.from({ length: n }, (_, i) => i);
  // Work on the permuted, equilibrated matrix in place; its lower triangle becomes L.
  const w = equilibrated(a, scale).values;
  const swap = (k: number, p: number): void => {
    // Symmetric swap of rows and columns k and p (only what the lower triangle needs is kept right).
    for (let j = 0; j < n; j++) [w[k * n + j], w[p * n + j]] = [w[p * n + j], w[k * n + j]];
    for (let i = 0; i < n; i++) [w[i * n + k], w[i * n + p]] = [w[i * n + p], w[i * n + k]];
    [order[k], order[p]] = [order[p], order[k]];
  };
  for (let k = 0; k < n; k++) {
    let p = k;
    for (let i = k + 1; i < n; i++) if (w[i * n + i] > w[p * n + p]) p = i;
    if (p !== k) swap(k, p);
    const pivot = w[k * n + k];
    if (!(pivot > PIVOT_FLOOR)) return null;
    const root = Math.sqrt(pivot);
    w[k * n + k] = root;
    for (let i = k + 1; i < n; i++) w[i * n + k] /= root;
    // Schur complement update of the trailing lower triangle (and its diagonal, read for pivoting).
    for (let i = k + 1; i < n; i++) {
      const lik = w[i * n + k];
      for (let j = k + 1; j <= i; j++) {
        w[i * n + j] -= lik * w[j * n + k];
        w[j * n + i] = w[i * n + j]; // keep the matrix symmetric for later row/column swaps
      }
    }
  }
  for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) w[i * n + j] = 0;
  return { n, lower: w, order, scale };
}

// A' y = c in permuted coordinates: L L^T z = P^T c, y = P z.
function solveEquilibrated({ n, lower, order }: PivotedCholesky, c: Float64Array): Float64Array {
  const z = new Float64Array(n);
  for (let k = 0; k < n; k++) z[k] = c[order[k]];
  for (let i = 0; i < n; i++) {
    let s = z[i];
    for (let j = 0; j < i; j++) s -= lower[i * n + j] * z[j];
    z[i] = s / lower[i * n + i];
  }
  for (let i = n - 1; i >= 0; i--) {
    let s = z[i];
    for (let j = i + 1; j < n; j++) s -= lower[j * n + i] * z[j];
    z[i] = s / lower[i * n + i];
  }
  const y = new Float64Array(n);
  for (let k = 0; k < n; k++) y[order[k]] = z[k];
  return y;
}

// A x = b with A = D^-1 A' D^-1: x = D (A'^-1 (D b)).
function solveWithFactor(factor: PivotedCholesky, b: Float64Array): Float64Array {
  const { scale } = factor;
  const y = solveEquilibrated(factor, b.map((v, i) => v * scale[i]));
  return y.map((v, i) => v * scale[i]);
}

function oneNormOf({ n, values }: SquareMatrix): number {
  let most = 0;
  for (let j = 0; j < n; j++) {
    let sum = 0;
    for (let i = 0; i < n; i++) sum += Math.abs(values[i * n + j]);
    most = Math.max(most, sum);
  }
  return most;
}

const sumOfAbs = (v: Float64Array): number => v.reduce((s, x) => s + Math.abs(x), 0);

// Hager (1984) / Higham (1988): a lower bound on ||A'^-1||_1 that is nearly always within a small
// factor of it, from a few solves with A'^-1 (symmetric, so its transpose solve is the same).
function inverseOneNormEstimate(factor: PivotedCholesky): number {
  const { n } = factor;
  let x = new Float64Array(n).fill(1 / n);
  let estimate = 0;
  for (let iteration = 0; iteration < 5; iteration++) {
    const y = solveEquilibrated(factor, x);
    const next = sumOfAbs(y);
    if (iteration > 0 && next <= estimate) break;
    estimate = next;
    const z = solveEquilibrated(factor, y.map((v) => (v >= 0 ? 1 : -1)));
    let j = 0;
    for (let i = 1; i < n; i++) if (Math.abs(z[i]) > Math.abs(z[j])) j = i;
    const zx = z.reduce((s, v, i) => s + v * x[i], 0);
    if (Math.abs(z[j]) <= zx) break;
    x = new Float64Array(n);
    x[j] = 1;
  }
  // Higham's safeguard against the cases that fool the iteration.
  const alternating = Float64Array.from({ length: n }, (_, i) => (i % 2 === 0 ? 1 : -1) * (1 + (n === 1 ? 0 : i / (n - 1))));
  return Math.max(estimate, (2 * sumOfAbs(solveEquilibrated(factor, alternating))) / (3 * n));
}
