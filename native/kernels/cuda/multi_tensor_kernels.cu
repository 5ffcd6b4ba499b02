// The CUDA kernels: thin __global__ wrappers around the block functions of multi_tensor.h, and
// the dtype dispatch that picks one instantiation per launch.
#include "multi_tensor_kernels.h"

#include <string>
#include <type_traits>

#include "cuda_resources.h"
#include "multi_tensor.h"

namespace model_ema {

namespace {

using multi_tensor::ChunkTable;
using multi_tensor::kBlockThreads;

// __grid_constant__: the table stays in the kernel parameter space even though blocks index it
// with run-time values (without it, each thread could get a private copy in local memory).
template <typename S, typename P>
__global__ void __launch_bounds__(kBlockThreads)
    UpdateKernel(const __grid_constant__ ChunkTable table, const UpdateShadow<S, P> op) {
  multi_tensor::UpdateBlock<S, P>(table, static_cast<int32_t>(blockIdx.x), threadIdx.x, blockDim.x, op);
}

template <typename From, typename To>
__global__ void __launch_bounds__(kBlockThreads) ConvertKernel(const __grid_constant__ ChunkTable table) {
  multi_tensor::ConvertBlock<From, To>(table, static_cast<int32_t>(blockIdx.x), threadIdx.x, blockDim.x);
}

template <typename S>
__global__ void __launch_bounds__(kBlockThreads)
    CountNonFiniteKernel(const __grid_constant__ ChunkTable table, unsigned long long* total) {
  uint32_t count = multi_tensor::CountNonFiniteBlock<S>(table, static_cast<int32_t>(blockIdx.x), threadIdx.x, blockDim.x);
  // Sum over the warp (every thread of the block gets here: blockDim.x is a multiple of 32), then
  // one atomic per warp that found anything; finite arenas cost no atomics at all.
  for (int offset = 16; offset > 0; offset /= 2) count += __shfl_down_sync(0xffffffffu, count, offset);
  if ((threadIdx.x & 31u) == 0 && count != 0) atomicAdd(total, static_cast<unsigned long long>(count));
}

void CheckLaunch(const char* kernel, DType a, DType b) {
  CheckCuda(cudaGetLastError(),
            std::string("launching ") + kernel + "<" + DTypeName(a) + ", " + DTypeName(b) + ">");
}

// Calls f(T{}) with T the element type of `dtype`.
template <typename F>
void WithStorageType(DType dtype, const F& f) {
  switch (dtype) {
    case DType::kFloat32: return f(float{});
    case DType::kFloat64: return f(double{});
    case DType::kFloat16: return f(Half{});
    case DType::kBFloat16: return f(BFloat16{});
  }
}

}  // namespace

void LaunchUpdate(cudaStream_t stream, DType shadow, ParamType param, const std::vector<multi_tensor::Span>& spans,
                  double one_minus_decay) {
  WithStorageType(shadow, [&](auto s) {
    WithStorageType(AsDType(param), [&](auto p) {
      using S = decltype(s);
      using P = decltype(p);
      if constexpr (std::is_same_v<P, float> || std::is_same_v<P, double>) {
        const UpdateShadow<S, P> op{static_cast<ComputeOf<S>>(one_minus_decay)};
        multi_tensor::ForEachChunkTable(spans, sizeof(S), sizeof(P), [&](const ChunkTable& table, int32_t blocks) {
          UpdateKernel<S, P><<<blocks, kBlockThreads, 0, stream>>>(table, op);
          CheckLaunch("UpdateKernel", shadow, AsDType(param));
        });
      }
    });
  });
}

void LaunchConvert(cudaStream_t stream, DType from, DType to, const std::vector<multi_tensor::Span>& spans) {
  WithStorageType(from, [&](auto f) {
    WithStorageType(to, [&](auto t) {
      using From = decltype(f);
      using To = decltype(t);
      multi_tensor::ForEachChunkTable(spans, sizeof(To), sizeof(From), [&](const ChunkTable& table, int32_t blocks) {
        ConvertKernel<From, To><<<blocks, kBlockThreads, 0, stream>>>(table);
        CheckLaunch("ConvertKernel", from, to);
      });
    });
  });
}

void LaunchCountNonFinite(cudaStream_t stream, DType dtype, const std::vector<multi_tensor::Span>& spans,
                          unsigned long long* device_total) {
  WithStorageType(dtype, [&](auto s) {
    using S = decltype(s);
    multi_tensor::ForEachChunkTable(spans, 0, sizeof(S), [&](const ChunkTable& table, int32_t blocks) {
      CountNonFiniteKernel<S><<<blocks, kBlockThreads, 0, stream>>>(table, device_total);
      CheckLaunch("CountNonFiniteKernel", dtype, dtype);
    });
  });
}

}  // namespace model_ema
