// Qualifiers that let one inline function serve both the CPU loops and CUDA kernels.
//
// always_inline matters on the CPU side too: the per-ISA loop files include these functions under
// different target options, and inlining keeps an AVX-512 copy from being shared with the baseline
// loops through the linker's choice of one out-of-line definition.
#pragma once

#if defined(__CUDACC__)
#define MODEL_EMA_HD_INLINE __host__ __device__ __forceinline__
#elif defined(__GNUC__)
#define MODEL_EMA_HD_INLINE inline __attribute__((always_inline))
#else
#define MODEL_EMA_HD_INLINE inline
#endif
