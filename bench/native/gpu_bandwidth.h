// The GPU ceilings model-ema's CUDA path is measured against, timed with CUDA events on one device.
// Shared by gpu_baselines (the numbers bench/gpu.js reads) and scripts/gpu_check (the ratios it
// reports), so both measure the ceilings the same way. Built only with CUDA (not shipped).
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <functional>
#include <string>
#include <vector>

namespace model_ema {

// One timed operation: the bytes one pass moves (as the ratio counts them) and each pass's time.
struct TimedPasses {
  size_t bytes = 0;
  std::vector<double> ms;
};

struct GpuBaselines {
  std::string device_name;
  size_t elements = 0;  // float32 elements
  size_t tensors = 0;   // spans the fused update covers
  int reps = 0;
  // cudaMemcpyAsync device to device of the shadows: bytes read plus bytes written.
  TimedPasses d2d_copy;
  // LaunchUpdate over device-resident float32 shadows and parameters: shadows read and written,
  // parameters read (12 bytes per element).
  TimedPasses fused_update;
  // cudaMemcpyAsync of the parameters' bytes from pinned host memory.
  TimedPasses pinned_h2d;
};

// `pass` queued on `stream` reps times (after two untimed warm-up passes), each between two
// timing events: milliseconds per pass.
std::vector<double> TimeOnStream(cudaStream_t stream, int reps, const std::function<void()>& pass);

// The three ceilings for `elements` float32 elements split into about `tensors` equal tensors.
// Throws CudaError (cuda_resources.h) when a CUDA call fails.
GpuBaselines MeasureGpuBaselines(size_t elements, int reps, size_t tensors, int device);

double MedianOf(std::vector<double> values);
// Bytes per millisecond as GB/s (1e9 bytes per second).
inline double GbPerS(double bytes, double ms) { return bytes / (ms * 1e6); }

}  // namespace model_ema
