// The CUDA entry points of a build without nvcc (or configured with MODEL_EMA_DISABLE_CUDA=ON):
// the binary works on the CPU and says plainly why no device can be used.
#include "device_arena.h"

namespace model_ema {

namespace {
constexpr const char* kNotCompiled = "this build of model-ema has no CUDA kernels (it was built without nvcc, or with MODEL_EMA_DISABLE_CUDA=ON)";
}  // namespace

CudaStatus QueryCuda() {
  CudaStatus status;
  status.reason = kNotCompiled;
  return status;
}

DeviceMemoryInfo QueryDeviceMemory(int device) { throw DeviceUnavailable(device, kNotCompiled); }

std::unique_ptr<Arena> NewDeviceArena(DType dtype, std::vector<size_t> sizes, int device) {
  (void)ArenaLayout(dtype, std::move(sizes));  // the same length_error as a CUDA build first
  throw DeviceUnavailable(device, kNotCompiled);
}

}  // namespace model_ema
