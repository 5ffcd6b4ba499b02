// Every operation of the Arena interface on a device arena, against a HostArena (the CPU kernels)
// given the same inputs: the results must be the same bit for bit (NaN meets any NaN).
#pragma once

#include <string>

#include "../../native/kernels/arena.h"
#include "check_log.h"

namespace model_ema {

struct ArenaCheckOptions {
  // The device under test; -1 runs the same checks with a second host arena in its place: no GPU
  // code runs, but every comparison and expectation of this harness does (its no-GPU dry run).
  int device = 0;
  // Leaves out the large shapes (2^20+3 elements, the many-chunk pipelined upload).
  bool quick = false;
};

// One line per (shape, dtype): copy from params, updates over every description, copy to params,
// counts, reads, writes, casts and host<->device moves.
void CheckArenas(const CpuContext& cpu, const ArenaCheckOptions& options, CheckLog& log);

// The negative control of every other check: the comparison finds a one-bit difference in each
// dtype, and takes any NaN for any NaN (and nothing else).
void CheckComparison(CheckLog& log);

// That the largest shape really goes through the pipelined upload (several staging chunks).
void CheckPipelinedPlan(CheckLog& log);

}  // namespace model_ema
