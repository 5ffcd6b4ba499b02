// Streams parameters between host typed arrays and a device arena through two pinned staging
// buffers, so that for consecutive chunks the host copy (into or out of pinned memory), the PCIe
// transfer and the kernels overlap:
//
//   upload, chunk k on slot k % 2:   wait until slot's previous H2D copy is done (its pinned buffer is free)
//                                    -> host packs chunk k into pinned[slot]          (CPU threads)
//                                    -> H2D copy pinned[slot] -> device[slot]        (stream[slot])
//                                    -> kernels read device[slot]                    (stream[slot])
//   While the host packs chunk k+1, chunk k's copy is in flight and chunk k-1's kernels run on
//   the other stream. Kernels of the two streams touch disjoint parts of the arena.
//
//   download: kernels write device[slot] -> D2H copy into pinned[slot] -> event; the host waits
//   for chunk k's event, unpacks it, and only then queues chunk k+2 on the same slot, so chunk
//   k+1's kernels and copy run while the host unpacks chunk k.
#pragma once

#include <cuda_runtime.h>

#include <functional>
#include <vector>

#include "../arena.h"
#include "cuda_resources.h"
#include "staging_plan.h"

namespace model_ema {

class StagingPipeline {
 public:
  // Queues the kernels of one chunk on `stream`, reading or writing `device_staging`.
  using ChunkKernels = std::function<void(cudaStream_t stream, const StagedChunk& chunk, void* device_staging)>;

  explicit StagingPipeline(int device);
  ~StagingPipeline();

  // Stream 0 also serves the arena's operations that need no staging.
  cudaStream_t stream(int i) const { return slots_[i].stream.get(); }

  // Both return once every queued copy and kernel has finished (or, on failure, after waiting for
  // whatever was already queued, so that no copy still reads or writes a buffer).
  void Upload(const CpuContext& host, const std::vector<ParamBuffer>& params, const StagingPlan& plan,
              const ChunkKernels& kernels);
  void Download(const CpuContext& host, const std::vector<ParamBuffer>& params, const StagingPlan& plan,
                const ChunkKernels& kernels);

  // Grows both slots' buffers to at least `bytes` (never shrinks: fresh pinned pages are costly).
  void Reserve(size_t bytes);
  void Synchronize(const char* operation);

 private:
  struct Slot {
    explicit Slot(int device) : stream(device), done(device) {}
    Stream stream;
    Event done;           // upload: the H2D copy finished; download: the D2H copy finished
    PinnedBuffer pinned;
    DeviceBuffer device;  // what the kernels read (upload) or write (download)
  };
  void WaitQuietly();

  int device_;
  Slot slots_[2];
};

}  // namespace model_ema
