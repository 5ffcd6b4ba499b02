// Per-element operations, shared by the CPU loops and the CUDA multi-tensor kernels.
//
// Storage<T> says how one element of a storage or parameter type is read into arithmetic precision
// and written back. The functors below are the whole math of the library; the loops around them
// only decide which elements each thread or CUDA block visits. Every transforming functor has one
// shape, so that one CPU loop and one CUDA kernel serve them all:
//   using Dst, Src;                     element types written and read
//   static constexpr bool kReadsDst;    whether the old destination value is used (loaded) at all
//   static constexpr bool kCountsSkips; whether the loop counts the Skips() of the sources
//   static constexpr bool kStochastic;  whether the loop passes random bits (RandomStream)
//   Dst operator()(Dst old, Src in, uint32_t random); the new destination value
// ForTensor(op, t) gives the functor for tensor t (its random stream); Skips(op, in) says whether
// an element kept its old value because its source was not finite.
// WithUpdateOp and WithConvertOp, at the end, turn run-time dtypes (and the update description)
// into one concrete functor: the only place where those choices are made, for both targets.
#pragma once

#include <type_traits>

#include "dtype.h"
#include "dtype_traits.h"
#include "float_bits.h"
#include "host_device.h"
#include "random_stream.h"
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
  static constexpr bool kCountsSkips = false;
  static constexpr bool kStochastic = false;
  MODEL_EMA_HD_INLINE To operator()(To, From v, uint32_t) const { return Storage<To>::Store(Storage<From>::Load(v)); }
};

// True when a value is neither infinite nor NaN (a diverged run shows up here first).
// Read from the exponent bits (all ones: infinite or NaN): integer lanes, no floating-point
// compare, which is what the guard's vector loops do per element.
template <typename T>
MODEL_EMA_HD_INLINE bool IsFiniteValue(T x) {
  if constexpr (std::is_same_v<T, float>) {
    return (FloatBits(x) & 0x7F800000u) != 0x7F800000u;
  } else {
    return x - x == x - x;  // Inf - Inf and NaN - NaN are NaN, which compares unequal
  }
}

// The largest finite float16. Updates of float16 shadows saturate here rather than overflow to
// infinity (an infinite shadow turns into NaN at the next update, for good); an infinite or NaN
// value itself is left as it is.
template <typename S>
struct Saturation {
  template <typename V>
  static MODEL_EMA_HD_INLINE V Apply(V v) { return v; }
};
template <>
struct Saturation<Half> {
  template <typename V>
  static MODEL_EMA_HD_INLINE V Apply(V v) {
    const V kMax = V(65504);
    return !IsFiniteValue(v) ? v : v > kMax ? kMax : v < -kMax ? -kMax : v;
  }
};

// yes ? a : b for any element type; 16-bit types select their bits (a select of the structs is an
// aggregate copy, which GCC does not vectorise).
template <typename T>
MODEL_EMA_HD_INLINE T Select(bool yes, T a, T b) {
  if constexpr (std::is_same_v<T, Half> || std::is_same_v<T, BFloat16>) {
    return T{static_cast<uint16_t>(yes ? a.bits : b.bits)};
  } else {
    return yes ? a : b;
  }
}

// A computed shadow value (in the shadow's compute type) into storage, nearest or stochastic.
template <typename S, bool kStochastic>
MODEL_EMA_HD_INLINE S StoreShadow(ComputeOf<S> v, uint32_t random) {
  v = Saturation<S>::Apply(v);
  if constexpr (kStochastic && std::is_same_v<S, Half>) {
    return Half{FloatToHalfBitsStochastic(v, random)};
  } else if constexpr (kStochastic && std::is_same_v<S, BFloat16>) {
    return BFloat16{FloatToBFloat16BitsStochastic(v, random)};
  } else {
    (void)random;
    return Storage<S>::Store(v);
  }
}

// Stochastic rounding means something only for the 16-bit storage types.
template <typename S>
constexpr bool kHasStochasticRounding = std::is_same_v<S, Half> || std::is_same_v<S, BFloat16>;

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
// kSkipNonFinite: an element whose parameter is NaN or infinite keeps its shadow (and is counted).
// kStochastic: 16-bit shadows are rounded stochastically (see float_bits.h), with `random` bits.
template <typename S, typename P, UpdateRule kRule, bool kSkipNonFinite = false, bool kStochasticRounding = false>
struct UpdateShadow {
  using Dst = S;
  using Src = P;
  static constexpr bool kReadsDst = kRule != UpdateRule::kCopy || kSkipNonFinite;
  static constexpr bool kCountsSkips = kSkipNonFinite;
  static constexpr bool kStochastic = kStochasticRounding;
  ComputeOf<S> one_minus_decay;
  uint64_t seed = 0;          // stochastic only: with the update index, what ForTensor derives from
  uint64_t update_index = 0;
  RandomStream stream;        // stochastic only: this tensor's, set by ForTensor

  MODEL_EMA_HD_INLINE S operator()(S shadow, P param, uint32_t random) const {
    if constexpr (kSkipNonFinite) {
      // Computed for every element, then selected: a select vectorises where an early return does not.
      const S updated = Unguarded(shadow, param, random);
      return Select(IsFiniteValue(Storage<P>::Load(param)), updated, shadow);
    } else {
      return Unguarded(shadow, param, random);
    }
  }

 private:
  MODEL_EMA_HD_INLINE S Unguarded(S shadow, P param, uint32_t random) const {
    using C = ComputeOf<S>;
    if constexpr (kRule == UpdateRule::kKeep) {
      return shadow;
    } else if constexpr (kRule == UpdateRule::kCopy && !kStochastic) {
      // Straight from the parameter's own precision: a double rounds once, to the shadow's type.
      return Storage<S>::Store(Saturation<S>::Apply(Storage<P>::Load(param)));
    } else if constexpr (kRule == UpdateRule::kCopy) {
      return StoreShadow<S, true>(static_cast<C>(Storage<P>::Load(param)), random);
    } else {
      C s = Storage<S>::Load(shadow);
      C p = static_cast<C>(Storage<P>::Load(param));
      return StoreShadow<S, kStochastic>(s - one_minus_decay * (s - p), random);
    }
  }
};

// The functor for tensor `t`: its random stream, when it has one.
template <typename F>
MODEL_EMA_HD_INLINE F ForTensor(const F& op, uint64_t t) {
  if constexpr (F::kStochastic) {
    F bound = op;
    bound.stream = RandomStream::Of(op.seed, op.update_index, t);
    return bound;
  } else {
    (void)t;
    return op;
  }
}

// Whether op left an element alone because its source was not finite (what 'skip-element' counts).
template <typename F>
MODEL_EMA_HD_INLINE bool Skips(const F&, typename F::Src in) {
  if constexpr (F::kCountsSkips) {
    return !IsFiniteValue(Storage<typename F::Src>::Load(in));
  } else {
    (void)in;
    return false;
  }
}

// True when a stored value is neither infinite nor NaN.
template <typename S>
struct IsFiniteElement {
  MODEL_EMA_HD_INLINE bool operator()(S v) const { return IsFiniteValue(Storage<S>::Load(v)); }
};

// Calls f(op) with the UpdateShadow that `u` asks for, for shadows of `shadow` dtype and
// parameters of `param` type. Nothing is called for kKeep: no element would change. The
// non-finite policy here is only skip-element or not: 'skip-update' is decided before (Arena::Update).
template <typename F>
inline void WithUpdateOp(const UpdateDescription& u, DType shadow, ParamType param, F&& f) {
  const UpdateRule rule = RuleOf(u);
  if (rule == UpdateRule::kKeep) return;
  const bool skip = u.non_finite == NonFinitePolicy::kSkipElement;
  const bool stochastic = u.rounding == Rounding::kStochastic;
  VisitDType(shadow, [&](auto s) {
    VisitParamType(param, [&](auto p) {
      using S = decltype(s);
      using P = decltype(p);
      const auto one_minus_decay = static_cast<ComputeOf<S>>(1.0 - u.decay);
      auto with_rule = [&](auto rule_tag, auto skip_tag, auto stochastic_tag) {
        f(UpdateShadow<S, P, decltype(rule_tag)::value, decltype(skip_tag)::value, decltype(stochastic_tag)::value>{
            one_minus_decay, u.seed, u.update_index, RandomStream{}});
      };
      auto with_flags = [&](auto rule_tag) {
        using Yes = std::true_type;
        using No = std::false_type;
        if constexpr (kHasStochasticRounding<S>) {
          if (stochastic) return skip ? with_rule(rule_tag, Yes{}, Yes{}) : with_rule(rule_tag, No{}, Yes{});
        }
        return skip ? with_rule(rule_tag, Yes{}, No{}) : with_rule(rule_tag, No{}, No{});
      };
      if (rule == UpdateRule::kCopy) {
        with_flags(std::integral_constant<UpdateRule, UpdateRule::kCopy>{});
      } else {
        with_flags(std::integral_constant<UpdateRule, UpdateRule::kAverage>{});
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
