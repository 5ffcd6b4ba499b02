// The CPU's vector loops convert with vcvtneps2bf16 (AVX512_BF16) and vcvtps2ph (F16C), which
// differ from round-to-nearest-even on a few inputs; vectors holding such a lane are redone lane by
// lane (native/kernels/cpu_simd_x86.h). Here updates and conversions land exactly on those inputs,
// inside vectors and in the scalar tail, and the stored bits must be the float64 reference's. This
// process runs the best instruction set of this CPU; test/kernels_isa.test.ts compares every
// instruction set's bits on the same values (test/helpers/fixup_values.js).
import { binding } from '../src/native';
import { roundTo } from './reference';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { finite, NAN_BITS, placed, fixupPosition, fixupLength } = require('./helpers/fixup_values.js') as {
  finite: Record<'float16' | 'bfloat16', number[]>;
  NAN_BITS: number[];
  placed: (n: number, fill: number, values: (number | { bits: number })[], at: (i: number) => number) => Float32Array;
  fixupPosition: (i: number) => number;
  fixupLength: (count: number) => number;
};

type Dtype16 = 'float16' | 'bfloat16';
const f32 = Math.fround;
const float32Bits = (x: number) => new Uint32Array(Float32Array.of(x).buffer)[0];

/** The 16-bit pattern of a value the dtype represents exactly (or an infinity). */
function encode(x: number, dtype: Dtype16): number {
  if (dtype === 'bfloat16') return float32Bits(x) >>> 16; // exact: the low half is zero
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const a = Math.abs(x);
  if (a === Infinity) return sign | 0x7c00;
  if (a < 2 ** -14) return sign | (a / 2 ** -24);
  const e = Math.floor(Math.log2(a));
  return sign | ((e + 15) << 10) | ((a / 2 ** e - 1) * 1024);
}

/** What a quiet-NaN result of float32 bits `nan` stores as: bfloat16 keeps the top half, quiet; float16 has one NaN. */
function nanBits(nan: number, dtype: Dtype16): number {
  return dtype === 'bfloat16' ? ((nan | 0x00400000) >>> 16) & 0xffff : ((nan >>> 16) & 0x8000) | 0x7e00;
}

function shadowBits(arena: InstanceType<typeof binding.ShadowArena>): Uint16Array {
  const bytes = arena.readBytes(0);
  return new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 2);
}

function hex(bits: number): string {
  return `0x${bits.toString(16).padStart(4, '0')}`;
}

// Shadows s (16-bit values) and parameters p = 2t - s with decay 0.5: then s - 0.5 * (s - p) is
// exactly t in float32, so the update stores t rounded (float16: saturated at 65504 first).
function updateCase(t: number, dtype: Dtype16): { s: number; p: number } | null {
  const limit = dtype === 'float16' ? 65504 : 3.3895313892515355e38;
  const s = Math.max(-limit, Math.min(limit, roundTo(t, dtype)));
  const p = f32(2 * t - s);
  // Beyond float32, or -0 (s - w * (s - p) is never -0 here): conversions only.
  if (!Number.isFinite(p) || p !== 2 * t - s || Object.is(t, -0)) return null;
  if (!Object.is(f32(s - f32(0.5 * f32(s - p))), t)) throw new Error(`test setup: ${t} is not reached exactly`);
  return { s, p };
}

function saturated(t: number, dtype: Dtype16): number {
  return dtype === 'float16' && Number.isFinite(t) ? Math.max(-65504, Math.min(65504, t)) : t;
}

describe.each(['bfloat16', 'float16'] as const)('%s', (dtype) => {
  const cases = finite[dtype]
    .map((t) => ({ t, c: updateCase(t, dtype) }))
    .filter((x): x is { t: number; c: { s: number; p: number } } => x.c !== null);

  test.each([fixupLength(cases.length), 7])('update results on the fix-up inputs are the reference rounding (%d elements)', (n) => {
    const at = n === 7 ? (i: number) => i % 7 : fixupPosition; // 7: the scalar loop only, for contrast
    const count = n === 7 ? 7 : cases.length;
    for (let start = 0; start < cases.length; start += count) {
      const group = cases.slice(start, start + count);
      const arena = new binding.ShadowArena(dtype, [n]);
      arena.copyFrom([placed(n, 1, group.map((x) => x.c.s), at)]);
      arena.update([placed(n, 1, group.map((x) => x.c.p), at)], { decay: 0.5 });
      const bits = shadowBits(arena);
      group.forEach(({ t }, i) => {
        const expected = encode(roundTo(saturated(t, dtype), dtype), dtype);
        if (bits[at(i)] !== expected) {
          throw new Error(`update to ${t}: stored ${hex(bits[at(i)])}, expected ${hex(expected)} (element ${at(i)} of ${n})`);
        }
      });
      const used = new Set(group.map((_, i) => at(i)));
      bits.forEach((b, i) => {
        if (!used.has(i) && b !== encode(1, dtype)) throw new Error(`element ${i} (1 -> 1) stored ${hex(b)}`);
      });
      arena.dispose();
    }
  });

  test('conversions of the fix-up inputs (copyFrom) are the reference rounding, without saturation', () => {
    const values = finite[dtype];
    const n = fixupLength(values.length);
    const arena = new binding.ShadowArena(dtype, [n]);
    arena.copyFrom([placed(n, 0.5, values, fixupPosition)]);
    const bits = shadowBits(arena);
    values.forEach((t, i) => {
      const expected = encode(roundTo(f32(t), dtype), dtype);
      if (bits[fixupPosition(i)] !== expected) throw new Error(`${t}: stored ${hex(bits[fixupPosition(i)])}, expected ${hex(expected)}`);
    });
    arena.dispose();
  });

  test('NaN payloads: conversions and updates store the reference NaN; widening keeps signalling NaN bits', () => {
    const n = fixupLength(NAN_BITS.length);
    const nans = NAN_BITS.map((bits) => ({ bits }));
    const arena = new binding.ShadowArena(dtype, [n]);
    arena.copyFrom([placed(n, 0.5, nans, fixupPosition)]);
    NAN_BITS.forEach((nan, i) => expect(hex(shadowBits(arena)[fixupPosition(i)])).toBe(hex(nanBits(nan, dtype))));
    // An update with NaN parameters (policy 'propagate'): s - w * (s - p) is p made quiet.
    arena.copyFrom([new Float32Array(n).fill(0.5)]);
    for (const rounding of ['nearest', 'stochastic'] as const) {
      arena.update([placed(n, 1, nans, fixupPosition)], { decay: 0.75, rounding, seed: 3 });
      NAN_BITS.forEach((nan, i) => expect(hex(shadowBits(arena)[fixupPosition(i)])).toBe(hex(nanBits(nan, dtype))));
      arena.copyFrom([new Float32Array(n).fill(0.5)]);
    }
    // Every 16-bit NaN widened to float32 keeps its bits (the fast widening would quiet float16's).
    const all = Uint16Array.from({ length: 65536 }, (_, i) => i);
    const wide = new binding.ShadowArena(dtype, [65536]);
    wide.writeBytes(0, new Uint8Array(all.buffer));
    const out = new Float32Array(65536);
    wide.copyTo([out]);
    const outBits = new Uint32Array(out.buffer);
    const exponent = dtype === 'bfloat16' ? 0x7f80 : 0x7c00;
    for (let h = 0; h < 65536; h++) {
      if ((h & exponent) !== exponent || (h & ~(exponent | 0x8000)) === 0) continue; // NaNs only
      const expected = dtype === 'bfloat16' ? h << 16 : ((h & 0x8000) << 16) | 0x7f800000 | ((h & 0x3ff) << 13);
      if (outBits[h] !== expected >>> 0) throw new Error(`${hex(h)} widened to 0x${outBits[h].toString(16)}`);
    }
    wide.dispose();
    arena.dispose();
  });

  test("'skip-element' keeps the old bits next to fix-up lanes in the same vector, and counts exactly", () => {
    const n = fixupLength(cases.length);
    const arena = new binding.ShadowArena(dtype, [n]);
    const shadows = placed(n, 1, cases.map((x) => x.c.s), fixupPosition);
    arena.copyFrom([shadows]);
    const before = shadowBits(arena).slice();
    const params = placed(n, 1, cases.map((x) => x.c.p), fixupPosition);
    const skippedAt = cases.map((_, i) => fixupPosition(i) + 1 + (i % 3)); // lanes beside each fix-up lane
    skippedAt.forEach((at, i) => (params[at] = [NaN, Infinity, -Infinity][i % 3]));
    expect(arena.update([params], { decay: 0.5, nonFinite: 'skip-element' })).toBe(skippedAt.length);
    const bits = shadowBits(arena);
    skippedAt.forEach((at) => expect(bits[at]).toBe(before[at]));
    cases.forEach(({ t }, i) => expect(hex(bits[fixupPosition(i)])).toBe(hex(encode(roundTo(saturated(t, dtype), dtype), dtype))));
    arena.dispose();
  });
});
