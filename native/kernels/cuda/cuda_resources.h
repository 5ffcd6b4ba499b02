// CUDA error checking and owners of CUDA resources, for the code that calls the CUDA runtime.
//
// Every CUDA call goes through CheckCuda, which turns a failure into a CudaError whose message
// names the operation and gives the CUDA error string, name and code. Owners free their resource
// with their own device current, and never throw from a destructor (a failure there, such as the
// runtime already shutting down at process exit, has nobody left to report to).
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <new>
#include <stdexcept>
#include <string>
#include <utility>

namespace model_ema {

// "<CUDA's error string> (<error name> = <code>)"
inline std::string DescribeCudaError(cudaError_t error) {
  return std::string(cudaGetErrorString(error)) + " (" + cudaGetErrorName(error) + " = " +
         std::to_string(static_cast<int>(error)) + ")";
}

class CudaError : public std::runtime_error {
 public:
  CudaError(const std::string& operation, cudaError_t error)
      : std::runtime_error("CUDA error in " + operation + ": " + DescribeCudaError(error)), error_(error) {}
  cudaError_t error() const { return error_; }

 private:
  cudaError_t error_;
};

inline void CheckCuda(cudaError_t error, const char* operation) {
  if (error != cudaSuccess) throw CudaError(operation, error);
}
inline void CheckCuda(cudaError_t error, const std::string& operation) {
  if (error != cudaSuccess) throw CudaError(operation, error);
}

// Makes `device` current for this thread for the guard's lifetime (CUDA's current device is per
// host thread, and async updates run on libuv's threads).
class DeviceGuard {
 public:
  explicit DeviceGuard(int device) : device_(device) {
    CheckCuda(cudaGetDevice(&previous_), "cudaGetDevice");
    if (previous_ != device_) CheckCuda(cudaSetDevice(device_), "cudaSetDevice(" + std::to_string(device_) + ")");
  }
  // For destructors: best effort, never throws.
  DeviceGuard(int device, std::nothrow_t) : device_(device) {
    if (cudaGetDevice(&previous_) != cudaSuccess || (previous_ != device_ && cudaSetDevice(device_) != cudaSuccess)) {
      previous_ = device_;
      (void)cudaGetLastError();
    }
  }
  ~DeviceGuard() {
    if (previous_ != device_) (void)cudaSetDevice(previous_);
  }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int device_;
  int previous_ = 0;
};

// A cudaMalloc'd block on one device; `what` names it in errors.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  DeviceBuffer(int device, size_t bytes, const std::string& what) : device_(device), bytes_(bytes) {
    if (bytes == 0) return;
    DeviceGuard guard(device);
    CheckCuda(cudaMalloc(&data_, bytes),
              "cudaMalloc (" + what + ": " + std::to_string(bytes) + " bytes on CUDA device " + std::to_string(device) + ")");
  }
  ~DeviceBuffer() { Reset(); }
  DeviceBuffer(DeviceBuffer&& other) noexcept { *this = std::move(other); }
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept {
    if (this != &other) {
      Reset();
      std::swap(data_, other.data_);
      std::swap(bytes_, other.bytes_);
      device_ = other.device_;
    }
    return *this;
  }
  void* get() const { return data_; }
  size_t bytes() const { return bytes_; }

 private:
  void Reset() {
    if (data_ != nullptr) {
      DeviceGuard guard(device_, std::nothrow);
      (void)cudaFree(data_);
      data_ = nullptr;
    }
    bytes_ = 0;
  }
  int device_ = 0;
  size_t bytes_ = 0;
  void* data_ = nullptr;
};

// Page-locked host memory: the only host memory the copy engines read and write asynchronously.
class PinnedBuffer {
 public:
  PinnedBuffer() = default;
  PinnedBuffer(int device, size_t bytes) : bytes_(bytes) {
    if (bytes == 0) return;
    DeviceGuard guard(device);
    CheckCuda(cudaHostAlloc(&data_, bytes, cudaHostAllocPortable),
              "cudaHostAlloc (pinned staging buffer: " + std::to_string(bytes) + " bytes)");
  }
  ~PinnedBuffer() { Reset(); }
  PinnedBuffer(PinnedBuffer&& other) noexcept { *this = std::move(other); }
  PinnedBuffer& operator=(PinnedBuffer&& other) noexcept {
    if (this != &other) {
      Reset();
      std::swap(data_, other.data_);
      std::swap(bytes_, other.bytes_);
    }
    return *this;
  }
  void* get() const { return data_; }
  size_t bytes() const { return bytes_; }

 private:
  void Reset() {
    if (data_ != nullptr) (void)cudaFreeHost(data_);
    data_ = nullptr;
    bytes_ = 0;
  }
  size_t bytes_ = 0;
  void* data_ = nullptr;
};

// A stream that does not synchronise with the legacy default stream (other code's work on it
// neither waits for ours nor delays it).
class Stream {
 public:
  explicit Stream(int device) : device_(device) {
    DeviceGuard guard(device);
    CheckCuda(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreateWithFlags");
  }
  ~Stream() {
    DeviceGuard guard(device_, std::nothrow);
    (void)cudaStreamDestroy(stream_);
  }
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  cudaStream_t get() const { return stream_; }

 private:
  int device_;
  cudaStream_t stream_ = nullptr;
};

// An event for ordering only (timing off: cheaper to record and to wait on).
class Event {
 public:
  explicit Event(int device) : device_(device) {
    DeviceGuard guard(device);
    CheckCuda(cudaEventCreateWithFlags(&event_, cudaEventDisableTiming), "cudaEventCreateWithFlags");
  }
  ~Event() {
    DeviceGuard guard(device_, std::nothrow);
    (void)cudaEventDestroy(event_);
  }
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  cudaEvent_t get() const { return event_; }

 private:
  int device_;
  cudaEvent_t event_ = nullptr;
};

}  // namespace model_ema

namespace model_ema {

// Throws DeviceUnavailable (device_arena.h) unless the driver answers and `device` is one of its
// devices. Defined in cuda_status.cc.
void CheckDeviceUsable(int device);

}  // namespace model_ema
