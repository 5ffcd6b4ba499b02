// Loops for x86-64 CPUs with AVX-512 as in cpu_kernels_avx512.cc plus AVX512_BF16 (Cooper Lake,
// Sapphire Rapids, Zen 4 and later): float32 to bfloat16 in one instruction (vcvtneps2bf16), with
// the lanes where it differs from the reference redone (cpu_simd_x86.h). Only called after the
// run-time check in cpu_dispatch.cc.
#if defined(__x86_64__) && defined(__GNUC__)
#include <cstddef>
#include <cstdint>
#include <cstring>
#pragma GCC target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,prefer-vector-width=512")
#define MODEL_EMA_ISA avx512bf16
#define MODEL_EMA_ISA_NAME "avx512bf16"
#define MODEL_EMA_ISA_LEVEL 3  // 512-bit hand-written loops, bfloat16 by instruction
#include "cpu_loops.inl"
#endif
