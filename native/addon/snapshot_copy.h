// updateAsync's snapshot of the parameters, taken on the JS thread before the call returns (the
// caller may write its arrays right after). It is the one part of a default updateAsync() that
// blocks JavaScript, so it is made as cheap as a copy can be: split over the thread pool, and,
// where a parameter already has the snapshot's element type, written with non-temporal (streaming)
// stores, which skip reading the destination's cache lines first (8 bytes of memory traffic per
// float32 element instead of 12; the update itself moves 12). On the 2-core CI VM a single-thread
// copy of 25.6M floats took 0.70x of an update's CPU time with plain stores and 0.63x streamed.
// Conversions (float32 parameters in a float64 snapshot) go through the kernels' convert loops.
#pragma once

#include "../kernels/arena.h"
#include "../kernels/host_arena.h"

namespace model_ema {

// snapshot = params, every tensor; the snapshot is a float32 or float64 HostArena whose sizes are
// the parameters' (checked by the caller).
void SnapshotParams(const CpuContext& cpu, const ParamList& params, HostArena& snapshot);

}  // namespace model_ema
