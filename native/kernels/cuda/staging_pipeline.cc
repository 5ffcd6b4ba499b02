#include "staging_pipeline.h"

#include <string>

namespace model_ema {

StagingPipeline::StagingPipeline(int device) : device_(device), slots_{Slot(device), Slot(device)} {}

StagingPipeline::~StagingPipeline() { WaitQuietly(); }

void StagingPipeline::Reserve(size_t bytes) {
  for (Slot& slot : slots_) {
    if (slot.pinned.bytes() >= bytes && slot.device.bytes() >= bytes) continue;
    // Free first: the old buffers may be most of what the device (or pinned memory) has left.
    slot.pinned = PinnedBuffer();
    slot.device = DeviceBuffer();
    slot.pinned = PinnedBuffer(device_, bytes);
    slot.device = DeviceBuffer(device_, bytes, "device staging buffer");
  }
}

void StagingPipeline::Synchronize(const char* operation) {
  for (Slot& slot : slots_) {
    CheckCuda(cudaStreamSynchronize(slot.stream.get()), std::string("cudaStreamSynchronize (") + operation + ")");
  }
}

void StagingPipeline::WaitQuietly() {
  DeviceGuard guard(device_, std::nothrow);
  for (Slot& slot : slots_) (void)cudaStreamSynchronize(slot.stream.get());
  (void)cudaGetLastError();
}

void StagingPipeline::Upload(const CpuContext& host, const std::vector<ParamBuffer>& params, const StagingPlan& plan,
                             const ChunkKernels& kernels) {
  try {
    for (size_t k = 0; k < plan.chunks.size(); ++k) {
      const StagedChunk& chunk = plan.chunks[k];
      Slot& slot = slots_[k % 2];
      // The pinned buffer is free once its previous H2D copy is done; the device buffer is free
      // by stream order (the copy below queues after the kernels that last read it).
      CheckCuda(cudaEventSynchronize(slot.done.get()), "cudaEventSynchronize (upload staging)");
      PackChunk(host, plan, chunk, params, slot.pinned.get());
      CheckCuda(cudaMemcpyAsync(slot.device.get(), slot.pinned.get(), chunk.bytes, cudaMemcpyHostToDevice,
                                slot.stream.get()),
                "cudaMemcpyAsync (upload staging, host to device)");
      CheckCuda(cudaEventRecord(slot.done.get(), slot.stream.get()), "cudaEventRecord (upload staging)");
      kernels(slot.stream.get(), chunk, slot.device.get());
    }
    Synchronize("upload");
  } catch (...) {
    WaitQuietly();
    throw;
  }
}

void StagingPipeline::Download(const CpuContext& host, const std::vector<ParamBuffer>& params,
                               const StagingPlan& plan, const ChunkKernels& kernels) {
  auto enqueue = [&](size_t k) {
    const StagedChunk& chunk = plan.chunks[k];
    Slot& slot = slots_[k % 2];
    kernels(slot.stream.get(), chunk, slot.device.get());
    CheckCuda(cudaMemcpyAsync(slot.pinned.get(), slot.device.get(), chunk.bytes, cudaMemcpyDeviceToHost,
                              slot.stream.get()),
              "cudaMemcpyAsync (download staging, device to host)");
    CheckCuda(cudaEventRecord(slot.done.get(), slot.stream.get()), "cudaEventRecord (download staging)");
  };
  try {
    const size_t n = plan.chunks.size();
    for (size_t k = 0; k < n && k < 2; ++k) enqueue(k);
    for (size_t k = 0; k < n; ++k) {
      Slot& slot = slots_[k % 2];
      CheckCuda(cudaEventSynchronize(slot.done.get()), "cudaEventSynchronize (download staging)");
      UnpackChunk(host, plan, plan.chunks[k], slot.pinned.get(), params);
      if (k + 2 < n) enqueue(k + 2);
    }
    Synchronize("download");
  } catch (...) {
    WaitQuietly();
    throw;
  }
}

}  // namespace model_ema
