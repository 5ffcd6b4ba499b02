// What the CUDA runtime says about this machine. Nothing here runs when the addon loads: the
// static runtime initialises itself (and looks for the driver) on the first call, so the binary
// loads and works on the CPU on machines without a driver.
#include <string>

#include "cuda_resources.h"
#include "device_arena.h"

namespace model_ema {

namespace {

// Why cudaGetDeviceCount failed, in words a user can act on, plus CUDA's own error string.
std::string DescribeCountFailure(cudaError_t error) {
  std::string reason = DescribeCudaError(error);
  if (error == cudaErrorInsufficientDriver) {
    int driver = 0, runtime = 0;
    (void)cudaDriverGetVersion(&driver);
    (void)cudaRuntimeGetVersion(&runtime);
    auto version = [](int v) { return std::to_string(v / 1000) + "." + std::to_string(v % 1000 / 10); };
    reason += driver == 0 ? "; no NVIDIA driver is installed"
                          : "; the installed driver supports CUDA " + version(driver) + ", this build needs " + version(runtime);
  }
  (void)cudaGetLastError();  // leave no stale error for the next check on this thread
  return reason;
}

// The device count, or the reason there is none.
int CountDevices(std::string* reason) {
  int count = 0;
  cudaError_t error = cudaGetDeviceCount(&count);
  if (error != cudaSuccess) {
    *reason = DescribeCountFailure(error);
    return 0;
  }
  if (count == 0) *reason = "the CUDA driver reports no CUDA-capable device";
  return count;
}

}  // namespace

CudaStatus QueryCuda() {
  CudaStatus status;
  status.compiled = true;
  int count = CountDevices(&status.reason);
  for (int i = 0; i < count; ++i) {
    cudaDeviceProp properties;
    cudaError_t error = cudaGetDeviceProperties(&properties, i);
    if (error != cudaSuccess) {
      status.reason = "cudaGetDeviceProperties(" + std::to_string(i) + ") failed: " + DescribeCudaError(error);
      (void)cudaGetLastError();
      status.devices.clear();
      return status;
    }
    status.devices.push_back({i, properties.name, properties.totalGlobalMem});
  }
  status.available = count > 0;
  return status;
}

void CheckDeviceUsable(int device) {
  std::string reason;
  int count = CountDevices(&reason);
  if (count == 0) throw DeviceUnavailable(device, reason);
  if (device < 0 || device >= count) {
    throw DeviceUnavailable(device, "this machine has " + std::to_string(count) + " CUDA device" +
                                        (count == 1 ? "" : "s") + " (indices 0 to " + std::to_string(count - 1) + ")");
  }
}

DeviceMemoryInfo QueryDeviceMemory(int device) {
  CheckDeviceUsable(device);
  DeviceGuard guard(device);
  DeviceMemoryInfo info{0, 0};
  CheckCuda(cudaMemGetInfo(&info.free, &info.total), "cudaMemGetInfo (CUDA device " + std::to_string(device) + ")");
  return info;
}

}  // namespace model_ema
