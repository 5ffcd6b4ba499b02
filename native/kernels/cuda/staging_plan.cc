#include "staging_plan.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <stdexcept>

namespace model_ema {

namespace {

constexpr size_t kSegmentAlign = 64;       // bytes: the widest Pack the kernels load
constexpr size_t kSplitElements = 64;      // a cut tensor resumes 64-byte aligned in any dtype
constexpr size_t kMinStagingBytes = size_t{64} << 10;
constexpr size_t kMidStagingBytes = size_t{1} << 20;

size_t AlignUp(size_t n, size_t to) { return (n + to - 1) / to * to; }

// Copies [lo, hi) of the chunk's staging bytes from or to the parameters.
template <typename Copy>
void CopyRange(const StagingPlan& plan, const StagedChunk& chunk, const std::vector<ParamBuffer>& params,
               size_t lo, size_t hi, const Copy& copy) {
  for (size_t s = chunk.begin; s < chunk.end; ++s) {
    const StagedSegment& seg = plan.segments[s];
    const size_t element = ParamTypeSize(params[seg.tensor].type);
    const size_t begin = std::max(lo, seg.offset), end = std::min(hi, seg.offset + seg.count * element);
    if (begin >= end) continue;
    uint8_t* param = static_cast<uint8_t*>(params[seg.tensor].data) + seg.first * element + (begin - seg.offset);
    copy(param, begin, end - begin);
  }
}

// Splits the chunk's bytes over the pool when it is large enough to pay for waking the threads
// (the same threshold as the CPU kernels, in float32 elements).
template <typename Copy>
void CopyChunk(const CpuContext& cpu, const StagingPlan& plan, const StagedChunk& chunk,
               const std::vector<ParamBuffer>& params, const Copy& copy) {
  unsigned parts = 1;
  if (cpu.pool != nullptr && chunk.bytes / 4 >= cpu.parallel_threshold) {
    parts = std::max(1u, std::min(cpu.max_threads, cpu.pool->threads()));
  }
  const size_t per_part = AlignUp((chunk.bytes + parts - 1) / parts, kSegmentAlign);
  auto run_part = [&](unsigned part) {
    size_t lo = std::min(chunk.bytes, per_part * part), hi = std::min(chunk.bytes, lo + per_part);
    CopyRange(plan, chunk, params, lo, hi, copy);
  };
  if (parts == 1) {
    run_part(0);
  } else {
    cpu.pool->Run(parts, run_part);
  }
}

}  // namespace

size_t ChooseStagingBytes(const ArenaLayout& layout, const std::vector<ParamBuffer>& params) {
  size_t total = 0;
  for (size_t t = 0; t < layout.tensor_count(); ++t) {
    total += AlignUp(layout.size(t) * ParamTypeSize(params[t].type), kSegmentAlign);
  }
  if (total == 0) return 0;
  size_t quarter = AlignUp(total / 4, kMinStagingBytes);
  size_t floor = std::min(kMidStagingBytes, AlignUp(total, kMinStagingBytes));
  return std::min(kMaxStagingBytes, std::max({quarter, floor, kMinStagingBytes}));
}

StagingPlan PlanStaging(const ArenaLayout& layout, const std::vector<ParamBuffer>& params, size_t capacity) {
  if (capacity < 1024) throw std::invalid_argument("staging capacity below 1 KiB");
  StagingPlan plan;
  size_t offset = 0, chunk_begin = 0;
  auto close_chunk = [&] {
    if (plan.segments.size() > chunk_begin) plan.chunks.push_back({chunk_begin, plan.segments.size(), offset});
    chunk_begin = plan.segments.size();
    offset = 0;
  };
  for (size_t t = 0; t < layout.tensor_count(); ++t) {
    const size_t n = layout.size(t), element = ParamTypeSize(params[t].type);
    size_t first = 0;
    while (first < n) {
      offset = AlignUp(offset, kSegmentAlign);
      size_t room = offset < capacity ? (capacity - offset) / element : 0;
      size_t count = n - first;
      if (count > room) count = room / kSplitElements * kSplitElements;
      if (count == 0) {  // the chunk is full (never empty here: capacity holds a split unit)
        close_chunk();
        continue;
      }
      plan.segments.push_back({t, first, count, offset});
      offset += count * element;
      first += count;
    }
  }
  close_chunk();
  return plan;
}

void PackChunk(const CpuContext& cpu, const StagingPlan& plan, const StagedChunk& chunk,
               const std::vector<ParamBuffer>& params, void* staging) {
  uint8_t* base = static_cast<uint8_t*>(staging);
  CopyChunk(cpu, plan, chunk, params, [base](uint8_t* param, size_t at, size_t bytes) {
    std::memcpy(base + at, param, bytes);
  });
}

void UnpackChunk(const CpuContext& cpu, const StagingPlan& plan, const StagedChunk& chunk,
                 const void* staging, const std::vector<ParamBuffer>& params) {
  const uint8_t* base = static_cast<const uint8_t*>(staging);
  CopyChunk(cpu, plan, chunk, params, [base](uint8_t* param, size_t at, size_t bytes) {
    std::memcpy(param, base + at, bytes);
  });
}

std::vector<multi_tensor::Span> ChunkSpans(const StagingPlan& plan, const StagedChunk& chunk,
                                           const ArenaLayout& layout, void* arena, void* staging,
                                           const std::vector<ParamBuffer>& params, ParamType type,
                                           StagingDirection direction) {
  std::vector<multi_tensor::Span> spans;
  const size_t storage = DTypeSize(layout.dtype());
  for (size_t s = chunk.begin; s < chunk.end; ++s) {
    const StagedSegment& seg = plan.segments[s];
    if (params[seg.tensor].type != type) continue;
    uint8_t* a = static_cast<uint8_t*>(arena) + layout.byte_offset(seg.tensor) + seg.first * storage;
    uint8_t* p = static_cast<uint8_t*>(staging) + seg.offset;
    if (direction == StagingDirection::kToArena) {
      spans.push_back({a, p, seg.count, seg.tensor, seg.first});
    } else {
      spans.push_back({p, a, seg.count, seg.tensor, seg.first});
    }
  }
  return spans;
}

}  // namespace model_ema
