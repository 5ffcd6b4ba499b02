// The CPU loops, included once per instruction set by cpu_kernels_<isa>.cc with MODEL_EMA_ISA set
// to a namespace name, after that file has chosen its target options. Plain loops over
// __restrict pointers: the compiler vectorises them for the target, with unaligned heads and
// scalar tails handled for us. Everything here lives in the per-ISA namespace so that no
// out-of-line copy compiled for one target can be picked by the linker for another.
#ifndef MODEL_EMA_ISA
#error "define MODEL_EMA_ISA before including cpu_loops.inl"
#endif

#include "cpu_kernels.h"
#include "element_ops.h"

namespace model_ema {
namespace MODEL_EMA_ISA {
namespace {

// dst[i] = op(dst[i], src[i]) for any functor of element_ops.h. Two loops rather than one with a
// select, so that a functor that ignores the old value never loads it.
template <typename F>
void TransformLoop(void* dst, const void* src, size_t n, const F& f) {
  using D = typename F::Dst;
  using S = typename F::Src;
  D* __restrict d = static_cast<D*>(dst);
  const S* __restrict s = static_cast<const S*>(src);
  const F op = f;  // a local copy: stores through d cannot change its fields
  if constexpr (F::kReadsDst) {
    for (size_t i = 0; i < n; ++i) d[i] = op(d[i], s[i]);
  } else {
    for (size_t i = 0; i < n; ++i) d[i] = op(D{}, s[i]);
  }
}

template <typename S>
size_t CountNonFiniteLoop(const void* values, size_t n) {
  const S* __restrict s = static_cast<const S*>(values);
  const IsFiniteElement<S> finite{};
  size_t count = 0;
  for (size_t i = 0; i < n; ++i) count += finite(s[i]) ? 0 : 1;
  return count;
}

void Update(UpdateDescription u, DType shadow_dtype, ParamType param_type, void* shadow, const void* param,
            size_t n) {
  WithUpdateOp(u, shadow_dtype, param_type, [&](const auto& op) { TransformLoop(shadow, param, n, op); });
}

void Convert(DType from_dtype, DType to_dtype, const void* from, void* to, size_t n) {
  WithConvertOp(from_dtype, to_dtype, [&](const auto& op) { TransformLoop(to, from, n, op); });
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
