#include "cpu_ops.h"

#include <algorithm>
#include <atomic>

namespace model_ema {

namespace {

// Piece boundaries fall on multiples of this many elements so that two threads never write the
// same cache line of the arena (parameter buffers written by copyTo may still share one: slower,
// never wrong).
constexpr size_t kSplitGranule = 64;

// Splits the arena's padded element range evenly between threads and calls
// piece(tensor, first_element, count) for each part of each tensor a thread owns.
template <typename Piece>
void ForEachPiece(const CpuContext& cpu, const Arena& arena, const Piece& piece) {
  const std::vector<size_t>& offsets = arena.offsets();
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
    for (; t < arena.tensor_count() && offsets[t] < end; ++t) {
      size_t lo = std::max(begin, offsets[t]) - offsets[t];
      size_t hi = std::min(end, offsets[t] + arena.size(t));
      if (hi > offsets[t] + lo) piece(t, lo, hi - offsets[t] - lo);
    }
  };
  if (parts == 1) {
    run_part(0);
  } else {
    cpu.pool->Run(parts, run_part);
  }
}

const uint8_t* At(const void* base, size_t element, size_t element_size) {
  return static_cast<const uint8_t*>(base) + element * element_size;
}
uint8_t* At(void* base, size_t element, size_t element_size) {
  return static_cast<uint8_t*>(base) + element * element_size;
}

}  // namespace

void UpdateShadows(const CpuContext& cpu, Arena& shadows, const std::vector<ParamBuffer>& params,
                   double decay) {
  // The formula's end points, made exact: in floating point s - (s - p) is not p when |s| >> |p|
  // (nor is s - 0 * (s - p) always s: -0 turns into +0, infinities into NaN), but the SPEC
  // promises that decay 0 copies and decay 1 freezes.
  if (decay == 0.0) return LoadParams(cpu, shadows, params);
  if (decay == 1.0) return;
  const int sd = static_cast<int>(shadows.dtype());
  const size_t s_size = DTypeSize(shadows.dtype());
  const double one_minus_decay = 1.0 - decay;
  ForEachPiece(cpu, shadows, [&](size_t t, size_t first, size_t count) {
    const ParamBuffer& p = params[t];
    const size_t p_size = ParamTypeSize(p.type);
    cpu.kernels->update[sd][static_cast<int>(p.type)](At(shadows.tensor(t), first, s_size),
                                                      At(p.data, first, p_size), count,
                                                      one_minus_decay);
  });
}

void LoadParams(const CpuContext& cpu, Arena& arena, const std::vector<ParamBuffer>& params) {
  const int sd = static_cast<int>(arena.dtype());
  const size_t s_size = DTypeSize(arena.dtype());
  ForEachPiece(cpu, arena, [&](size_t t, size_t first, size_t count) {
    const ParamBuffer& p = params[t];
    cpu.kernels->load_params[sd][static_cast<int>(p.type)](
        At(arena.tensor(t), first, s_size), At(p.data, first, ParamTypeSize(p.type)), count);
  });
}

void StoreParams(const CpuContext& cpu, const Arena& arena, const std::vector<ParamBuffer>& params) {
  const int sd = static_cast<int>(arena.dtype());
  const size_t s_size = DTypeSize(arena.dtype());
  ForEachPiece(cpu, arena, [&](size_t t, size_t first, size_t count) {
    const ParamBuffer& p = params[t];
    cpu.kernels->store_params[sd][static_cast<int>(p.type)](
        At(arena.tensor(t), first, s_size), At(p.data, first, ParamTypeSize(p.type)), count);
  });
}

void ConvertArena(const CpuContext& cpu, const Arena& from, Arena& to) {
  const int fd = static_cast<int>(from.dtype()), td = static_cast<int>(to.dtype());
  const size_t f_size = DTypeSize(from.dtype()), t_size = DTypeSize(to.dtype());
  ForEachPiece(cpu, from, [&](size_t t, size_t first, size_t count) {
    cpu.kernels->convert[fd][td](At(from.tensor(t), first, f_size), At(to.tensor(t), first, t_size),
                                 count);
  });
}

size_t CountNonFinite(const CpuContext& cpu, const Arena& arena) {
  const int sd = static_cast<int>(arena.dtype());
  const size_t s_size = DTypeSize(arena.dtype());
  std::atomic<size_t> count{0};
  ForEachPiece(cpu, arena, [&](size_t t, size_t first, size_t n) {
    count.fetch_add(cpu.kernels->count_non_finite[sd](At(arena.tensor(t), first, s_size), n),
                    std::memory_order_relaxed);
  });
  return count.load();
}

}  // namespace model_ema
