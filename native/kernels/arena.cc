#include "arena.h"

#include <atomic>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "element_ops.h"
#include "pieces.h"

namespace model_ema {

namespace {

// NaN and infinite elements of the parameters, which are host memory for every kind of arena:
// counted on the CPU threads, reading the parameters only.
size_t CountNonFiniteParams(const CpuContext& cpu, const ArenaLayout& layout, const ParamList& params) {
  std::atomic<size_t> count{0};
  ForEachPiece(cpu, layout, [&](size_t t, size_t first, size_t n) {
    const ParamBuffer& p = params[t];
    const void* data = static_cast<const uint8_t*>(p.data) + first * ParamTypeSize(p.type);
    size_t found = cpu.kernels->count_non_finite(AsDType(p.type), data, n);
    if (found != 0) count.fetch_add(found, std::memory_order_relaxed);
  });
  return count.load();
}

}  // namespace

size_t Arena::Update(const CpuContext& cpu, const ParamList& params, UpdateDescription u) {
  // 'skip-update' must know before it writes anything, so it reads the parameters once first
  // (they are then found in cache when they fit), and updates without per-element checks.
  if (u.non_finite == NonFinitePolicy::kSkipUpdate) {
    const size_t found = CountNonFiniteParams(cpu, layout(), params);
    if (found != 0) return found;
    u.non_finite = NonFinitePolicy::kPropagate;
  }
  // Decay 1 changes no element: skip the pass, and for a device arena the upload of every
  // parameter. (The rule itself is defined with the functor, element_ops.h.) The statistics of
  // 'skip-element' stay exact all the same.
  if (RuleOf(u) == UpdateRule::kKeep) {
    return u.non_finite == NonFinitePolicy::kSkipElement ? CountNonFiniteParams(cpu, layout(), params) : 0;
  }
  return UpdateShadows(cpu, params, u);
}

std::vector<size_t> Arena::UpdateTogether(const CpuContext& cpu, const ParamList& params, const std::vector<Arena*>& arenas,
                                          std::vector<UpdateDescription> us) {
  if (arenas.size() != us.size()) throw std::invalid_argument("UpdateTogether: one description per arena is needed");
  std::vector<size_t> result(arenas.size(), 0);
  if (arenas.empty()) return result;
  const Arena& first = *arenas[0];
  for (const Arena* a : arenas) {
    if (a->dtype() != first.dtype() || a->device() != first.device() || a->layout().sizes() != first.layout().sizes()) {
      throw std::invalid_argument("UpdateTogether: every arena must have the same sizes, dtype and device");
    }
  }
  // One count serves every arena whose policy needs to know before it writes (Update's rules).
  bool count_needed = false;
  for (const UpdateDescription& u : us) {
    count_needed |= u.non_finite == NonFinitePolicy::kSkipUpdate ||
                    (RuleOf(u) == UpdateRule::kKeep && u.non_finite == NonFinitePolicy::kSkipElement);
  }
  const size_t found = count_needed ? CountNonFiniteParams(cpu, first.layout(), params) : 0;
  std::vector<Arena*> passing;
  std::vector<UpdateDescription> passing_us;
  std::vector<size_t> positions;
  for (size_t i = 0; i < arenas.size(); ++i) {
    UpdateDescription u = us[i];
    if (u.non_finite == NonFinitePolicy::kSkipUpdate) {
      if (found != 0) {
        result[i] = found;
        continue;
      }
      u.non_finite = NonFinitePolicy::kPropagate;
    }
    if (RuleOf(u) == UpdateRule::kKeep) {
      result[i] = u.non_finite == NonFinitePolicy::kSkipElement ? found : 0;
      continue;
    }
    passing.push_back(arenas[i]);
    passing_us.push_back(u);
    positions.push_back(i);
  }
  if (passing.empty()) return result;
  std::vector<size_t> skipped(passing.size(), 0);
  passing[0]->UpdateShadowsTogether(cpu, params, passing, passing_us, skipped);
  for (size_t k = 0; k < passing.size(); ++k) result[positions[k]] = skipped[k];
  return result;
}

void Arena::UpdateShadowsTogether(const CpuContext& cpu, const ParamList& params, const std::vector<Arena*>& arenas,
                                  const std::vector<UpdateDescription>& us, std::vector<size_t>& skipped) {
  for (size_t k = 0; k < arenas.size(); ++k) skipped[k] += arenas[k]->UpdateShadows(cpu, params, us[k]);
}

void Arena::CheckCopySource(const Arena& source) const {
  if (source.layout().sizes() != layout().sizes()) {
    throw std::invalid_argument("Arena::CopyFrom needs a source with the same tensor sizes");
  }
  if (source.dtype() != dtype() && source.device() != device()) {
    throw std::invalid_argument(std::string("Arena::CopyFrom converts dtypes only within one device (") +
                                DTypeName(source.dtype()) + " to " + DTypeName(dtype()) + ")");
  }
}

}  // namespace model_ema
