// Loops for x86-64 CPUs with AVX2, FMA and F16C (Haswell, Zen 1 and later). Only called after the
// run-time check in cpu_dispatch.cc; the rest of the addon stays at the baseline.
#if defined(__x86_64__) && defined(__GNUC__)
#include <cstddef>
#include <cstdint>
#include <cstring>
#pragma GCC target("avx2,fma,f16c")
#define MODEL_EMA_ISA avx2
#define MODEL_EMA_ISA_NAME "avx2"
#define MODEL_EMA_ISA_LEVEL 1  // 256-bit hand-written loops (cpu_vector_loops.h)
#include "cpu_loops.inl"
#endif
