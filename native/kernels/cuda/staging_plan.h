// How parameters travel between host typed arrays and a device arena: cut into chunks that fit
// one pinned staging buffer, each chunk a list of segments (a tensor's element range) packed at
// 64-byte aligned offsets. Plain C++ (no CUDA): the device arena drives it, and
// host_emulation_test.cc checks it covers every element exactly once.
#pragma once

#include <cstddef>
#include <vector>

#include "../arena.h"
#include "chunk_tables.h"

namespace model_ema {

// Upper bound of one staging buffer; a device arena holds two of them in pinned host memory and
// two in device memory, allocated at first use and reused.
constexpr size_t kMaxStagingBytes = size_t{8} << 20;

struct StagedSegment {
  size_t tensor;
  size_t first;   // element offset in the tensor
  size_t count;   // elements
  size_t offset;  // bytes from the start of the staging buffer, a multiple of 64
};

struct StagedChunk {
  size_t begin, end;  // range of StagingPlan::segments
  size_t bytes;       // staging bytes used, the last segment's end
};

struct StagingPlan {
  std::vector<StagedSegment> segments;
  std::vector<StagedChunk> chunks;
};

// The staging buffer size for moving these parameters: about a quarter of the total (so that the
// host copies, the PCIe transfers and the kernels of different chunks overlap even for a
// mid-sized model) within [64 KiB, kMaxStagingBytes]; 0 when there is nothing to move.
size_t ChooseStagingBytes(const ArenaLayout& layout, const std::vector<ParamBuffer>& params);

// Splits every non-empty tensor into segments of at most `capacity` bytes of parameter values.
// A tensor cut between chunks is cut at a multiple of 64 elements, so that both the staging and
// the arena side of every segment start 64-byte aligned. capacity must be at least 1 KiB.
StagingPlan PlanStaging(const ArenaLayout& layout, const std::vector<ParamBuffer>& params, size_t capacity);

// Host copies between the parameters and one chunk's staging buffer, split over the thread pool
// when the chunk is large.
void PackChunk(const CpuContext& cpu, const StagingPlan& plan, const StagedChunk& chunk,
               const std::vector<ParamBuffer>& params, void* staging);
void UnpackChunk(const CpuContext& cpu, const StagingPlan& plan, const StagedChunk& chunk,
                 const void* staging, const std::vector<ParamBuffer>& params);

enum class StagingDirection { kToArena, kFromArena };

// The kernel work of one chunk whose parameters have type `type`: arena <- staging (kToArena)
// or staging <- arena (kFromArena). `arena` and `staging` are the device addresses.
std::vector<multi_tensor::Span> ChunkSpans(const StagingPlan& plan, const StagedChunk& chunk,
                                           const ArenaLayout& layout, void* arena, void* staging,
                                           const std::vector<ParamBuffer>& params, ParamType type,
                                           StagingDirection direction);

}  // namespace model_ema
