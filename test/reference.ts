// An independent float64 reference for the tests: the update and warm-up formulas (README, API) in
// plain JavaScript, and rounding to each storage dtype computed arithmetically (scale, round half
// to even, rescale) rather than with the bit tricks the native code uses, so that the two can
// disagree.

// Jest runs tests in a vm context, where each lookup of a global such as Math costs far more than
// the arithmetic; these locals keep the reference loops fast.
const { abs: m_abs, floor: m_floor, fround: m_fround, imul: m_imul, log2: m_log2, max: m_max, min: m_min } = Math;
const { EPSILON: n_EPSILON, isFinite: n_isFinite, isNaN: n_isNaN } = Number;

export type DType = 'float32' | 'float64' | 'float16' | 'bfloat16';
export const DTYPES: readonly DType[] = ['float32', 'float64', 'float16', 'bfloat16'];

interface Format {
  precision: number; // significand bits, the implicit one included
  minExponent: number; // exponent of the smallest normal number
  maxExponent: number; // exponent of the largest finite number
}

const FORMATS: Record<Exclude<DType, 'float64'>, Format> = {
  float32: { precision: 24, minExponent: -126, maxExponent: 127 },
  float16: { precision: 11, minExponent: -14, maxExponent: 15 },
  bfloat16: { precision: 8, minExponent: -126, maxExponent: 127 },
};

function roundHalfEven(q: number): number {
  const floor = m_floor(q);
  const diff = q - floor;
  if (diff > 0.5) return floor + 1;
  if (diff < 0.5) return floor;
  return floor % 2 === 0 ? floor : floor + 1;
}

const bits = new DataView(new ArrayBuffer(8));

/** floor(log2(|x|)) for finite non-zero x, read from the float64 exponent field (exact). */
function exponentOf(x: number): number {
  bits.setFloat64(0, x);
  const field = (bits.getUint16(0) >> 4) & 0x7ff;
  return field === 0 ? m_floor(m_log2(m_abs(x))) : field - 1023; // float64 subnormals are rare
}

/** x rounded to nearest (ties to even) in the given storage dtype, as a float64. */
export function roundTo(x: number, dtype: DType): number {
  if (dtype === 'float64' || !n_isFinite(x) || x === 0) return x;
  const { precision, minExponent, maxExponent } = FORMATS[dtype];
  const e = m_max(exponentOf(x), minExponent);
  const step = 2 ** (e - precision + 1);
  const rounded = roundHalfEven(x / step) * step;
  const largest = (2 - 2 ** (1 - precision)) * 2 ** maxExponent;
  if (m_abs(rounded) > largest) return rounded > 0 ? Infinity : -Infinity;
  return rounded === 0 ? (x < 0 ? -0 : 0) : rounded;
}

/** One ulp of the dtype at |x| (at least the smallest subnormal step). */
export function ulp(x: number, dtype: DType): number {
  if (dtype === 'float64') return n_EPSILON * m_max(m_abs(x), 2 ** -1022);
  const { precision, minExponent } = FORMATS[dtype];
  const e = x === 0 || !n_isFinite(x) ? minExponent : m_max(exponentOf(x), minExponent);
  return 2 ** (e - precision + 1);
}

/** Byte-for-byte equality of two typed arrays (jest's toEqual is far too slow on megabytes). */
export function sameBytes(a: ArrayBufferView, b: ArrayBufferView): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

/** torch_ema's warm-up: min(decay, (1 + n) / (10 + n)) for the n-th update, or decay when off. */
export function effectiveDecay(decay: number, numUpdates: number | null): number {
  return numUpdates === null ? decay : m_min(decay, (1 + numUpdates) / (10 + numUpdates));
}

/** The update formula in float64: s - (1 - d) * (s - p). */
export function updateReference(shadow: ArrayLike<number>, param: ArrayLike<number>, decay: number): Float64Array {
  const out = new Float64Array(shadow.length);
  for (let i = 0; i < shadow.length; i++) out[i] = shadow[i] - (1 - decay) * (shadow[i] - param[i]);
  return out;
}

/** A seeded generator (mulberry32) so that a failing case can be replayed. */
export function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = m_imul(t ^ (t >>> 15), t | 1);
    t ^= t + m_imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Values spread over several orders of magnitude and both signs (zeros and tiny ones included). */
export function fillRandom<T extends Float32Array | Float64Array>(array: T, seed: number, scale = 1): T {
  const next = random(seed);
  for (let i = 0; i < array.length; i++) {
    const r = next();
    const magnitude = r < 0.02 ? 0 : scale * 10 ** (next() * 6 - 4);
    array[i] = (next() < 0.5 ? -1 : 1) * magnitude;
  }
  return array;
}

/**
 * A typed array of `length` elements that starts `offset` elements into its buffer, so tests
 * exercise unaligned heads of SIMD loops.
 */
export function unaligned(Ctor: Float32ArrayConstructor, length: number, offset: number): Float32Array;
export function unaligned(Ctor: Float64ArrayConstructor, length: number, offset: number): Float64Array;
export function unaligned(
  Ctor: Float32ArrayConstructor | Float64ArrayConstructor,
  length: number,
  offset: number,
): Float32Array | Float64Array;
export function unaligned(
  Ctor: Float32ArrayConstructor | Float64ArrayConstructor,
  length: number,
  offset: number,
): Float32Array | Float64Array {
  const buffer = new ArrayBuffer((length + offset + 1) * Ctor.BYTES_PER_ELEMENT);
  return new Ctor(buffer, offset * Ctor.BYTES_PER_ELEMENT, length);
}

/**
 * Asserts actual[i] is within `ulps` units in the last place of the dtype of expected[i] (NaN
 * matches NaN, infinities must match exactly). Reports the first mismatch with its index.
 */
export function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, dtype: DType, ulps: number, context = ''): void {
  if (actual.length !== expected.length) {
    throw new Error(`${context}: length ${actual.length} != expected ${expected.length}`);
  }
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i];
    const e = expected[i];
    if (n_isNaN(e) ? n_isNaN(a) : !n_isFinite(e) ? a === e : m_abs(a - e) <= ulps * ulp(e, dtype)) continue;
    throw new Error(`${context}: element ${i} is ${a}, expected ${e} (within ${ulps} ulp of ${dtype})`);
  }
}

/** Exact equality of values (bit patterns of NaN aside), with the first difference reported. */
export function expectSame(actual: ArrayLike<number>, expected: ArrayLike<number>, context = ''): void {
  if (actual.length !== expected.length) {
    throw new Error(`${context}: length ${actual.length} != expected ${expected.length}`);
  }
  for (let i = 0; i < expected.length; i++) {
    if (Object.is(actual[i], expected[i])) continue;
    throw new Error(`${context}: element ${i} is ${actual[i]}, expected ${expected[i]}`);
  }
}

/**
 * Asserts one update step: actual[i] is s - (1 - d) * (s - p) computed in float64 from the shadow
 * before the step, rounded to the storage dtype, within `ulps` units in the last place of the
 * dtype at the largest magnitude involved (max |s|, |p|, |result|). Measuring at the largest
 * operand keeps the bound honest where s and p cancel, since float32 arithmetic rounds s - p.
 */
export function expectUpdateClose(
  actual: ArrayLike<number>,
  shadow: ArrayLike<number>,
  param: ArrayLike<number>,
  decay: number,
  dtype: DType,
  ulps: number,
  context = '',
): void {
  if (actual.length !== shadow.length || param.length !== shadow.length) {
    throw new Error(`${context}: lengths ${actual.length}, ${shadow.length}, ${param.length} differ`);
  }
  const exact = updateReference(shadow, param, decay);
  for (let i = 0; i < exact.length; i++) {
    const expected = roundTo(exact[i], dtype);
    const a = actual[i];
    if (!n_isFinite(expected)) {
      if (Object.is(a, expected) || (n_isNaN(a) && n_isNaN(expected))) continue;
    } else {
      const scale = m_max(m_abs(shadow[i]), m_abs(param[i]), m_abs(expected));
      if (m_abs(a - expected) <= ulps * ulp(scale, dtype)) continue;
    }
    throw new Error(
      `${context}: element ${i} is ${a}, expected ${expected} (shadow ${shadow[i]}, param ${param[i]}, ` +
        `decay ${decay}; within ${ulps} ulp of ${dtype})`,
    );
  }
}

/**
 * One element of one update exactly as the kernels compute it, for float32 and float64 storage:
 * decay 0 copies the parameter (rounded to the storage dtype) and decay 1 leaves the shadow as it
 * is, NaN parameters included; otherwise s - (1 - d) * (s - p) with every operation rounded to the
 * storage dtype (float32: 1 - d, the parameter, the difference, the product and the result; the
 * kernels are built without fused multiply-adds).
 */
export function updateStep(shadow: number, param: number, decay: number, dtype: 'float32' | 'float64'): number {
  if (dtype === 'float64') {
    if (decay === 0) return param;
    if (decay === 1) return shadow;
    return shadow - (1 - decay) * (shadow - param);
  }
  const f = m_fround;
  if (decay === 0) return f(param);
  if (decay === 1) return shadow;
  return f(shadow - f(f(1 - decay) * f(shadow - f(param))));
}
