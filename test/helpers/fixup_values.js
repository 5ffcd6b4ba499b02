// Float32 values whose float16 or bfloat16 rounding is where the vector instructions and the
// reference part ways (native/kernels/cpu_simd_x86.h redoes such vectors lane by lane), and their
// neighbours: bfloat16's subnormals (vcvtneps2bf16 flushes them), float16's saturation and overflow
// boundary, its subnormals, ties to even, and NaNs with payloads (as float32 bit patterns, which a
// Float32Array keeps when written through a Uint32Array). Shared by test/vector_fixup_lanes.test.ts
// (against the float64 reference) and test/helpers/isa_digest.js (every ISA, bit for bit).
'use strict';

const finite = {
  bfloat16: [
    2 ** -149, -(2 ** -149), 2 ** -134, 3 * 2 ** -134, -(5 * 2 ** -134), 1.5 * 2 ** -140, 2 ** -126 - 2 ** -149,
    -(2 ** -126 - 2 ** -149), 2 ** -126, 2 ** -127 + 2 ** -134, 1 + 2 ** -8, 1 + 3 * 2 ** -8, -(1 + 2 ** -8), 0, -0,
    3.3895313892515355e38, 2 ** 127 * (2 - 2 ** -8),
  ],
  float16: [
    65504, 65519, 65520, -65520, 70000, -70000, 65535.99609375, 2 ** -24, 2 ** -25, 3 * 2 ** -25, -(3 * 2 ** -25),
    2 ** -14 - 2 ** -25, 1e-8, -1e-8, 1 + 2 ** -11, 1 + 3 * 2 ** -11, -(1 + 2 ** -11), 2 ** -26 * 3, 0, -0,
  ],
};

// NaN float32 bit patterns: signalling and quiet, payloads only in the low bits, both signs.
const NAN_BITS = [0x7f800001, 0x7fc00001, 0x7f80ffff, 0xffa00000, 0x7fbfffff, 0xff800001, 0x7fc0ffff, 0xffffffff];

/** Float32Array of `n` elements, all `fill` except `values` (numbers or { bits }) at `positions`. */
function placed(n, fill, values, positions) {
  const out = new Float32Array(n).fill(fill);
  const bits = new Uint32Array(out.buffer);
  values.forEach((v, i) => {
    const at = positions(i);
    if (typeof v === 'number') out[at] = v;
    else bits[at] = v.bits;
  });
  return out;
}

// Where the i-th special value goes: inside vectors at every lane (8 and 16 wide), away from
// others, in arrays long enough to have a scalar tail too (see fixupLength).
const fixupPosition = (i) => 37 * i + (i % 16);
const fixupLength = (count) => fixupPosition(count) + 21;

module.exports = { finite, NAN_BITS, placed, fixupPosition, fixupLength };
