// Bit-exact conversions between float32 and the 16-bit formats: round to nearest even, and
// stochastic rounding (up or down with probability by distance) from caller-given random bits.
//
// Written branch-free (selects, integer and float adds) so that the same code vectorises in the CPU
// loops and runs unchanged in CUDA kernels. Relies on IEEE float32 arithmetic in the default
// rounding mode without flush-to-zero, which both targets give unless built with fast-math.
#pragma once

#include <cstdint>
#include <cstring>

#include "host_device.h"

namespace model_ema {

MODEL_EMA_HD_INLINE uint32_t FloatBits(float f) {
  uint32_t u;
  memcpy(&u, &f, sizeof u);
  return u;
}

MODEL_EMA_HD_INLINE float BitsFloat(uint32_t u) {
  float f;
  memcpy(&f, &u, sizeof f);
  return f;
}

// double -> float rounded to odd: truncate toward zero, then set the last bit when anything was
// cut off. Rounding that result once more to a format at least two bits narrower (binary16 has
// 11 significant bits, bfloat16 8, float32 24) gives exactly the direct round-to-nearest-even of
// the double: the sticky odd bit keeps ties from being invented or lost.
MODEL_EMA_HD_INLINE float DoubleToFloatRoundToOdd(double d) {
  float nearest = static_cast<float>(d);
  uint32_t u = FloatBits(nearest);
  double back = static_cast<double>(nearest);
  bool inexact = back != d;  // also true for NaN, where the result stays a NaN
  bool rounded_up = (back > d) == (d > 0);  // moved away from zero
  u -= (inexact && rounded_up && !(d != d)) ? 1u : 0u;
  u |= inexact ? 1u : 0u;
  return BitsFloat(u);
}

// bfloat16 is the upper half of a float32: round the lower half away, keeping NaNs quiet NaNs
// (a NaN whose payload sits only in the low bits would otherwise round to infinity). Written with
// masks rather than a select between two rounded results: the vectorised loop is a third faster.
MODEL_EMA_HD_INLINE uint16_t FloatToBFloat16Bits(float f) {
  uint32_t u = FloatBits(f);
  uint32_t nan_mask = f != f ? 0xFFFFFFFFu : 0u;
  uint32_t rounding = (0x7FFFu + ((u >> 16) & 1u)) & ~nan_mask;  // NaNs: no rounding, quiet bit on
  return static_cast<uint16_t>(((u | (nan_mask & 0x00400000u)) + rounding) >> 16);
}

MODEL_EMA_HD_INLINE float BFloat16BitsToFloat(uint16_t h) {
  return BitsFloat(static_cast<uint32_t>(h) << 16);
}

// float32 -> IEEE binary16. Three regimes, computed together and selected at the end:
//  - |f| >= 65536 (or Inf/NaN): infinity or a quiet NaN. Values in [65520, 65536) overflow to
//    infinity through the normal path's rounding carry, as round-to-nearest-even requires.
//  - |f| < 2^-14: the result is subnormal. Adding 0.5f aligns the value so that the FPU's own
//    rounding leaves the 10-bit subnormal mantissa in the low bits of the sum.
//  - otherwise: rebias the exponent and round the 13 dropped mantissa bits to nearest even.
MODEL_EMA_HD_INLINE uint16_t FloatToHalfBits(float f) {
  uint32_t u = FloatBits(f);
  uint32_t sign = (u >> 16) & 0x8000u;
  uint32_t mag = u & 0x7FFFFFFFu;

  uint32_t special = mag > 0x7F800000u ? 0x7E00u : 0x7C00u;

  const uint32_t kHalfAsFloatBits = 126u << 23;  // 0.5f
  uint32_t subnormal = FloatBits(BitsFloat(mag) + BitsFloat(kHalfAsFloatBits)) - kHalfAsFloatBits;

  uint32_t mantissa_odd = (mag >> 13) & 1u;
  uint32_t normal = (mag + ((15u - 127u) << 23) + 0xFFFu + mantissa_odd) >> 13;

  uint32_t out = mag >= 0x47800000u ? special : mag < 0x38800000u ? subnormal : normal;
  return static_cast<uint16_t>(out | sign);
}

// IEEE binary16 -> float32, exact. Subnormal halves are renormalised by a float subtraction.
MODEL_EMA_HD_INLINE float HalfBitsToFloat(uint16_t h) {
  uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t shifted = static_cast<uint32_t>(h & 0x7FFFu) << 13;  // exponent and mantissa in place
  uint32_t exponent = shifted & (0x1Fu << 23);

  uint32_t normal = shifted + ((127u - 15u) << 23);
  uint32_t inf_nan = normal + ((128u - 16u) << 23);
  const uint32_t kMagic = 113u << 23;  // 2^-14, the smallest normal half
  uint32_t subnormal = FloatBits(BitsFloat(normal + (1u << 23)) - BitsFloat(kMagic));

  uint32_t out = exponent == (0x1Fu << 23) ? inf_nan : exponent == 0 ? subnormal : normal;
  return BitsFloat(out | sign);
}

// Stochastic rounding to bfloat16: add 16 random bits below the kept half and truncate, so a value
// a fraction q of the way from one bfloat16 (toward zero) to the next rounds up with probability q
// exactly (q is a multiple of 2^-16). Sign-magnitude bits make this work for either sign and for
// subnormals; a carry into the exponent is the correct next value (infinity above the largest
// finite one). NaNs round as to nearest (quiet). Branch-free: it vectorises like the nearest one.
MODEL_EMA_HD_INLINE uint16_t FloatToBFloat16BitsStochastic(float f, uint32_t random) {
  uint32_t u = FloatBits(f);
  uint32_t rounded = (u + (random & 0xFFFFu)) >> 16;
  return f != f ? FloatToBFloat16Bits(f) : static_cast<uint16_t>(rounded);
}

// Stochastic rounding to binary16, for finite f of any magnitude: lo and hi are the binary16
// values on either side of |f| (nearest even tells which side it is on), and |f| - lo and
// (hi - lo) * u are exact in float32 (Sterbenz; hi - lo is a power of two and u a multiple of
// 2^-24), so hi is chosen with probability (|f| - lo) / (hi - lo), to 2^-24 (an exact |f| gives
// 0). Infinities, NaNs and values beyond the largest finite one round as to nearest. Selects
// only, no branches, so that the loop vectorises.
MODEL_EMA_HD_INLINE uint16_t FloatToHalfBitsStochastic(float f, uint32_t random) {
  const uint16_t nearest = FloatToHalfBits(f);
  const uint32_t sign = nearest & 0x8000u;
  const uint32_t mag = nearest & 0x7FFFu;
  const float a = BitsFloat(FloatBits(f) & 0x7FFFFFFFu);
  const uint32_t lo = HalfBitsToFloat(static_cast<uint16_t>(mag)) > a ? mag - 1u : mag;
  const float low = HalfBitsToFloat(static_cast<uint16_t>(lo));
  const float gap = HalfBitsToFloat(static_cast<uint16_t>(lo + 1u)) - low;
  const float u = static_cast<float>(random >> 8) * 5.9604644775390625e-8f;  // [0, 1) in steps of 2^-24
  const uint32_t rounded = sign | (u * gap < a - low ? lo + 1u : lo);
  return static_cast<uint16_t>(a < 65520.0f ? rounded : nearest);
}

}  // namespace model_ema
