// DeviceArena on CUDA: the arena block in device memory, a staging pipeline for parameters, and
// the multi-tensor kernels for the arithmetic.
#include "device_arena.h"

#include <functional>
#include <stdexcept>
#include <string>

#include "cuda_resources.h"
#include "multi_tensor_kernels.h"
#include "staging_pipeline.h"
#include "staging_plan.h"

namespace model_ema {

namespace {

using multi_tensor::Span;

class CudaDeviceArena final : public DeviceArena {
 public:
  CudaDeviceArena(ArenaLayout layout, int device)
      : DeviceArena(std::move(layout), device),
        block_(device, this->layout().byte_length(),
               std::string(DTypeName(this->layout().dtype())) + " arena"),
        pipeline_(device) {
    // Zero-filled like a host arena: the padding between tensors must read as zeros after a move.
    if (block_.bytes() == 0) return;
    DeviceGuard guard(device);
    CheckCuda(cudaMemsetAsync(block_.get(), 0, block_.bytes(), stream()), "cudaMemsetAsync (zero the arena)");
    pipeline_.Synchronize("zero the arena");
  }

  void Update(const CpuContext& host, const std::vector<ParamBuffer>& params, double decay) override {
    // The exact end points, as UpdateShadows (cpu_ops.cc) makes them.
    if (decay == 0.0) return LoadParams(host, params);
    if (decay == 1.0) return;
    const double one_minus_decay = 1.0 - decay;
    const DType shadow = layout().dtype();
    Stage(host, params, StagingDirection::kToArena, [&](cudaStream_t stream, ParamType type, const std::vector<Span>& spans) {
      LaunchUpdate(stream, shadow, type, spans, one_minus_decay);
    });
  }

  void LoadParams(const CpuContext& host, const std::vector<ParamBuffer>& params) override {
    const DType storage = layout().dtype();
    Stage(host, params, StagingDirection::kToArena, [&](cudaStream_t stream, ParamType type, const std::vector<Span>& spans) {
      LaunchConvert(stream, AsDType(type), storage, spans);
    });
  }

  void StoreParams(const CpuContext& host, const std::vector<ParamBuffer>& params) override {
    const DType storage = layout().dtype();
    Stage(host, params, StagingDirection::kFromArena, [&](cudaStream_t stream, ParamType type, const std::vector<Span>& spans) {
      LaunchConvert(stream, storage, AsDType(type), spans);
    });
  }

  void ConvertInto(DeviceArena& to) override {
    if (to.device() != device() || to.layout().sizes() != layout().sizes()) {
      throw std::invalid_argument("ConvertInto needs an arena of the same sizes on the same device");
    }
    DeviceGuard guard(device());
    std::vector<Span> spans;
    uint8_t* to_block = static_cast<uint8_t*>(const_cast<void*>(to.device_data()));
    for (size_t t = 0; t < layout().tensor_count(); ++t) {
      spans.push_back({to_block + to.layout().byte_offset(t), Tensor(t), layout().size(t)});
    }
    LaunchConvert(stream(), layout().dtype(), to.layout().dtype(), spans);
    pipeline_.Synchronize("convert");
  }

  size_t CountNonFinite() override {
    DeviceGuard guard(device());
    if (!counter_.get()) counter_ = DeviceBuffer(device(), sizeof(unsigned long long), "non-finite counter");
    unsigned long long* total = static_cast<unsigned long long*>(counter_.get());
    CheckCuda(cudaMemsetAsync(total, 0, sizeof *total, stream()), "cudaMemsetAsync (non-finite counter)");
    std::vector<Span> spans;
    for (size_t t = 0; t < layout().tensor_count(); ++t) spans.push_back({nullptr, Tensor(t), layout().size(t)});
    LaunchCountNonFinite(stream(), layout().dtype(), spans, total);
    unsigned long long count = 0;
    CheckCuda(cudaMemcpyAsync(&count, total, sizeof count, cudaMemcpyDeviceToHost, stream()),
              "cudaMemcpyAsync (non-finite count, device to host)");
    pipeline_.Synchronize("count non-finite");
    return static_cast<size_t>(count);
  }

  void ReadTensorBytes(size_t tensor, void* out) override {
    Copy(out, Tensor(tensor), TensorBytes(tensor), cudaMemcpyDeviceToHost, "read a tensor, device to host");
  }

  void WriteTensorBytes(size_t tensor, const void* bytes) override {
    Copy(Tensor(tensor), bytes, TensorBytes(tensor), cudaMemcpyHostToDevice, "write a tensor, host to device");
  }

  void CopyFromHost(const Arena& from) override {
    Copy(block_.get(), from.data(), block_.bytes(), cudaMemcpyHostToDevice, "copy an arena, host to device");
  }

  void CopyToHost(Arena& to) override {
    Copy(to.data(), block_.get(), block_.bytes(), cudaMemcpyDeviceToHost, "copy an arena, device to host");
  }

  void CopyFromDevice(const DeviceArena& from) override {
    if (block_.bytes() == 0) return;
    if (from.device() == device()) {
      Copy(block_.get(), from.device_data(), block_.bytes(), cudaMemcpyDeviceToDevice, "copy an arena, device to device");
      return;
    }
    // Works with or without peer access between the two devices (through the host if need be).
    DeviceGuard guard(device());
    CheckCuda(cudaMemcpyPeerAsync(block_.get(), device(), from.device_data(), from.device(), block_.bytes(), stream()),
              "cudaMemcpyPeerAsync (copy an arena from CUDA device " + std::to_string(from.device()) + " to " +
                  std::to_string(device()) + ")");
    pipeline_.Synchronize("copy an arena between devices");
  }

  const void* device_data() const override { return block_.get(); }

 private:
  using SpanKernels = std::function<void(cudaStream_t, ParamType, const std::vector<Span>&)>;

  cudaStream_t stream() const { return pipeline_.stream(0); }
  void* Tensor(size_t t) const { return static_cast<uint8_t*>(block_.get()) + layout().byte_offset(t); }
  size_t TensorBytes(size_t t) const { return layout().size(t) * DTypeSize(layout().dtype()); }

  // A synchronous copy on the arena's stream (never the legacy default stream).
  void Copy(void* to, const void* from, size_t bytes, cudaMemcpyKind kind, const char* what) {
    if (bytes == 0) return;
    DeviceGuard guard(device());
    CheckCuda(cudaMemcpyAsync(to, from, bytes, kind, stream()), std::string("cudaMemcpyAsync (") + what + ")");
    pipeline_.Synchronize(what);
  }

  // Runs `kernels` over every staged chunk, once per parameter type present in the chunk.
  void Stage(const CpuContext& host, const std::vector<ParamBuffer>& params, StagingDirection direction,
             const SpanKernels& kernels) {
    const size_t capacity = ChooseStagingBytes(layout(), params);
    if (capacity == 0) return;
    DeviceGuard guard(device());
    pipeline_.Reserve(capacity);
    const StagingPlan plan = PlanStaging(layout(), params, capacity);
    auto chunk_kernels = [&](cudaStream_t stream, const StagedChunk& chunk, void* staging) {
      for (ParamType type : {ParamType::kFloat32, ParamType::kFloat64}) {
        std::vector<Span> spans = ChunkSpans(plan, chunk, layout(), block_.get(), staging, params, type, direction);
        if (!spans.empty()) kernels(stream, type, spans);
      }
    };
    if (direction == StagingDirection::kToArena) {
      pipeline_.Upload(host, params, plan, chunk_kernels);
    } else {
      pipeline_.Download(host, params, plan, chunk_kernels);
    }
  }

  DeviceBuffer block_;
  StagingPipeline pipeline_;
  DeviceBuffer counter_;
};

}  // namespace

std::unique_ptr<DeviceArena> NewDeviceArena(DType dtype, std::vector<size_t> sizes, int device) {
  ArenaLayout layout(dtype, std::move(sizes));
  CheckDeviceUsable(device);
  return std::make_unique<CudaDeviceArena>(std::move(layout), device);
}

}  // namespace model_ema
