#include "gpu_bandwidth.h"

#include <algorithm>

#include "../../native/kernels/cuda/cuda_resources.h"
#include "../../native/kernels/cuda/multi_tensor_kernels.h"

namespace model_ema {

std::vector<double> TimeOnStream(cudaStream_t stream, int reps, const std::function<void()>& pass) {
  cudaEvent_t a, b;  // with timing (the Event owner of cuda_resources.h makes ordering-only ones)
  CheckCuda(cudaEventCreate(&a), "cudaEventCreate");
  CheckCuda(cudaEventCreate(&b), "cudaEventCreate");
  std::vector<double> ms;
  try {
    for (int r = -2; r < reps; ++r) {
      CheckCuda(cudaEventRecord(a, stream), "cudaEventRecord");
      pass();
      CheckCuda(cudaEventRecord(b, stream), "cudaEventRecord");
      CheckCuda(cudaEventSynchronize(b), "cudaEventSynchronize");
      float elapsed = 0;
      CheckCuda(cudaEventElapsedTime(&elapsed, a, b), "cudaEventElapsedTime");
      if (r >= 0) ms.push_back(elapsed);
    }
  } catch (...) {
    cudaEventDestroy(a);
    cudaEventDestroy(b);
    throw;
  }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  return ms;
}

GpuBaselines MeasureGpuBaselines(size_t n, int reps, size_t tensors, int device) {
  DeviceGuard guard(device);
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
  GpuBaselines result;
  result.device_name = properties.name;
  result.elements = n;
  result.tensors = spans.size();
  result.reps = reps;
  result.d2d_copy = {2 * bytes, TimeOnStream(stream.get(), reps, [&] {
    CheckCuda(cudaMemcpyAsync(copy.get(), shadow.get(), bytes, cudaMemcpyDeviceToDevice, stream.get()), "cudaMemcpyAsync D2D");
  })};
  result.fused_update = {3 * bytes, TimeOnStream(stream.get(), reps, [&] {
    LaunchUpdate(stream.get(), UpdateDescription{0.999}, DType::kFloat32, ParamType::kFloat32, spans, nullptr);
  })};
  result.pinned_h2d = {bytes, TimeOnStream(stream.get(), reps, [&] {
    CheckCuda(cudaMemcpyAsync(param.get(), host.get(), bytes, cudaMemcpyHostToDevice, stream.get()), "cudaMemcpyAsync H2D");
  })};
  return result;
}

double MedianOf(std::vector<double> values) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const size_t mid = values.size() / 2;
  return values.size() % 2 ? values[mid] : (values[mid - 1] + values[mid]) / 2;
}

}  // namespace model_ema
