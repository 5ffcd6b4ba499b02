// What one update does to each element, passed by value from the JS call (addon/args.cc parses it)
// through the arena to the per-element functor (UpdateShadow in element_ops.h), on the CPU and on
// CUDA alike: the functor is built from it in one place, WithUpdateOp.
//
// A new per-element option of the update is: a field here, its parse line in
// ParseUpdateDescription (args.cc), and its branch in UpdateShadow; an option whose test would
// cost a branch per element becomes a template parameter of UpdateShadow, chosen in WithUpdateOp.
#pragma once

#include <cstdint>

namespace model_ema {

// What an update does about parameter elements that are NaN or infinite.
enum class NonFinitePolicy : uint8_t {
  kPropagate,    // no check: they flow into the shadows, as in torch_ema
  kSkipUpdate,   // any such element anywhere: no shadow changes (checked before anything is written)
  kSkipElement,  // such an element keeps its shadow; the others update
};

// How the new shadow value, computed in float32, is rounded into a float16 or bfloat16 shadow.
// float32 and float64 shadows hold the computed value as it is and ignore this.
enum class Rounding : uint8_t {
  kNearest,     // round to nearest even
  kStochastic,  // up or down with probability by distance (unbiased), bits from RandomStream
};

struct UpdateDescription {
  // In [0, 1]: shadow = shadow - (1 - decay) * (shadow - param). 0 copies and 1 freezes exactly
  // (RuleOf in element_ops.h).
  double decay = 0.0;
  NonFinitePolicy non_finite = NonFinitePolicy::kPropagate;
  Rounding rounding = Rounding::kNearest;
  // Stochastic rounding's random bits are a pure function of (seed, update_index, tensor index,
  // element index): the same on every thread count, SIMD path and device.
  uint64_t seed = 0;
  uint64_t update_index = 0;
};

}  // namespace model_ema
