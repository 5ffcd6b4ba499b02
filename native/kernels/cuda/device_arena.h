// Arenas in CUDA device memory, and what the CUDA runtime reports about this machine.
//
// Plain C++ (no CUDA headers): the addon includes it whether or not the build has CUDA. A build
// with nvcc implements it in device_arena.cc and cuda_status.cc (host code over the CUDA runtime;
// the kernels are in multi_tensor_kernels.cu); a build without, in cuda_absent.cc, where every
// device request throws DeviceUnavailable with the reason.
#pragma once

#include <cstddef>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "../arena.h"
#include "../cpu_ops.h"

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

// One arena's padded block (the layout of ArenaLayout, zero-filled at creation) in the memory of
// one CUDA device. Parameters stay in host memory: each method that takes them streams them
// through pinned staging buffers. Every method returns only once its device work has finished,
// and reports any CUDA failure as an exception naming the operation and the CUDA error.
// Not thread-safe: the addon serialises calls per arena (its busy flag).
class DeviceArena {
 public:
  virtual ~DeviceArena() = default;
  DeviceArena(const DeviceArena&) = delete;
  DeviceArena& operator=(const DeviceArena&) = delete;

  const ArenaLayout& layout() const { return layout_; }
  int device() const { return device_; }

  // The same operations as cpu_ops.h, with the same per-element functors. `host` supplies the
  // threads that copy parameters into and out of the pinned buffers.
  virtual void Update(const CpuContext& host, const std::vector<ParamBuffer>& params, double decay) = 0;
  virtual void LoadParams(const CpuContext& host, const std::vector<ParamBuffer>& params) = 0;
  virtual void StoreParams(const CpuContext& host, const std::vector<ParamBuffer>& params) = 0;
  // Converts this arena into `to`: same sizes, same device, any dtype.
  virtual void ConvertInto(DeviceArena& to) = 0;
  virtual size_t CountNonFinite() = 0;

  // One tensor's raw storage bytes (size x dtype size) from or to host memory.
  virtual void ReadTensorBytes(size_t tensor, void* out) = 0;
  virtual void WriteTensorBytes(size_t tensor, const void* bytes) = 0;
  // Whole padded blocks of the same layout and dtype: host <-> device, or from any device.
  virtual void CopyFromHost(const Arena& from) = 0;
  virtual void CopyToHost(Arena& to) = 0;
  virtual void CopyFromDevice(const DeviceArena& from) = 0;
  virtual const void* device_data() const = 0;

 protected:
  DeviceArena(ArenaLayout layout, int device) : layout_(std::move(layout)), device_(device) {}

 private:
  ArenaLayout layout_;
  int device_;
};

// Throws std::length_error when the sizes overflow, DeviceUnavailable when `device` cannot be
// used, and a CUDA error (std::runtime_error) when the memory cannot be had.
std::unique_ptr<DeviceArena> NewDeviceArena(DType dtype, std::vector<size_t> sizes, int device);

}  // namespace model_ema
