// The two ratios bench/gpu.js reports, measured without Node: the fused update against a device
// to device copy, and an update fed from host parameters against a pinned host-to-device copy.
#pragma once

#include <cstddef>
#include <string>

#include "../../native/kernels/arena.h"

namespace model_ema {

struct BandwidthOptions {
  int device = 0;
  size_t elements = size_t{64} << 20;  // bench/gpu.js's default: a 64M-parameter model...
  size_t tensors = 161;                // ...in ResNet-50's number of tensors
  int reps = 20;
};

struct BandwidthRatios {
  double fused_vs_copy = 0;     // goal >= kFusedVsCopyGoal
  double upload_vs_pinned = 0;  // goal >= kUploadVsPinnedGoal
};
constexpr double kFusedVsCopyGoal = 0.85;
constexpr double kUploadVsPinnedGoal = 0.8;

// Prints the table; throws on a CUDA failure. Defined only in builds with CUDA.
BandwidthRatios MeasureBandwidth(const CpuContext& cpu, const BandwidthOptions& options);

}  // namespace model_ema
