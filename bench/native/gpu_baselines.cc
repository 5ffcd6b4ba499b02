// The GPU ceilings bench/gpu.js measures model-ema against, on one CUDA device:
//  - d2dCopy: cudaMemcpyAsync device to device of one float32 arena (the bandwidth a
//    device-resident pass can hope for), and fusedUpdate: the library's own update kernels
//    (LaunchUpdate, the same launches a device arena queues) over a device-resident float32 arena
//    and float32 parameters, split into `tensors` equal tensors.
//  - pinnedH2D: cudaMemcpyAsync of the parameters' bytes from pinned host memory: the most an
//    update fed from host parameters can stream.
// Built only with CUDA (not shipped). Usage: gpu_baselines <elements> <reps> [tensors] [device]
// Prints one JSON line; times are from CUDA events, per repetition, after two warm-up passes.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "../../native/kernels/cuda/cuda_resources.h"
#include "../../native/kernels/cuda/multi_tensor_kernels.h"

using namespace model_ema;

namespace {

std::vector<double> Time(cudaStream_t stream, int reps, const std::function<void()>& pass) {
  cudaEvent_t a, b;  // with timing (the Event owner of cuda_resources.h makes ordering-only ones)
  CheckCuda(cudaEventCreate(&a), "cudaEventCreate");
  CheckCuda(cudaEventCreate(&b), "cudaEventCreate");
  std::vector<double> ms;
  for (int r = -2; r < reps; ++r) {
    CheckCuda(cudaEventRecord(a, stream), "cudaEventRecord");
    pass();
    CheckCuda(cudaEventRecord(b, stream), "cudaEventRecord");
    CheckCuda(cudaEventSynchronize(b), "cudaEventSynchronize");
    float elapsed = 0;
    CheckCuda(cudaEventElapsedTime(&elapsed, a, b), "cudaEventElapsedTime");
    if (r >= 0) ms.push_back(elapsed);
  }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  return ms;
}

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
    CheckCuda(cudaSetDevice(device), "cudaSetDevice");
    cudaDeviceProp properties;
    CheckCuda(cudaGetDeviceProperties(&properties, device), "cudaGetDeviceProperties");
    const size_t bytes = n * sizeof(float);
    DeviceBuffer shadow(device, bytes, "shadows"), param(device, bytes, "parameters"), copy(device, bytes, "copy");
    PinnedBuffer host(device, bytes);
    Stream stream(device);
    CheckCuda(cudaMemsetAsync(shadow.get(), 0, bytes, stream.get()), "cudaMemsetAsync");
    CheckCuda(cudaMemsetAsync(param.get(), 0, bytes, stream.get()), "cudaMemsetAsync");
    for (size_t i = 0; i < n; ++i) static_cast<float*>(host.get())[i] = static_cast<float>(i % 1000) * 1e-3f;

    std::vector<multi_tensor::Span> spans;
    const size_t per_tensor = (n + tensors - 1) / tensors / 32 * 32 + 32;  // padded like an arena
    for (size_t first = 0; first < n; first += per_tensor) {
      size_t count = std::min(per_tensor, n - first);
      spans.push_back({static_cast<float*>(shadow.get()) + first, static_cast<float*>(param.get()) + first, count});
    }
    auto d2d = Time(stream.get(), reps, [&] {
      CheckCuda(cudaMemcpyAsync(copy.get(), shadow.get(), bytes, cudaMemcpyDeviceToDevice, stream.get()), "cudaMemcpyAsync D2D");
    });
    auto update = Time(stream.get(), reps, [&] {
      LaunchUpdate(stream.get(), UpdateDescription{0.999}, DType::kFloat32, ParamType::kFloat32, spans, nullptr);
    });
    auto h2d = Time(stream.get(), reps, [&] {
      CheckCuda(cudaMemcpyAsync(param.get(), host.get(), bytes, cudaMemcpyHostToDevice, stream.get()), "cudaMemcpyAsync H2D");
    });
    std::printf(
        "{\"device\":\"%s\",\"elements\":%zu,\"tensors\":%zu,\"reps\":%d,"
        "\"d2dCopy\":{\"trafficBytes\":%zu,\"ms\":%s},"
        "\"fusedUpdate\":{\"trafficBytes\":%zu,\"ms\":%s},"
        "\"pinnedH2D\":{\"bytes\":%zu,\"ms\":%s}}\n",
        properties.name, n, spans.size(), reps, 2 * bytes, Json(d2d).c_str(), 3 * bytes, Json(update).c_str(), bytes,
        Json(h2d).c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "gpu_baselines: %s\n", e.what());
    return 1;
  }
  return 0;
}
