// Whole-arena operations: every tensor in one pass, split over the thread pool when the arena is
// large enough for that to pay. These are the only entry points the addon calls.
#pragma once

#include <cstddef>
#include <vector>

#include "arena.h"
#include "cpu_kernels.h"
#include "thread_pool.h"

namespace model_ema {

// A parameter buffer as the addon sees it: a typed array's data and element type. Its length has
// been checked against the arena's tensor size before any of these functions run.
struct ParamBuffer {
  void* data;
  ParamType type;
};

// How one call may use the CPU.
struct CpuContext {
  const CpuKernelTable* kernels;
  ThreadPool* pool;
  unsigned max_threads;         // 1 keeps everything on the calling thread
  size_t parallel_threshold;    // arenas with fewer elements stay on the calling thread
};

void UpdateShadows(const CpuContext& cpu, Arena& shadows, const std::vector<ParamBuffer>& params,
                   double decay);
void LoadParams(const CpuContext& cpu, Arena& arena, const std::vector<ParamBuffer>& params);
void StoreParams(const CpuContext& cpu, const Arena& arena, const std::vector<ParamBuffer>& params);
// Converts `from` into `to`, which must have the same sizes (any dtypes).
void ConvertArena(const CpuContext& cpu, const Arena& from, Arena& to);
size_t CountNonFinite(const CpuContext& cpu, const Arena& arena);

}  // namespace model_ema
