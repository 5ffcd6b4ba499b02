// The CPU loops of every operation, compiled once per instruction set and picked at run time.
//
// Each table entry handles one contiguous piece of one tensor; cpu_ops.cc splits the multi-tensor
// work into such pieces and spreads them over threads. Pointers are untyped because the element
// types are chosen by the table indices: [storage dtype][parameter type].
#pragma once

#include <cstddef>

#include "dtype.h"

namespace model_ema {

struct CpuKernelTable {
  const char* isa;  // "avx512", "avx2", "baseline" (which is NEON on arm64)
  // shadow = shadow - (1 - decay) * (shadow - param), one_minus_decay already computed
  void (*update[kNumDTypes][kNumParamTypes])(void* shadow, const void* param, size_t n,
                                             double one_minus_decay);
  void (*load_params[kNumDTypes][kNumParamTypes])(void* shadow, const void* param, size_t n);
  void (*store_params[kNumDTypes][kNumParamTypes])(const void* shadow, void* param, size_t n);
  void (*convert[kNumDTypes][kNumDTypes])(const void* from, void* to, size_t n);
  size_t (*count_non_finite[kNumDTypes])(const void* shadow, size_t n);
};

// The table for the best instruction set this CPU and OS support, no better than `ceiling`
// ("avx512", "avx2" or "baseline"; null or unknown means no limit). Lets tests run every path.
const CpuKernelTable& SelectCpuKernels(const char* ceiling);

namespace baseline { const CpuKernelTable& Kernels(); }
#if defined(__x86_64__) && defined(__GNUC__)
namespace avx2 { const CpuKernelTable& Kernels(); }
namespace avx512 { const CpuKernelTable& Kernels(); }
#endif

}  // namespace model_ema
