#include <cstring>

#include "cpu_kernels.h"

namespace model_ema {

namespace {

int IsaRank(const char* name) {
  if (name == nullptr) return 3;
  if (std::strcmp(name, "baseline") == 0) return 0;
  if (std::strcmp(name, "avx2") == 0) return 1;
  if (std::strcmp(name, "avx512") == 0) return 2;
  return 3;  // "avx512bf16": no limit (the addon refuses unknown values before calling this)
}

}  // namespace

const CpuKernelTable& SelectCpuKernels(const char* ceiling) {
  int limit = IsaRank(ceiling);
#if defined(__x86_64__) && defined(__GNUC__)
  // libgcc's checks include the OS's XSAVE support for the wider registers, not just CPUID bits.
  __builtin_cpu_init();
  // F16C comes with every AVX2 CPU made; checked all the same, as the AVX2 and AVX-512 loops use it.
  const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
                      __builtin_cpu_supports("f16c");
  if (limit >= 3 && avx512 && __builtin_cpu_supports("avx512bf16")) return avx512bf16::Kernels();
  if (limit >= 2 && avx512) return avx512::Kernels();
  if (limit >= 1 && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c")) {
    return avx2::Kernels();
  }
#else
  (void)limit;
#endif
  return baseline::Kernels();
}

}  // namespace model_ema
