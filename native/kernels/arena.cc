#include "arena.h"

#include <stdexcept>
#include <string>

#include "element_ops.h"

namespace model_ema {

void Arena::Update(const CpuContext& cpu, const ParamList& params, UpdateDescription u) {
  // Decay 1 changes no element: skip the pass, and for a device arena the upload of every
  // parameter. (The rule itself is defined with the functor, element_ops.h.)
  if (RuleOf(u) == UpdateRule::kKeep) return;
  UpdateShadows(cpu, params, u);
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
