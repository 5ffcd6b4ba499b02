// Every float16 and bfloat16 bit pattern through the arena, and random float32/float64 values
// rounded into them, against the arithmetic reference: round to nearest even, overflow to
// infinity, subnormals, signed zeros, NaNs staying (quiet) NaNs.
import { binding } from '../src/native';
import { random, roundTo } from './reference';

const ALL_PATTERNS = Uint16Array.from({ length: 65536 }, (_, i) => i);

function decodeHalf(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const mantissa = bits & 0x3ff;
  if (exponent === 0x1f) return mantissa ? NaN : sign * Infinity;
  if (exponent === 0) return sign * mantissa * 2 ** -24;
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
}

function decodeBFloat16(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 7) & 0xff;
  const mantissa = bits & 0x7f;
  if (exponent === 0xff) return mantissa ? NaN : sign * Infinity;
  if (exponent === 0) return sign * mantissa * 2 ** -133;
  return sign * (1 + mantissa / 128) * 2 ** (exponent - 127);
}

describe.each([
  ['float16', decodeHalf, 0x7c00, 0x0200],
  ['bfloat16', decodeBFloat16, 0x7f80, 0x0040],
] as const)('%s', (dtype, decode, exponentMask, quietBit) => {
  test('every bit pattern reads back as its exact value', () => {
    const arena = new binding.ShadowArena(dtype, [65536]);
    arena.writeBytes(0, new Uint8Array(ALL_PATTERNS.buffer));
    const values = arena.read(0);
    for (let bits = 0; bits < 65536; bits++) {
      const expected = decode(bits);
      if (!Object.is(values[bits], expected)) throw new Error(`0x${bits.toString(16)} read as ${values[bits]}, expected ${expected}`);
    }
    arena.dispose();
  });

  test('every value written back gives the same bits (NaNs as quiet NaNs)', () => {
    const source = new binding.ShadowArena(dtype, [65536]);
    source.writeBytes(0, new Uint8Array(ALL_PATTERNS.buffer));
    for (const Ctor of [Float32Array, Float64Array]) {
      const values = new Ctor(65536);
      source.copyTo([values]);
      const target = new binding.ShadowArena(dtype, [65536]);
      target.copyFrom([values]);
      const bits = new Uint16Array(target.readBytes(0).buffer);
      for (let i = 0; i < 65536; i++) {
        const isNaN = (i & exponentMask) === exponentMask && (i & ~exponentMask & 0x7fff) !== 0;
        const ok = isNaN ? (bits[i] & exponentMask) === exponentMask && (bits[i] & quietBit) !== 0 : bits[i] === i;
        if (!ok) throw new Error(`${Ctor.name}: 0x${i.toString(16)} came back as 0x${bits[i].toString(16)}`);
      }
      target.dispose();
    }
    source.dispose();
  });

  test.each([Float32Array, Float64Array])('random %p values round to nearest even, once', (Ctor) => {
    const next = random(dtype.length);
    const values = new Ctor(100000);
    const raw = new DataView(new ArrayBuffer(8));
    for (let i = 0; i < values.length; i++) {
      // Random bit patterns cover every exponent, subnormals, infinities and NaNs.
      if (Ctor === Float32Array) raw.setUint32(0, (next() * 2 ** 32) >>> 0);
      else raw.setFloat64(0, (next() - 0.5) * 2 ** Math.floor(next() * 80 - 40));
      values[i] = Ctor === Float32Array ? raw.getFloat32(0) : raw.getFloat64(0);
    }
    const arena = new binding.ShadowArena(dtype, [values.length]);
    arena.copyFrom([values]);
    const stored = arena.read(0);
    for (let i = 0; i < values.length; i++) {
      const expected = roundTo(values[i], dtype);
      const same = Number.isNaN(expected) ? Number.isNaN(stored[i]) : Object.is(stored[i], expected);
      if (!same) throw new Error(`${values[i]} stored as ${stored[i]}, expected ${expected}`);
    }
    arena.dispose();
  });
});

test.each([
  ['float16', [65504, 65519.99, 65520, 2 ** -24, 2 ** -25, 3 * 2 ** -25, 1 + 2 ** -11, 1 + 3 * 2 ** -11, -0]],
  ['bfloat16', [1 + 2 ** -8, 1 + 3 * 2 ** -8, 3.3895313892515355e38, 3.4e38, 2 ** -133, -0]],
] as const)('%s edge values: ties, overflow, smallest subnormals', (dtype, edges) => {
  const arena = new binding.ShadowArena(dtype, [edges.length]);
  arena.copyFrom([Float64Array.from(edges)]);
  expect(Array.from(arena.read(0))).toEqual(edges.map((x) => roundTo(x, dtype)));
  arena.dispose();
});
