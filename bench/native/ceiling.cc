// The ceiling the fused update is measured against: `s = s - (1 - d) * (s - p)` over one float32
// arena of shadows and one of parameters, a plain loop per thread over an equal slice, nothing
// else. Built with the addon (not shipped); run by bench/ with:
//   ceiling <elements> <threads> <reps> [<shadows> [check]]
// With several shadow arenas (EmaTracks' ceiling), each thread's slice goes in blocks of 32768
// elements and every arena is updated from a block while it is in cache (the parameters come from
// memory once): the plain-loop bound of a fused several-horizon pass on this machine. With `check`,
// each thread counts the non-finite parameters of its slice before it updates it: the plain-loop
// bound of nonFinite 'skip-update', which must know before it writes (one more read of the parameters).
// Prints one JSON line: {"elements", "threads", "shadows", "nonFinite", "reps", "msPerUpdate": [..one per rep..]}.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

namespace {

// Compiled for each of these targets; the loader picks the best one the CPU has.
__attribute__((target_clones("avx512f", "avx2", "default"))) void UpdateSlice(
    float* __restrict s, const float* __restrict p, size_t n, float one_minus_decay) {
  for (size_t i = 0; i < n; ++i) s[i] = s[i] - one_minus_decay * (s[i] - p[i]);
}

__attribute__((target_clones("avx512f", "avx2", "default"))) size_t CountNonFinite(const float* __restrict p, size_t n) {
  size_t count = 0;
  for (size_t i = 0; i < n; ++i) {
    uint32_t bits;
    std::memcpy(&bits, p + i, sizeof bits);
    count += (bits & 0x7f800000u) == 0x7f800000u;
  }
  return count;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4 || argc > 6 || (argc == 6 && std::strcmp(argv[5], "check") != 0)) {
    std::fprintf(stderr, "usage: %s <elements> <threads> <reps> [<shadows> [check]]\n", argv[0]);
    return 2;
  }
  const size_t n = std::strtoull(argv[1], nullptr, 10);
  const unsigned threads = std::max(1, std::atoi(argv[2]));
  const int reps = std::max(1, std::atoi(argv[3]));
  const size_t shadows = argc >= 5 ? std::max(1, std::atoi(argv[4])) : 1;
  const bool check = argc == 6;
  std::atomic<size_t> non_finite{0};  // printed, so that the count is not optimised away
  std::vector<std::vector<float>> shadow(shadows, std::vector<float>(n));  // zero-filled: pages touched before timing
  std::vector<float> param(n);
  for (size_t i = 0; i < n; ++i) param[i] = static_cast<float>(i % 1000) * 1e-3f;

  std::atomic<int> generation{0};
  std::atomic<unsigned> done{0};
  const size_t slice = (n / threads + 63) / 64 * 64;
  auto work = [&](unsigned t) {
    size_t begin = std::min(n, slice * t), end = t + 1 == threads ? n : std::min(n, slice * (t + 1));
    if (check) non_finite.fetch_add(CountNonFinite(param.data() + begin, end - begin), std::memory_order_relaxed);
    constexpr size_t kBlock = 32768;
    for (size_t b = begin; b < end; b += kBlock) {
      const size_t m = std::min(kBlock, end - b);
      for (size_t k = 0; k < shadows; ++k) UpdateSlice(shadow[k].data() + b, param.data() + b, m, 0.001f / (k + 1));
    }
  };
  // Spinning workers: the ceiling should not pay for wake-ups.
  std::vector<std::thread> pool;
  for (unsigned t = 1; t < threads; ++t) {
    pool.emplace_back([&, t] {
      int seen = 0;
      for (;;) {
        int g;
        while ((g = generation.load(std::memory_order_acquire)) == seen) std::this_thread::yield();
        if (g < 0) return;
        seen = g;
        work(t);
        done.fetch_add(1, std::memory_order_acq_rel);
      }
    });
  }
  std::vector<double> ms;
  for (int r = -2; r < reps; ++r) {  // two warm-up passes
    auto start = std::chrono::steady_clock::now();
    done.store(0);
    generation.fetch_add(1, std::memory_order_acq_rel);
    work(0);
    while (done.load(std::memory_order_acquire) != threads - 1) std::this_thread::yield();
    auto stop = std::chrono::steady_clock::now();
    if (r >= 0) ms.push_back(std::chrono::duration<double, std::milli>(stop - start).count());
  }
  generation.store(-1, std::memory_order_release);
  for (auto& t : pool) t.join();
  std::printf("{\"elements\":%zu,\"threads\":%u,\"shadows\":%zu,\"nonFinite\":%zu,\"reps\":%d,\"msPerUpdate\":[", n, threads,
              shadows, non_finite.load(), reps);
  for (size_t i = 0; i < ms.size(); ++i) std::printf("%s%.6f", i ? "," : "", ms[i]);
  std::printf("]}\n");
  return 0;
}
