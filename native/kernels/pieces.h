// Splitting a multi-tensor pass over the CPU threads: the layout's padded element range cut evenly
// into per-thread parts, each part handed out as pieces (a tensor, its first element, a count).
// Used by the host arena for every pass, and by Arena::Update to check parameters of any arena.
#pragma once

#include <algorithm>
#include <cstddef>
#include <vector>

#include "arena_layout.h"
#include "cpu_kernels.h"

namespace model_ema {

// Piece boundaries fall on multiples of this many elements so that two threads never write the
// same cache line of the arena (parameter buffers written by copyTo may still share one: slower,
// never wrong).
constexpr size_t kSplitGranule = 64;

// Splits the layout's padded element range evenly between threads and calls
// piece(tensor, first_element, count) for each part of each tensor a thread owns.
template <typename Piece>
inline void ForEachPiece(const CpuContext& cpu, const ArenaLayout& layout, const Piece& piece) {
  const std::vector<size_t>& offsets = layout.offsets();
  const size_t total = offsets.back();
  if (total == 0) return;
  unsigned parts = 1;
  if (total >= cpu.parallel_threshold && cpu.pool != nullptr) {
    parts = std::min(cpu.max_threads, cpu.pool->threads());
    parts = static_cast<unsigned>(std::min<size_t>(parts, total / kSplitGranule + 1));
    parts = std::max(parts, 1u);
  }
  auto run_part = [&](unsigned part) {
    size_t per_part = (total / parts + kSplitGranule - 1) / kSplitGranule * kSplitGranule;
    size_t begin = std::min(total, per_part * part);
    size_t end = part + 1 == parts ? total : std::min(total, per_part * (part + 1));
    // Last tensor starting at or before `begin` (or the first, when padding precedes it).
    size_t t = std::upper_bound(offsets.begin(), offsets.end() - 1, begin) - offsets.begin();
    t = t > 0 ? t - 1 : 0;
    for (; t < layout.tensor_count() && offsets[t] < end; ++t) {
      size_t lo = std::max(begin, offsets[t]) - offsets[t];
      size_t hi = std::min(end, offsets[t] + layout.size(t));
      if (hi > offsets[t] + lo) piece(t, lo, hi - offsets[t] - lo);
    }
  };
  if (parts == 1) {
    run_part(0);
  } else {
    cpu.pool->Run(parts, run_part);
  }
}

}  // namespace model_ema
