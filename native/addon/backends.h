#pragma once

#include <napi.h>

namespace model_ema {

// backends(): what this build can compute on, and why a backend is unavailable.
Napi::Value Backends(const Napi::CallbackInfo& info);

// cudaMemoryInfo(device): free and total bytes of one CUDA device (creates its context).
Napi::Value CudaMemoryInfo(const Napi::CallbackInfo& info);

}  // namespace model_ema
