#include "bandwidth_check.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <stdexcept>
#include <vector>

#include "../../bench/native/gpu_bandwidth.h"

namespace model_ema {

namespace {

// Arena::Update from host float32 parameters in pageable memory (as a typed array's), what the
// EMA runs. Timed by the host clock around each call: Update returns only once its last kernel
// has finished, and its work spans two streams and the CPU threads packing the staging buffers,
// so no pair of events on one stream would cover it. Milliseconds per update.
std::vector<double> TimeUploadFedUpdate(const CpuContext& cpu, const BandwidthOptions& o, size_t* param_bytes) {
  const size_t per = (o.elements + o.tensors - 1) / o.tensors;
  std::vector<size_t> sizes;
  for (size_t first = 0; first < o.elements; first += per) sizes.push_back(std::min(per, o.elements - first));
  std::vector<std::vector<float>> storage;
  ParamList params;
  for (size_t t = 0; t < sizes.size(); ++t) {
    storage.emplace_back(sizes[t], 0.25f + static_cast<float>(t) * 1e-3f);
    params.push_back({storage.back().data(), ParamType::kFloat32});
  }
  std::unique_ptr<Arena> arena = NewArena(DType::kFloat32, sizes, o.device);
  arena->CopyFromParams(cpu, params);  // also allocates the pinned staging buffers: not timed
  std::fill(storage[0].begin(), storage[0].end(), 1.25f);  // so that tensor 0's shadows move
  const UpdateDescription u{0.999};
  std::vector<double> ms;
  for (int r = -2; r < o.reps; ++r) {
    const auto start = std::chrono::steady_clock::now();
    arena->Update(cpu, params, u);
    const auto end = std::chrono::steady_clock::now();
    if (r >= 0) ms.push_back(std::chrono::duration<double, std::milli>(end - start).count());
  }
  // A pass that did nothing would look fast: the shadows must have moved towards the parameters.
  std::vector<float> shadows(sizes[0]);
  arena->ReadTensor(cpu, 0, {shadows.data(), ParamType::kFloat32});
  const float first = shadows[0];
  if (!(first > 0.25f && first < 1.25f)) throw std::runtime_error("upload-fed update: unexpected shadow value " + std::to_string(first));
  *param_bytes = o.elements * sizeof(float);
  return ms;
}

void Row(const char* label, double value, const char* unit) {
  std::printf("  %-56s %9.3f %s\n", label, value, unit);
}

}  // namespace

BandwidthRatios MeasureBandwidth(const CpuContext& cpu, const BandwidthOptions& o) {
  const GpuBaselines base = MeasureGpuBaselines(o.elements, o.reps, o.tensors, o.device);
  size_t param_bytes = 0;
  const std::vector<double> upload_ms = TimeUploadFedUpdate(cpu, o, &param_bytes);
  const double copy = GbPerS(base.d2d_copy.bytes, MedianOf(base.d2d_copy.ms));
  const double fused = GbPerS(base.fused_update.bytes, MedianOf(base.fused_update.ms));
  const double pinned = GbPerS(base.pinned_h2d.bytes, MedianOf(base.pinned_h2d.ms));
  const double upload = GbPerS(param_bytes, MedianOf(upload_ms));
  BandwidthRatios ratios{fused / copy, upload / pinned};
  std::printf("bandwidth on %s: %zu float32 elements in %zu tensors, %d reps (medians; %u CPU threads)\n",
              base.device_name.c_str(), base.elements, base.tensors, base.reps, cpu.max_threads);
  Row("device-to-device copy (bytes read + written)", copy, "GB/s");
  Row("fused update, device-resident (bytes read + written)", fused, "GB/s");
  Row("  ratio fused / copy (goal >= 0.85)", ratios.fused_vs_copy, "x");
  Row("pinned host-to-device copy", pinned, "GB/s");
  Row("Arena::Update from host float32 (parameter bytes)", upload, "GB/s");
  Row("  ratio upload-fed / pinned (goal >= 0.8)", ratios.upload_vs_pinned, "x");
  return ratios;
}

}  // namespace model_ema
