// Loops for any CPU of the target architecture: SSE2 on x86-64, NEON on arm64.
#define MODEL_EMA_ISA baseline
#define MODEL_EMA_ISA_NAME "baseline"
#define MODEL_EMA_ISA_LEVEL 0  // the functors' loops only
#include "cpu_loops.inl"
