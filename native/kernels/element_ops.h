// Per-element operations, shared by the CPU loops and the CUDA multi-tensor kernels.
//
// Storage<T> says how one element of a storage or parameter type is read into arithmetic precision
// and written back. The functors below are the whole math of the library; the loops around them
// only decide which elements each thread or CUDA block visits. Every transforming functor has one
// shape, so that one CPU loop and one CUDA kernel serve them all:
//   using Dst, Src;                  element types written and read
//   static constexpr bool kReadsDst; whether the old destination value is used (loaded) at all
//   Dst operator()(Dst old, Src in); the new destination value
// WithUpdateOp and WithConvertOp, at the end, turn run-time dtypes (and the update description)
// into one concrete functor: the only place where those choices are made, for both targets.
#pragma once

#include "dtype.h"
#include "dtype_traits.h"
#include "float_bits.h"
#include "host_device.h"
#include "update_description.h"

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

// Any element type to any other, through the wider of the two compute types: parameters into an
// arena, an arena into parameters, an arena into another dtype.
template <typename From, typename To>
struct ConvertElement {
  using Dst = To;
  using Src = From;
  static constexpr bool kReadsDst = false;
  MODEL_EMA_HD_INLINE To operator()(To, From v) const { return Storage<To>::Store(Storage<From>::Load(v)); }
};

// The end points of the decay, made exact. In floating point s - (s - p) is not p when |s| >> |p|,
// and s - 0 * (s - p) is not always s (-0 turns into +0, infinities into NaN), but decay 0 must
// copy the parameters and decay 1 must leave the shadows as they are. Host and device arenas both
// take these rules from here: Arena::Update skips the pass for kKeep, and UpdateShadow copies for
// kCopy, so every branch added to UpdateShadow sees the end points too.
enum class UpdateRule { kAverage, kCopy, kKeep };

constexpr UpdateRule RuleOf(const UpdateDescription& u) {
  return u.decay == 0.0 ? UpdateRule::kCopy : u.decay == 1.0 ? UpdateRule::kKeep : UpdateRule::kAverage;
}

// s = s - (1 - d) * (s - p), written exactly so (not as a lerp): the form torch_ema computes.
template <typename S, typename P, UpdateRule kRule>
struct UpdateShadow {
  using Dst = S;
  using Src = P;
  static constexpr bool kReadsDst = kRule != UpdateRule::kCopy;
  ComputeOf<S> one_minus_decay;

  MODEL_EMA_HD_INLINE S operator()(S shadow, P param) const {
    if constexpr (kRule == UpdateRule::kCopy) {
      return ConvertElement<P, S>{}(shadow, param);
    } else if constexpr (kRule == UpdateRule::kKeep) {
      return shadow;
    } else {
      using C = ComputeOf<S>;
      C s = Storage<S>::Load(shadow);
      C p = static_cast<C>(Storage<P>::Load(param));
      return Storage<S>::Store(s - one_minus_decay * (s - p));
    }
  }
};

// True when a stored value is neither infinite nor NaN (a diverged run shows up here first).
template <typename S>
struct IsFiniteElement {
  MODEL_EMA_HD_INLINE bool operator()(S v) const {
    auto x = Storage<S>::Load(v);
    return x - x == x - x;  // Inf - Inf and NaN - NaN are NaN, which compares unequal
  }
};

// Calls f(op) with the UpdateShadow that `u` asks for, for shadows of `shadow` dtype and
// parameters of `param` type. Nothing is called for kKeep: no element would change.
template <typename F>
inline void WithUpdateOp(const UpdateDescription& u, DType shadow, ParamType param, F&& f) {
  const UpdateRule rule = RuleOf(u);
  if (rule == UpdateRule::kKeep) return;
  VisitDType(shadow, [&](auto s) {
    VisitParamType(param, [&](auto p) {
      using S = decltype(s);
      using P = decltype(p);
      const auto one_minus_decay = static_cast<ComputeOf<S>>(1.0 - u.decay);
      if (rule == UpdateRule::kCopy) {
        f(UpdateShadow<S, P, UpdateRule::kCopy>{one_minus_decay});
      } else {
        f(UpdateShadow<S, P, UpdateRule::kAverage>{one_minus_decay});
      }
    });
  });
}

// Calls f(op) with the ConvertElement from dtype `from` to dtype `to`.
template <typename F>
inline void WithConvertOp(DType from, DType to, F&& f) {
  VisitDType(from, [&](auto a) {
    VisitDType(to, [&](auto b) { f(ConvertElement<decltype(a), decltype(b)>{}); });
  });
}

}  // namespace model_ema
