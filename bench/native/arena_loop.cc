// The reference of the call-path bench (bench/call_path.js): the addon's own update kernel, called
// from C++ in a loop over a HostArena of the given tensor sizes and one parameter buffer per tensor
// (as JS typed arrays are), on one thread. What update() costs beyond this is the JS-to-native call
// path. Built with the addon (not shipped). Usage: ema_arena_loop <reps> <batches> <size>...
// Prints one JSON line: {"reps", "usPerUpdate": [..one value per batch..]}: CPU time of this (single)
// thread, not wall time, so that time the scheduler gives to other processes does not count.
#include <ctime>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "../../native/kernels/cpu_kernels.h"
#include "../../native/kernels/host_arena.h"

using model_ema::CpuContext;
using model_ema::DType;
using model_ema::HostArena;
using model_ema::ParamList;
using model_ema::ParamType;
using model_ema::UpdateDescription;

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: %s <reps> <batches> <size>...\n", argv[0]);
    return 2;
  }
  const long reps = std::max(1L, std::atol(argv[1]));
  const int batches = std::max(1, std::atoi(argv[2]));
  std::vector<size_t> sizes;
  for (int i = 3; i < argc; ++i) sizes.push_back(std::strtoull(argv[i], nullptr, 10));

  HostArena shadows(DType::kFloat32, sizes);
  std::vector<std::vector<float>> storage;
  ParamList params;
  for (size_t t = 0; t < sizes.size(); ++t) {
    storage.emplace_back(sizes[t]);
    for (size_t i = 0; i < sizes[t]; ++i) storage[t][i] = static_cast<float>((i * 2654435761u) % 1000) * 1e-3f;
    params.push_back({storage[t].data(), ParamType::kFloat32});
  }
  // One thread, the best ISA: as the addon runs under MODEL_EMA_THREADS=1.
  const CpuContext cpu{&model_ema::SelectCpuKernels(nullptr), nullptr, 1, static_cast<size_t>(-1)};
  UpdateDescription u;
  u.decay = 0.999;
  shadows.CopyFromParams(cpu, params);
  for (long r = 0; r < reps; ++r) shadows.Update(cpu, params, u);  // warm-up: caches, frequency

  std::printf("{\"reps\":%ld,\"usPerUpdate\":[", reps);
  for (int b = 0; b < batches; ++b) {
    const std::clock_t start = std::clock();
    for (long r = 0; r < reps; ++r) shadows.Update(cpu, params, u);
    const std::clock_t stop = std::clock();
    std::printf("%s%.4f", b ? "," : "", 1e6 * static_cast<double>(stop - start) / CLOCKS_PER_SEC / reps);
  }
  std::printf("]}\n");
  return 0;
}
