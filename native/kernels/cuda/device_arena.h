// Arenas in CUDA device memory, and what the CUDA runtime reports about this machine.
//
// Plain C++ (no CUDA headers): the rest of the addon includes it whether or not the build has
// CUDA. A build with nvcc implements it in device_arena.cc and cuda_status.cc (host code over the
// CUDA runtime; the kernels are in multi_tensor_kernels.cu); a build without, in cuda_absent.cc,
// where every device request throws DeviceUnavailable with the reason.
#pragma once

#include <cstddef>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "../arena.h"

namespace model_ema {

struct CudaDeviceInfo {
  int index;
  std::string name;
  size_t total_memory;  // bytes
};

// What backends() reports for CUDA. Calls into the CUDA runtime (lazily: nothing runs at load).
struct CudaStatus {
  bool compiled = false;   // this binary has CUDA kernels
  bool available = false;  // a driver and at least one device answered
  std::string reason;      // why not available: the CUDA error string, name and code
  std::vector<CudaDeviceInfo> devices;
};
CudaStatus QueryCuda();

// A device that cannot be used: no CUDA in this build, no driver, no device, or a bad index.
class DeviceUnavailable : public std::runtime_error {
 public:
  DeviceUnavailable(int device, const std::string& reason)
      : std::runtime_error("CUDA device " + std::to_string(device) + " is not available: " + reason) {}
};

struct DeviceMemoryInfo {
  size_t free;   // bytes
  size_t total;  // bytes
};
// cudaMemGetInfo on `device` (creates its context if it has none yet). Throws DeviceUnavailable.
DeviceMemoryInfo QueryDeviceMemory(int device);

// The device implementation of Arena (device_arena.cc): the block in one CUDA device's memory;
// parameters stream through pinned staging buffers (staging_pipeline.h), the arithmetic runs in
// the multi-tensor kernels. Throws std::length_error when the sizes overflow, DeviceUnavailable
// when `device` cannot be used, and a CUDA error (std::runtime_error) when the memory cannot be had.
std::unique_ptr<Arena> NewDeviceArena(DType dtype, std::vector<size_t> sizes, int device);

}  // namespace model_ema
