// What one update does to each element, passed by value from the JS call (addon/args.cc parses it)
// through the arena to the per-element functor (UpdateShadow in element_ops.h), on the CPU and on
// CUDA alike: the functor is built from it in one place, WithUpdateOp.
//
// A new per-element option of the update is: a field here, its parse line in
// ParseUpdateDescription (args.cc), and its branch in UpdateShadow; an option whose test would
// cost a branch per element becomes a template parameter of UpdateShadow, chosen in WithUpdateOp.
#pragma once

namespace model_ema {

struct UpdateDescription {
  // In [0, 1]: shadow = shadow - (1 - decay) * (shadow - param). 0 copies and 1 freezes exactly
  // (RuleOf in element_ops.h).
  double decay = 0.0;
  // Coming here: the non-finite policy (propagate, skip the update, skip the element), the
  // rounding mode with its seed and the update's index (stochastic rounding is a function of
  // seed, update index and element index), and the number of tracks with a decay per track.
};

}  // namespace model_ema
