// The CPU loops, included once per instruction set by cpu_kernels_<isa>.cc with MODEL_EMA_ISA set
// to a namespace name, after that file has chosen its target options. Plain loops over
// __restrict pointers: the compiler vectorises them for the target, with unaligned heads and
// scalar tails handled for us. Everything here lives in the per-ISA namespace so that no
// out-of-line copy compiled for one target can be picked by the linker for another.
#if !defined(MODEL_EMA_ISA) || !defined(MODEL_EMA_ISA_LEVEL)
#error "define MODEL_EMA_ISA and MODEL_EMA_ISA_LEVEL before including cpu_loops.inl"
#endif

#include <algorithm>
#include <cstdint>
#include <type_traits>
#if MODEL_EMA_ISA_LEVEL >= 1
#include <immintrin.h>  // for cpu_vector_loops.h, included inside the namespace below
// GCC 12's AVX-512 intrinsics start some results from _mm512_undefined_*(), which it then warns
// about once inlined (GCC bug 105593, fixed in 13): nothing of ours is uninitialised.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include "cpu_kernels.h"
#include "element_ops.h"

namespace model_ema {
namespace MODEL_EMA_ISA {
namespace {

// Elements per block of a 32-bit count (far below 2^32, and long enough to hide the block's end).
constexpr size_t kCountBlock = size_t{1} << 16;

#if MODEL_EMA_ISA_LEVEL >= 1
#include "cpu_vector_loops.h"
#else
template <typename F>
struct VectorPlan {
  static constexpr bool kHas = false;
};
#endif

// dst[i] = op(dst[i], src[i], bits) over one run of elements whose indices share their high half
// (so the random stream's key is fixed), for any functor of element_ops.h; returns how many
// elements op skipped. Separate loops for what a functor does not need (the old value, random
// bits, a skip count), so that none of it is computed for the functors that do not use it.
template <typename F>
size_t RunLoop(typename F::Dst* __restrict d, const typename F::Src* __restrict s, size_t n, const F op,
               uint32_t block_key, uint32_t low) {
  using D = typename F::Dst;
  size_t skipped = 0;
#if MODEL_EMA_ISA_LEVEL >= 1
  // Whole vectors by the hand-written loop where there is one; the functor's loops do the rest.
  if constexpr (VectorPlan<F>::kHas) {
    const size_t done = VectorLoop(d, s, n, op, block_key, low, skipped);
    d += done;
    s += done;
    n -= done;
    low += static_cast<uint32_t>(done);
  }
#endif
  if constexpr (F::kStochastic && F::kCountsSkips) {
    for (size_t i = 0; i < n; ++i) {
      skipped += Skips(op, s[i]) ? 1 : 0;
      d[i] = op(d[i], s[i], RandomStream::Bits(block_key, low + static_cast<uint32_t>(i)));
    }
  } else if constexpr (F::kStochastic) {
    for (size_t i = 0; i < n; ++i) d[i] = op(d[i], s[i], RandomStream::Bits(block_key, low + static_cast<uint32_t>(i)));
  } else if constexpr (F::kCountsSkips) {
    // Counted in 32-bit lanes per block (as wide as the float lanes), then summed: a 64-bit count
    // per element costs the vector loop a widening per element.
    for (size_t block = 0; block < n; block += kCountBlock) {
      const size_t end = std::min(n, block + kCountBlock);
      uint32_t in_block = 0;
      for (size_t i = block; i < end; ++i) {
        in_block += Skips(op, s[i]) ? 1u : 0u;
        d[i] = op(d[i], s[i], 0u);
      }
      skipped += in_block;
    }
  } else if constexpr (F::kReadsDst) {
    for (size_t i = 0; i < n; ++i) d[i] = op(d[i], s[i], 0u);
  } else {
    for (size_t i = 0; i < n; ++i) d[i] = op(D{}, s[i], 0u);
  }
  return skipped;
}

// The elements [first, first + n) of tensor `tensor`: split where the index's high half changes
// (only past 2^32 elements), so each run has one random key.
template <typename F>
size_t TransformLoop(void* dst, const void* src, size_t n, const F& f, size_t tensor, size_t first) {
  using D = typename F::Dst;
  using S = typename F::Src;
  D* d = static_cast<D*>(dst);
  const S* s = static_cast<const S*>(src);
  const F op = ForTensor(f, tensor);  // a local copy: stores through d cannot change its fields
  if constexpr (!F::kStochastic) {
    return RunLoop(d, s, n, op, 0u, 0u);
  } else {
    size_t skipped = 0;
    for (size_t done = 0; done < n;) {
      const uint64_t at = static_cast<uint64_t>(first) + done;
      const uint64_t to_block_end = (uint64_t{1} << 32) - (at & 0xFFFFFFFFu);
      const size_t run = static_cast<size_t>(std::min<uint64_t>(n - done, to_block_end));
      skipped += RunLoop(d + done, s + done, run, op, op.stream.KeyOfBlock(static_cast<uint32_t>(at >> 32)),
                         static_cast<uint32_t>(at));
      done += run;
    }
    return skipped;
  }
}

template <typename S>
size_t CountNonFiniteLoop(const void* values, size_t n) {
  const S* __restrict s = static_cast<const S*>(values);
  const IsFiniteElement<S> finite{};
  size_t count = 0;
#if MODEL_EMA_ISA_LEVEL >= 1
  if constexpr (std::is_same_v<S, float>) {
    const size_t done = CountNonFiniteVectors(s, n, count);
    s += done;
    n -= done;
  }
#endif
  for (size_t block = 0; block < n; block += kCountBlock) {  // 32-bit lanes, as in RunLoop
    const size_t end = std::min(n, block + kCountBlock);
    uint32_t in_block = 0;
    for (size_t i = block; i < end; ++i) in_block += finite(s[i]) ? 0u : 1u;
    count += in_block;
  }
  return count;
}

size_t Update(UpdateDescription u, DType shadow_dtype, ParamType param_type, void* shadow, const void* param, size_t n,
              size_t tensor, size_t first) {
  size_t skipped = 0;
  WithUpdateOp(u, shadow_dtype, param_type,
               [&](const auto& op) { skipped = TransformLoop(shadow, param, n, op, tensor, first); });
  return skipped;
}

void Convert(DType from_dtype, DType to_dtype, const void* from, void* to, size_t n) {
  WithConvertOp(from_dtype, to_dtype, [&](const auto& op) { TransformLoop(to, from, n, op, 0, 0); });
}

size_t CountNonFinite(DType dtype, const void* values, size_t n) {
  size_t count = 0;
  VisitDType(dtype, [&](auto element) { count = CountNonFiniteLoop<decltype(element)>(values, n); });
  return count;
}

}  // namespace

const CpuKernelTable& Kernels() {
  static const CpuKernelTable table = {MODEL_EMA_ISA_NAME, Update, Convert, CountNonFinite};
  return table;
}

}  // namespace MODEL_EMA_ISA
}  // namespace model_ema
