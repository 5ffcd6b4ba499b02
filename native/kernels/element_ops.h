// Per-element operations, shared by the CPU loops and the CUDA multi-tensor kernels.
//
// Storage<T> says how one element of a storage or parameter type is read into arithmetic precision
// and written back. The functors below are the whole math of the library; the loops around them
// only decide which elements each thread or CUDA block visits.
#pragma once

#include "dtype.h"
#include "float_bits.h"
#include "host_device.h"

namespace model_ema {

template <typename T>
struct Storage;

template <>
struct Storage<float> {
  using Compute = float;
  static MODEL_EMA_HD_INLINE float Load(float v) { return v; }
  static MODEL_EMA_HD_INLINE float Store(float v) { return v; }
  static MODEL_EMA_HD_INLINE float Store(double v) { return static_cast<float>(v); }
};

template <>
struct Storage<double> {
  using Compute = double;
  static MODEL_EMA_HD_INLINE double Load(double v) { return v; }
  static MODEL_EMA_HD_INLINE double Store(double v) { return v; }
  static MODEL_EMA_HD_INLINE double Store(float v) { return v; }
};

template <>
struct Storage<Half> {
  using Compute = float;
  static MODEL_EMA_HD_INLINE float Load(Half v) { return HalfBitsToFloat(v.bits); }
  static MODEL_EMA_HD_INLINE Half Store(float v) { return Half{FloatToHalfBits(v)}; }
  // Through float32 rounded to odd, so that the result is the direct rounding of the double.
  static MODEL_EMA_HD_INLINE Half Store(double v) { return Store(DoubleToFloatRoundToOdd(v)); }
};

template <>
struct Storage<BFloat16> {
  using Compute = float;
  static MODEL_EMA_HD_INLINE float Load(BFloat16 v) { return BFloat16BitsToFloat(v.bits); }
  static MODEL_EMA_HD_INLINE BFloat16 Store(float v) { return BFloat16{FloatToBFloat16Bits(v)}; }
  static MODEL_EMA_HD_INLINE BFloat16 Store(double v) { return Store(DoubleToFloatRoundToOdd(v)); }
};

// The shadow's own precision decides the arithmetic: float64 shadows average in double, every
// other storage dtype in float32, whatever the parameter's type.
template <typename S>
using ComputeOf = typename Storage<S>::Compute;

// s = s - (1 - d) * (s - p), the SPEC formula, written exactly so (not as a lerp) so that d = 1
// leaves finite shadows bit-for-bit unchanged and d = 0 copies the parameter.
template <typename S, typename P>
struct UpdateShadow {
  ComputeOf<S> one_minus_decay;
  MODEL_EMA_HD_INLINE S operator()(S shadow, P param) const {
    using C = ComputeOf<S>;
    C s = Storage<S>::Load(shadow);
    C p = static_cast<C>(Storage<P>::Load(param));
    return Storage<S>::Store(s - one_minus_decay * (s - p));
  }
};

// Any element type to any other, through the wider of the two compute types.
template <typename From, typename To>
struct ConvertElement {
  MODEL_EMA_HD_INLINE To operator()(From v) const { return Storage<To>::Store(Storage<From>::Load(v)); }
};

// True when a stored value is neither infinite nor NaN (a diverged run shows up here first).
template <typename S>
struct IsFiniteElement {
  MODEL_EMA_HD_INLINE bool operator()(S v) const {
    auto x = Storage<S>::Load(v);
    return x - x == x - x;  // Inf - Inf and NaN - NaN are NaN, which compares unequal
  }
};

}  // namespace model_ema
