// The GPU ceilings bench/gpu.js measures model-ema against, on one CUDA device (gpu_bandwidth.h
// says what each one is and how it is timed):
//  - d2dCopy: cudaMemcpyAsync device to device of one float32 arena (the bandwidth a
//    device-resident pass can hope for), and fusedUpdate: the library's own update kernels
//    (LaunchUpdate, the same launches a device arena queues) over a device-resident float32 arena
//    and float32 parameters, split into `tensors` equal tensors.
//  - pinnedH2D: cudaMemcpyAsync of the parameters' bytes from pinned host memory: the most an
//    update fed from host parameters can stream.
// Built only with CUDA (not shipped). Usage: gpu_baselines <elements> <reps> [tensors] [device]
// Prints one JSON line; times are from CUDA events, per repetition, after two warm-up passes.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "gpu_bandwidth.h"

using namespace model_ema;

namespace {

std::string Json(const std::vector<double>& ms) {
  std::string out = "[";
  for (size_t i = 0; i < ms.size(); ++i) out += (i ? "," : "") + std::to_string(ms[i]);
  return out + "]";
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s <elements> <reps> [tensors] [device]\n", argv[0]);
    return 2;
  }
  const size_t n = std::strtoull(argv[1], nullptr, 10);
  const int reps = std::max(1, std::atoi(argv[2]));
  const size_t tensors = argc > 3 ? std::max<size_t>(1, std::strtoull(argv[3], nullptr, 10)) : 1;
  const int device = argc > 4 ? std::atoi(argv[4]) : 0;
  try {
    const GpuBaselines b = MeasureGpuBaselines(n, reps, tensors, device);
    std::printf(
        "{\"device\":\"%s\",\"elements\":%zu,\"tensors\":%zu,\"reps\":%d,"
        "\"d2dCopy\":{\"trafficBytes\":%zu,\"ms\":%s},"
        "\"fusedUpdate\":{\"trafficBytes\":%zu,\"ms\":%s},"
        "\"pinnedH2D\":{\"bytes\":%zu,\"ms\":%s}}\n",
        b.device_name.c_str(), b.elements, b.tensors, b.reps, b.d2d_copy.bytes, Json(b.d2d_copy.ms).c_str(),
        b.fused_update.bytes, Json(b.fused_update.ms).c_str(), b.pinned_h2d.bytes, Json(b.pinned_h2d.ms).c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "gpu_baselines: %s\n", e.what());
    return 1;
  }
  return 0;
}
