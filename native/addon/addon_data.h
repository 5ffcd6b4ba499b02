// State of one instance of the addon (one per main thread or worker_thread), kept as Node-API
// instance data rather than in globals so that workers never share or race on it.
#pragma once

#include <napi.h>

#include <memory>

#include "../kernels/cpu_kernels.h"
#include "../kernels/thread_pool.h"

namespace model_ema {

struct AddonData {
  const CpuKernelTable* kernels = nullptr;
  // Shared with in-flight async work, which may outlive a worker_thread's teardown by a moment.
  std::shared_ptr<ThreadPool> pool;
  size_t parallel_threshold = 0;
  Napi::FunctionReference arena_constructor;
};

}  // namespace model_ema
