// The device implementation of Arena: the block in one CUDA device's memory, a staging pipeline
// for parameters, and the multi-tensor kernels for the arithmetic.
#include "device_arena.h"

#include <functional>
#include <memory>
#include <stdexcept>
#include <string>

#include "cuda_resources.h"
#include "multi_tensor_kernels.h"
#include "staging_pipeline.h"
#include "staging_plan.h"

namespace model_ema {

namespace {

using multi_tensor::Span;

class DeviceArena final : public Arena {
 public:
  DeviceArena(ArenaLayout layout, int device)
      : Arena(std::move(layout), device),
        block_(device, this->layout().byte_length(), std::string(DTypeName(this->layout().dtype())) + " arena"),
        pipeline_(device) {
    // Zero-filled like a host arena: the padding between tensors must read as zeros after a move.
    if (block_.bytes() == 0) return;
    DeviceGuard guard(device);
    CheckCuda(cudaMemsetAsync(block_.get(), 0, block_.bytes(), stream()), "cudaMemsetAsync (zero the arena)");
    pipeline_.Synchronize("zero the arena");
  }

  void CopyFromParams(const CpuContext& host, const ParamList& params) override {
    Stage(host, params, StagingDirection::kToArena, [&](cudaStream_t stream, ParamType type, const std::vector<Span>& spans) {
      LaunchConvert(stream, AsDType(type), dtype(), spans);
    });
  }

  void CopyToParams(const CpuContext& host, const ParamList& params) const override {
    Stage(host, params, StagingDirection::kFromArena, [&](cudaStream_t stream, ParamType type, const std::vector<Span>& spans) {
      LaunchConvert(stream, dtype(), AsDType(type), spans);
    });
  }

  void CopyFrom(const CpuContext&, const Arena& source) override {
    CheckCopySource(source);
    if (block_.bytes() == 0) return;
    if (source.dtype() != dtype()) {  // on this device (checked): convert tensor by tensor
      DeviceGuard guard(device());
      std::vector<Span> spans;
      const uint8_t* from = static_cast<const uint8_t*>(source.block());
      for (size_t t = 0; t < layout().tensor_count(); ++t) {
        spans.push_back({Tensor(t), from + source.layout().byte_offset(t), layout().size(t)});
      }
      LaunchConvert(stream(), source.dtype(), dtype(), spans);
      pipeline_.Synchronize("convert");
    } else if (source.device() < 0) {
      Copy(block_.get(), source.block(), block_.bytes(), cudaMemcpyHostToDevice, "copy an arena, host to device");
    } else if (source.device() == device()) {
      Copy(block_.get(), source.block(), block_.bytes(), cudaMemcpyDeviceToDevice, "copy an arena, device to device");
    } else {
      // Works with or without peer access between the two devices (through the host if need be).
      DeviceGuard guard(device());
      CheckCuda(cudaMemcpyPeerAsync(block_.get(), device(), source.block(), source.device(), block_.bytes(), stream()),
                "cudaMemcpyPeerAsync (copy an arena from CUDA device " + std::to_string(source.device()) + " to " +
                    std::to_string(device()) + ")");
      pipeline_.Synchronize("copy an arena between devices");
    }
  }

  size_t CountNonFinite(const CpuContext&) const override {
    DeviceGuard guard(device());
    unsigned long long* total = ZeroedCounter();
    std::vector<Span> spans;
    for (size_t t = 0; t < layout().tensor_count(); ++t) spans.push_back({nullptr, Tensor(t), layout().size(t)});
    LaunchCountNonFinite(stream(), dtype(), spans, total);
    return ReadCounter(total, "non-finite count");
  }

  void ReadTensor(const CpuContext& host, size_t t, ParamBuffer out) const override {
    if (AsDType(out.type) == dtype()) return ReadTensorBytes(t, out.data);  // already the output's type
    std::unique_ptr<uint8_t[]> raw(new uint8_t[TensorBytes(t)]);
    ReadTensorBytes(t, raw.get());
    host.kernels->convert(dtype(), AsDType(out.type), raw.get(), out.data, layout().size(t));
  }

  void ReadTensorRange(size_t t, size_t offset, size_t length, void* out) const override {
    Copy(out, static_cast<uint8_t*>(Tensor(t)) + offset, length, cudaMemcpyDeviceToHost, "read a tensor, device to host");
  }

  void WriteTensorRange(size_t t, size_t offset, size_t length, const void* bytes) override {
    Copy(static_cast<uint8_t*>(Tensor(t)) + offset, bytes, length, cudaMemcpyHostToDevice, "write a tensor, host to device");
  }

  void CopyBlockToHost(void* out) const override {
    Copy(out, block_.get(), block_.bytes(), cudaMemcpyDeviceToHost, "copy an arena, device to host");
  }

  const void* block() const override { return block_.get(); }

 protected:
  size_t UpdateShadows(const CpuContext& host, const ParamList& params, UpdateDescription u) override {
    if (ChooseStagingBytes(layout(), params) == 0) return 0;  // nothing to update
    DeviceGuard guard(device());
    // Every chunk's kernels run on the pipeline's streams; the counter is read after all of them.
    const bool counts = u.non_finite == NonFinitePolicy::kSkipElement;
    unsigned long long* skipped = counts ? ZeroedCounter() : nullptr;
    Stage(host, params, StagingDirection::kToArena, [&](cudaStream_t stream, ParamType type, const std::vector<Span>& spans) {
      LaunchUpdate(stream, u, dtype(), type, spans, skipped);
    });
    return counts ? ReadCounter(skipped, "skipped elements") : 0;
  }

  // EmaTracks: each chunk of the parameters is uploaded once, and every arena's kernels run over it
  // (on the chunk's stream, so the staging buffer is reused only after all of them).
  void UpdateShadowsTogether(const CpuContext& host, const ParamList& params, const std::vector<Arena*>& arenas,
                             const std::vector<UpdateDescription>& us, std::vector<size_t>& skipped) override {
    if (ChooseStagingBytes(layout(), params) == 0) return;
    DeviceGuard guard(device());
    std::vector<void*> blocks;
    std::vector<unsigned long long*> counters;
    for (size_t k = 0; k < arenas.size(); ++k) {
      const auto* arena = static_cast<const DeviceArena*>(arenas[k]);  // UpdateTogether checked: same device
      blocks.push_back(arena->block_.get());
      counters.push_back(us[k].non_finite == NonFinitePolicy::kSkipElement ? arena->ZeroedCounter() : nullptr);
    }
    StageBlocks(host, params, StagingDirection::kToArena, blocks,
                [&](cudaStream_t stream, ParamType type, size_t k, const std::vector<Span>& spans) {
                  LaunchUpdate(stream, us[k], dtype(), type, spans, counters[k]);
                });
    for (size_t k = 0; k < arenas.size(); ++k) {
      if (counters[k] != nullptr) skipped[k] += ReadCounter(counters[k], "skipped elements");
    }
  }

 private:
  using SpanKernels = std::function<void(cudaStream_t, ParamType, const std::vector<Span>&)>;

  cudaStream_t stream() const { return pipeline_.stream(0); }
  void* Tensor(size_t t) const { return static_cast<uint8_t*>(block_.get()) + layout().byte_offset(t); }
  size_t TensorBytes(size_t t) const { return layout().size(t) * DTypeSize(dtype()); }

  // The scratch counter, zeroed on the arena's stream (the caller holds a DeviceGuard).
  unsigned long long* ZeroedCounter() const {
    if (!counter_.get()) counter_ = DeviceBuffer(device(), sizeof(unsigned long long), "kernel counter");
    auto* counter = static_cast<unsigned long long*>(counter_.get());
    CheckCuda(cudaMemsetAsync(counter, 0, sizeof *counter, stream()), "cudaMemsetAsync (zero the kernel counter)");
    pipeline_.Synchronize("zero the kernel counter");  // before any stream of the pipeline adds to it
    return counter;
  }

  // The counter's value once every stream of the pipeline is done.
  size_t ReadCounter(unsigned long long* counter, const char* what) const {
    pipeline_.Synchronize(what);
    unsigned long long value = 0;
    CheckCuda(cudaMemcpyAsync(&value, counter, sizeof value, cudaMemcpyDeviceToHost, stream()),
              std::string("cudaMemcpyAsync (") + what + ", device to host)");
    pipeline_.Synchronize(what);
    return static_cast<size_t>(value);
  }

  // A synchronous copy on the arena's stream (never the legacy default stream).
  void Copy(void* to, const void* from, size_t bytes, cudaMemcpyKind kind, const char* what) const {
    if (bytes == 0) return;
    DeviceGuard guard(device());
    CheckCuda(cudaMemcpyAsync(to, from, bytes, kind, stream()), std::string("cudaMemcpyAsync (") + what + ")");
    pipeline_.Synchronize(what);
  }

  // Runs `kernels` over every staged chunk, once per parameter type present in the chunk.
  void Stage(const CpuContext& host, const ParamList& params, StagingDirection direction, const SpanKernels& kernels) const {
    StageBlocks(host, params, direction, {block_.get()},
                [&](cudaStream_t stream, ParamType type, size_t, const std::vector<Span>& spans) { kernels(stream, type, spans); });
  }

  // Stage() for several blocks of this layout (EmaTracks' arenas): each chunk staged once, then
  // kernels(stream, type, k, spans) for each block k, spans pointing into that block.
  using BlockKernels = std::function<void(cudaStream_t, ParamType, size_t, const std::vector<Span>&)>;
  void StageBlocks(const CpuContext& host, const ParamList& params, StagingDirection direction,
                   const std::vector<void*>& blocks, const BlockKernels& kernels) const {
    const size_t capacity = ChooseStagingBytes(layout(), params);
    if (capacity == 0) return;
    DeviceGuard guard(device());
    pipeline_.Reserve(capacity);
    const StagingPlan plan = PlanStaging(layout(), params, capacity);
    auto chunk_kernels = [&](cudaStream_t stream, const StagedChunk& chunk, void* staging) {
      for (ParamType type : {ParamType::kFloat32, ParamType::kFloat64}) {
        for (size_t k = 0; k < blocks.size(); ++k) {
          std::vector<Span> spans = ChunkSpans(plan, chunk, layout(), blocks[k], staging, params, type, direction);
          if (!spans.empty()) kernels(stream, type, k, spans);
        }
      }
    };
    if (direction == StagingDirection::kToArena) {
      pipeline_.Upload(host, params, plan, chunk_kernels);
    } else {
      pipeline_.Download(host, params, plan, chunk_kernels);
    }
  }

  DeviceBuffer block_;
  // The streams, pinned staging buffers and scratch counter are working state, not the arena's
  // values: const methods (reading the arena out) use them too.
  mutable StagingPipeline pipeline_;
  mutable DeviceBuffer counter_;
};

}  // namespace

std::unique_ptr<Arena> NewDeviceArena(DType dtype, std::vector<size_t> sizes, int device) {
  ArenaLayout layout(dtype, std::move(sizes));
  CheckDeviceUsable(device);
  return std::make_unique<DeviceArena>(std::move(layout), device);
}

}  // namespace model_ema
