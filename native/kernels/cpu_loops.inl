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

template <ParamType T> struct ParamElement;
template <> struct ParamElement<ParamType::kFloat32> { using type = float; };
template <> struct ParamElement<ParamType::kFloat64> { using type = double; };

template <DType T> struct StorageElement;
template <> struct StorageElement<DType::kFloat32> { using type = float; };
template <> struct StorageElement<DType::kFloat64> { using type = double; };
template <> struct StorageElement<DType::kFloat16> { using type = Half; };
template <> struct StorageElement<DType::kBFloat16> { using type = BFloat16; };

template <DType SD, ParamType PT>
void UpdateLoop(void* shadow, const void* param, size_t n, double one_minus_decay) {
  using S = typename StorageElement<SD>::type;
  using P = typename ParamElement<PT>::type;
  S* __restrict s = static_cast<S*>(shadow);
  const P* __restrict p = static_cast<const P*>(param);
  const UpdateShadow<S, P> op{static_cast<ComputeOf<S>>(one_minus_decay)};
  for (size_t i = 0; i < n; ++i) s[i] = op(s[i], p[i]);
}

template <typename From, typename To>
void ConvertLoop(const void* from, void* to, size_t n) {
  const From* __restrict src = static_cast<const From*>(from);
  To* __restrict dst = static_cast<To*>(to);
  const ConvertElement<From, To> op{};
  for (size_t i = 0; i < n; ++i) dst[i] = op(src[i]);
}

template <DType SD, ParamType PT>
void LoadParamsLoop(void* shadow, const void* param, size_t n) {
  ConvertLoop<typename ParamElement<PT>::type, typename StorageElement<SD>::type>(param, shadow, n);
}

template <DType SD, ParamType PT>
void StoreParamsLoop(const void* shadow, void* param, size_t n) {
  ConvertLoop<typename StorageElement<SD>::type, typename ParamElement<PT>::type>(shadow, param, n);
}

template <DType From, DType To>
void ConvertArenaLoop(const void* from, void* to, size_t n) {
  ConvertLoop<typename StorageElement<From>::type, typename StorageElement<To>::type>(from, to, n);
}

template <DType SD>
size_t CountNonFiniteLoop(const void* shadow, size_t n) {
  using S = typename StorageElement<SD>::type;
  const S* __restrict s = static_cast<const S*>(shadow);
  const IsFiniteElement<S> finite{};
  size_t count = 0;
  for (size_t i = 0; i < n; ++i) count += finite(s[i]) ? 0 : 1;
  return count;
}

constexpr DType F32 = DType::kFloat32, F64 = DType::kFloat64, F16 = DType::kFloat16,
                BF16 = DType::kBFloat16;
constexpr ParamType P32 = ParamType::kFloat32, P64 = ParamType::kFloat64;

#define MODEL_EMA_BY_PARAM(LOOP, SD) {LOOP<SD, P32>, LOOP<SD, P64>}
#define MODEL_EMA_BY_STORAGE(LOOP) \
  {MODEL_EMA_BY_PARAM(LOOP, F32), MODEL_EMA_BY_PARAM(LOOP, F64), MODEL_EMA_BY_PARAM(LOOP, F16), \
   MODEL_EMA_BY_PARAM(LOOP, BF16)}
#define MODEL_EMA_TO_ALL(FROM) \
  {ConvertArenaLoop<FROM, F32>, ConvertArenaLoop<FROM, F64>, ConvertArenaLoop<FROM, F16>, \
   ConvertArenaLoop<FROM, BF16>}

}  // namespace

const CpuKernelTable& Kernels() {
  static const CpuKernelTable table = {
      MODEL_EMA_ISA_NAME,
      MODEL_EMA_BY_STORAGE(UpdateLoop),
      MODEL_EMA_BY_STORAGE(LoadParamsLoop),
      MODEL_EMA_BY_STORAGE(StoreParamsLoop),
      {MODEL_EMA_TO_ALL(F32), MODEL_EMA_TO_ALL(F64), MODEL_EMA_TO_ALL(F16), MODEL_EMA_TO_ALL(BF16)},
      {CountNonFiniteLoop<F32>, CountNonFiniteLoop<F64>, CountNonFiniteLoop<F16>,
       CountNonFiniteLoop<BF16>},
  };
  return table;
}

#undef MODEL_EMA_BY_PARAM
#undef MODEL_EMA_BY_STORAGE
#undef MODEL_EMA_TO_ALL

}  // namespace MODEL_EMA_ISA
}  // namespace model_ema
