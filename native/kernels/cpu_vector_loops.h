// Hand-written x86 vector loops for the functors whose compiler-vectorised loop is bound by
// instructions rather than memory: 16-bit shadows (the round-and-pack to bfloat16 or float16, with
// AVX512_BF16 or F16C instructions), the 'skip-element' guard on float32 shadows (one finiteness
// mask per vector, and the selected store only in vectors that hold a non-finite parameter), and
// the non-finite count of 'skip-update'. Same bits as element_ops.h's functors, which stay the
// definition (and do every element these loops leave: the tail, and every other functor).
// Included by cpu_loops.inl, in the ISA's namespace, when MODEL_EMA_ISA_LEVEL >= 1.
#include "cpu_simd_x86.h"

#if MODEL_EMA_ISA_LEVEL >= 2
using Lanes = Lanes256Masks;
using WideLanes = Lanes512;  // 16-bit shadows' updates (see Lanes512)
#else
using Lanes = Lanes256;
using WideLanes = Lanes256;
#endif

// Which functors have a loop here.
template <typename F>
struct VectorPlan {
  static constexpr bool kHas = false;
};
template <typename S, bool kSkip, bool kStochastic>
struct VectorPlan<UpdateShadow<S, float, UpdateRule::kAverage, kSkip, kStochastic>> {
  // float32 without the guard is memory-bound already; float64 shadows are left to the functor.
  static constexpr bool kHas = (std::is_same_v<S, float> && kSkip) || std::is_same_v<S, BFloat16> ||
                               std::is_same_v<S, Half>;
};
template <typename From, typename To>
struct VectorPlan<ConvertElement<From, To>> {
  static constexpr bool k16 = std::is_same_v<To, Half> || std::is_same_v<To, BFloat16>;
  static constexpr bool kFrom16 = std::is_same_v<From, Half> || std::is_same_v<From, BFloat16>;
  static constexpr bool kHas = (std::is_same_v<From, float> && k16) || (kFrom16 && std::is_same_v<To, float>);
};

// RandomStream::Bits(key, first + lane) for every lane.
template <typename L>
typename L::I RandomBits(uint32_t key, uint32_t first) {
  auto x = L::Xor(L::Add(L::Set(first), L::Iota()), L::Set(key));
  x = L::Xor(x, L::template ShiftRight<16>(x));
  x = L::MulLo(x, L::Set(0x7FEB352Du));
  x = L::Xor(x, L::template ShiftRight<15>(x));
  x = L::MulLo(x, L::Set(0x846CA68Bu));
  return L::Xor(x, L::template ShiftRight<16>(x));
}

// shadow = shadow - (1 - decay) * (shadow - param), float32 parameters; returns the elements done
// (whole vectors), adds the skipped ones to `skipped`. L: Lanes for float32 shadows (memory-bound),
// WideLanes for 16-bit ones.
template <typename L, typename S, bool kSkip, bool kStochastic>
size_t UpdateVectors(S* __restrict d, const float* __restrict p, size_t n, float one_minus_decay, uint32_t key,
                     uint32_t low, size_t& skipped) {
  using C = Convert16<L>;
  const auto w = L::Set(one_minus_decay);
  size_t i = 0;
  for (; i + L::kWidth <= n; i += L::kWidth) {
    const auto param = L::Load(p + i);
    if constexpr (std::is_same_v<S, float>) {
      const auto old = L::Load(d + i);
      auto r = L::Sub(old, L::Mul(w, L::Sub(old, param)));
      if constexpr (kSkip) {
        const auto bad = L::NonFinite(param);
        if (L::Any(bad)) {
          skipped += L::Count(bad);
          r = L::Select(bad, old, r);
        }
      }
      L::Store(d + i, r);
    } else {
      const auto old = L::Load16(d + i);
      // Half: the fast widening quiets a signalling NaN shadow, which the arithmetic below does
      // to it anyway (a NaN operand comes out quiet, same sign), and any NaN stores as 0x7E00.
      typename L::F s;
      if constexpr (std::is_same_v<S, BFloat16>) {
        s = C::FromBFloat16(old);
      } else {
        s = L::HalfToFloatFast(old);
      }
      const auto r = L::Sub(s, L::Mul(w, L::Sub(s, param)));
      typename L::H out;
      if constexpr (std::is_same_v<S, Half> && kStochastic) {
        out = C::ToHalfStochasticSaturated(r, RandomBits<L>(key, low + static_cast<uint32_t>(i)));
      } else if constexpr (std::is_same_v<S, Half>) {
        out = C::ToHalfSaturated(r);
      } else if constexpr (kStochastic) {
        out = C::ToBFloat16Stochastic(r, RandomBits<L>(key, low + static_cast<uint32_t>(i)));
      } else {
        out = C::ToBFloat16(r);
      }
      if constexpr (kSkip) {
        const auto bad = L::NonFinite(param);
        if (L::Any(bad)) {
          skipped += L::Count(bad);
          out = L::Select16(bad, old, out);
        }
      }
      L::Store16(d + i, out);
    }
  }
  return i;
}

template <typename L, typename From, typename To>
size_t ConvertVectors(To* __restrict d, const From* __restrict s, size_t n) {
  using C = Convert16<L>;
  size_t i = 0;
  for (; i + L::kWidth <= n; i += L::kWidth) {
    if constexpr (std::is_same_v<To, BFloat16>) {
      L::Store16(d + i, C::ToBFloat16(L::Load(s + i)));
    } else if constexpr (std::is_same_v<To, Half>) {
      L::Store16(d + i, C::ToHalf(L::Load(s + i)));
    } else if constexpr (std::is_same_v<From, BFloat16>) {
      L::Store(d + i, C::FromBFloat16(L::Load16(s + i)));
    } else {
      L::Store(d + i, C::FromHalf(L::Load16(s + i)));
    }
  }
  return i;
}

// The vectors of one run (see RunLoop); returns the elements done.
template <typename F>
size_t VectorLoop(typename F::Dst* __restrict d, const typename F::Src* __restrict s, size_t n, const F& op,
                  uint32_t block_key, uint32_t low, size_t& skipped) {
  if constexpr (F::kReadsDst) {  // an update
    using L = std::conditional_t<std::is_same_v<typename F::Dst, float>, Lanes, WideLanes>;
    return UpdateVectors<L, typename F::Dst, F::kCountsSkips, F::kStochastic>(d, s, n, op.one_minus_decay, block_key,
                                                                             low, skipped);
  } else {
    return ConvertVectors<Lanes>(d, s, n);
  }
}

// Non-finite float32 values, read as two streams (the two halves of the range, side by side):
// a read-only pass runs at what one core's outstanding misses allow, and two streams keep more in
// flight (8% faster measured, one thread). Four vectors' masks per stream and step, counted only
// where one is set. Returns the elements done (from the start).
inline size_t CountNonFiniteVectors(const float* __restrict s, size_t n, size_t& count) {
  using L = Lanes;
  constexpr size_t kStep = 4 * L::kWidth;
  const size_t half = n / (2 * kStep) * kStep;
  auto step_mask = [](const float* p) {
    return L::Or(L::Or(L::NonFinite(L::Load(p)), L::NonFinite(L::Load(p + L::kWidth))),
                 L::Or(L::NonFinite(L::Load(p + 2 * L::kWidth)), L::NonFinite(L::Load(p + 3 * L::kWidth))));
  };
  auto step_count = [](const float* p) {
    unsigned c = 0;
    for (size_t k = 0; k < 4; ++k) c += L::Count(L::NonFinite(L::Load(p + k * L::kWidth)));
    return c;
  };
  for (size_t i = 0; i < half; i += kStep) {
    if (L::Any(L::Or(step_mask(s + i), step_mask(s + half + i)))) count += step_count(s + i) + step_count(s + half + i);
  }
  return 2 * half;
}
