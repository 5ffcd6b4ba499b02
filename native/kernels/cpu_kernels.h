// The CPU loops of every operation, compiled once per instruction set and picked at run time.
//
// Each entry handles one contiguous piece of one tensor; HostArena splits the multi-tensor work
// into such pieces and spreads them over threads. The dtypes are run-time arguments: each entry
// picks its loop (one per functor of element_ops.h) once per piece, never per element.
#pragma once

#include <cstddef>

#include "dtype.h"
#include "thread_pool.h"
#include "update_description.h"

namespace model_ema {

struct CpuKernelTable {
  const char* isa;  // "avx512bf16", "avx512", "avx2", "baseline" (which is NEON on arm64)
  // shadow[i] = UpdateShadow(shadow[i], param[i]) as `u` describes, i < n, for the elements
  // [first, first + n) of tensor `tensor` (their random bits depend on where they are). Returns
  // how many parameter elements 'skip-element' left out (0 for other policies).
  size_t (*update)(UpdateDescription u, DType shadow_dtype, ParamType param_type, void* shadow,
                   const void* param, size_t n, size_t tensor, size_t first);
  // to[i] = from[i] converted. Copies between parameters and an arena are conversions too: a
  // parameter's type is a DType (AsDType).
  void (*convert)(DType from_dtype, DType to_dtype, const void* from, void* to, size_t n);
  size_t (*count_non_finite)(DType dtype, const void* values, size_t n);
};

// The table for the best instruction set this CPU and OS support, no better than `ceiling`
// ("avx512bf16", "avx512", "avx2" or "baseline"; null or unknown means no limit). Lets tests run every path.
const CpuKernelTable& SelectCpuKernels(const char* ceiling);

namespace baseline { const CpuKernelTable& Kernels(); }
#if defined(__x86_64__) && defined(__GNUC__)
namespace avx2 { const CpuKernelTable& Kernels(); }
namespace avx512 { const CpuKernelTable& Kernels(); }
namespace avx512bf16 { const CpuKernelTable& Kernels(); }
#endif

// How one call may use the CPU: which loops, and how many threads of which pool.
struct CpuContext {
  const CpuKernelTable* kernels;
  ThreadPool* pool;
  unsigned max_threads;         // 1 keeps everything on the calling thread
  size_t parallel_threshold;    // arenas with fewer elements stay on the calling thread
};

}  // namespace model_ema
