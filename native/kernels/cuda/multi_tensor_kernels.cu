// The CUDA kernels: thin __global__ wrappers around the block functions of multi_tensor.h. Which
// functor a launch runs is decided by WithUpdateOp / WithConvertOp (element_ops.h), as for the
// CPU loops; this file only adds the launch.
#include "multi_tensor_kernels.h"

#include <string>

#include "cuda_resources.h"
#include "multi_tensor.h"

namespace model_ema {

namespace {

using multi_tensor::ChunkTable;
using multi_tensor::kBlockThreads;

// __grid_constant__: the table stays in the kernel parameter space even though blocks index it
// with run-time values (without it, each thread could get a private copy in local memory).
// Sums a per-thread count over the warp (every thread of the block gets here: blockDim.x is a
// multiple of 32), then one atomic per warp that found anything: no atomics when nothing was found.
__device__ void AddWarpCount(uint32_t count, unsigned long long* total) {
  for (int offset = 16; offset > 0; offset /= 2) count += __shfl_down_sync(0xffffffffu, count, offset);
  if ((threadIdx.x & 31u) == 0 && count != 0) atomicAdd(total, static_cast<unsigned long long>(count));
}

// `skipped` receives the count of skipped elements when the functor counts them (else unused).
template <typename F>
__global__ void __launch_bounds__(kBlockThreads)
    TransformKernel(const __grid_constant__ ChunkTable table, const F op, unsigned long long* skipped) {
  uint32_t count = multi_tensor::TransformBlock(table, static_cast<int32_t>(blockIdx.x), threadIdx.x, blockDim.x, op);
  if constexpr (F::kCountsSkips) AddWarpCount(count, skipped);
}

template <typename S>
__global__ void __launch_bounds__(kBlockThreads)
    CountNonFiniteKernel(const __grid_constant__ ChunkTable table, unsigned long long* total) {
  AddWarpCount(multi_tensor::CountNonFiniteBlock<S>(table, static_cast<int32_t>(blockIdx.x), threadIdx.x, blockDim.x), total);
}

void CheckLaunch(const char* kernel, DType a, DType b) {
  CheckCuda(cudaGetLastError(), std::string("launching ") + kernel + "<" + DTypeName(a) + ", " + DTypeName(b) + ">");
}

// One launch per chunk table of `spans`, each running `op` over its blocks; `kernel`, `a` and `b`
// name the operation in errors.
template <typename F>
void LaunchTransform(cudaStream_t stream, const F& op, const std::vector<multi_tensor::Span>& spans, const char* kernel,
                     DType a, DType b, unsigned long long* skipped = nullptr) {
  using D = typename F::Dst;
  using S = typename F::Src;
  multi_tensor::ForEachChunkTable(spans, sizeof(D), sizeof(S), [&](const ChunkTable& table, int32_t blocks) {
    TransformKernel<F><<<blocks, kBlockThreads, 0, stream>>>(table, op, skipped);
    CheckLaunch(kernel, a, b);
  });
}

}  // namespace

void LaunchUpdate(cudaStream_t stream, UpdateDescription u, DType shadow, ParamType param,
                  const std::vector<multi_tensor::Span>& spans, unsigned long long* device_skipped) {
  WithUpdateOp(u, shadow, param, [&](const auto& op) {
    LaunchTransform(stream, op, spans, "UpdateKernel", shadow, AsDType(param), device_skipped);
  });
}

void LaunchConvert(cudaStream_t stream, DType from, DType to, const std::vector<multi_tensor::Span>& spans) {
  WithConvertOp(from, to, [&](const auto& op) { LaunchTransform(stream, op, spans, "ConvertKernel", from, to); });
}

void LaunchCountNonFinite(cudaStream_t stream, DType dtype, const std::vector<multi_tensor::Span>& spans,
                          unsigned long long* device_total) {
  VisitDType(dtype, [&](auto element) {
    using S = decltype(element);
    multi_tensor::ForEachChunkTable(spans, 0, sizeof(S), [&](const ChunkTable& table, int32_t blocks) {
      CountNonFiniteKernel<S><<<blocks, kBlockThreads, 0, stream>>>(table, device_total);
      CheckLaunch("CountNonFiniteKernel", dtype, dtype);
    });
  });
}

}  // namespace model_ema
