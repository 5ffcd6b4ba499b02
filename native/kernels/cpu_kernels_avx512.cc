// Loops for x86-64 CPUs with AVX-512 F/BW/VL/DQ (Skylake-SP, Ice Lake, Zen 4 and later), using
// full 512-bit vectors (GCC otherwise prefers 256-bit ones for some tunings). Only called after the
// run-time check in cpu_dispatch.cc.
#if defined(__x86_64__) && defined(__GNUC__)
#include <cstddef>
#include <cstdint>
#include <cstring>
#pragma GCC target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512dq,prefer-vector-width=512")
#define MODEL_EMA_ISA avx512
#define MODEL_EMA_ISA_NAME "avx512"
#define MODEL_EMA_ISA_LEVEL 2  // 512-bit hand-written loops
#include "cpu_loops.inl"
#endif
