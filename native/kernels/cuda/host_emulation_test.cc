// Runs the CUDA path's host logic and kernel blocks on the CPU, without a GPU: the staging plan,
// the host packing, the chunk spans, the chunk tables, and every block and thread of each
// "launch" of the block functions in multi_tensor.h (threads run one after another). The results
// must match a HostArena (the CPU kernels) bit for bit, padding included. What this cannot check is
// the CUDA side proper: streams, events, copies, and threads running concurrently.
//
// The functors come from WithUpdateOp / WithConvertOp (element_ops.h), as in the CUDA launchers,
// so the emulation and the device pick the same instantiation for the same description.
//
// Usage: multi_tensor_emulation_test [quick]. Prints one line per failure; exits 1 if any.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "../element_ops.h"
#include "../host_arena.h"
#include "chunk_tables.h"
#include "multi_tensor.h"
#include "staging_plan.h"

namespace model_ema {
namespace {

using multi_tensor::ChunkTable;
using multi_tensor::kBlockThreads;
using multi_tensor::Span;

int failures = 0;
int checks = 0;
// Blocks per emulated launch: the real limit, or a tiny one that splits tensors between tables.
int32_t max_blocks = multi_tensor::kMaxBlocksPerTable;

void Expect(bool ok, const std::string& what) {
  ++checks;
  if (!ok && ++failures <= 20) std::printf("FAIL %s\n", what.c_str());
}

// One "launch": every block, every thread, in order.
template <typename Block>
void RunGrid(const ChunkTable& table, int32_t blocks, const Block& block) {
  Expect(table.tensors >= 1 && table.tensors <= multi_tensor::kMaxTensors && blocks <= max_blocks &&
             table.first_block[table.tensors] == blocks,
         "table sizes in range");
  for (int t = 0; t < table.tensors; ++t) {
    Expect(table.first_block[t] < table.first_block[t + 1], "every table entry has a block");
  }
  for (int32_t b = 0; b < blocks; ++b) {
    for (int thread = 0; thread < kBlockThreads; ++thread) block(b, thread);
  }
}

// One emulated launch sequence of `op`, as LaunchTransform (multi_tensor_kernels.cu) queues it.
// Returns the skipped elements, summed over every thread as the kernel's atomics sum them.
template <typename F>
size_t EmulateTransform(const F& op, const std::vector<Span>& spans) {
  size_t skipped = 0;
  multi_tensor::ForEachChunkTable(spans, sizeof(typename F::Dst), sizeof(typename F::Src), [&](const ChunkTable& table, int32_t blocks) {
    RunGrid(table, blocks, [&](int32_t b, int t) { skipped += multi_tensor::TransformBlock(table, b, t, kBlockThreads, op); });
  }, max_blocks);
  return skipped;
}

size_t EmulateUpdate(UpdateDescription u, DType s, ParamType p, const std::vector<Span>& spans) {
  size_t skipped = 0;
  WithUpdateOp(u, s, p, [&](const auto& op) { skipped = EmulateTransform(op, spans); });
  return skipped;
}

void EmulateConvert(DType from, DType to, const std::vector<Span>& spans) {
  WithConvertOp(from, to, [&](const auto& op) { EmulateTransform(op, spans); });
}

size_t EmulateCount(DType dtype, const std::vector<Span>& spans) {
  size_t total = 0;
  VisitDType(dtype, [&](auto element) {
    using S = decltype(element);
    multi_tensor::ForEachChunkTable(spans, 0, sizeof(S), [&](const ChunkTable& table, int32_t blocks) {
      RunGrid(table, blocks, [&](int32_t b, int t) { total += multi_tensor::CountNonFiniteBlock<S>(table, b, t, kBlockThreads); });
    }, max_blocks);
  });
  return total;
}

// What the device arena's Stage does (device_arena.cc), with host memory standing in for the device's.
enum class Op { kUpdate, kCopyFromParams, kCopyToParams };
// Returns the elements the update skipped.
size_t EmulateStaged(const CpuContext& cpu, Op op, HostArena& device, const ParamList& params, size_t capacity,
                     UpdateDescription u) {
  size_t skipped = 0;
  const StagingPlan plan = PlanStaging(device.layout(), params, capacity);
  std::vector<uint64_t> staging_words(capacity / 8 + 1);
  void* staging = staging_words.data();
  const auto direction = op == Op::kCopyToParams ? StagingDirection::kFromArena : StagingDirection::kToArena;
  for (const StagedChunk& chunk : plan.chunks) {
    Expect(chunk.bytes <= capacity, "chunk fits its staging buffer");
    if (op != Op::kCopyToParams) PackChunk(cpu, plan, chunk, params, staging);
    for (ParamType type : {ParamType::kFloat32, ParamType::kFloat64}) {
      std::vector<Span> spans = ChunkSpans(plan, chunk, device.layout(), device.data(), staging, params, type, direction);
      if (spans.empty()) continue;
      if (op == Op::kUpdate) skipped += EmulateUpdate(u, device.dtype(), type, spans);
      if (op == Op::kCopyFromParams) EmulateConvert(AsDType(type), device.dtype(), spans);
      if (op == Op::kCopyToParams) EmulateConvert(device.dtype(), AsDType(type), spans);
    }
    if (op == Op::kCopyToParams) UnpackChunk(cpu, plan, chunk, staging, params);
  }
  // Every element of every tensor exactly once, in order.
  std::vector<size_t> next(device.layout().tensor_count(), 0);
  for (const StagedSegment& seg : plan.segments) {
    Expect(seg.first == next[seg.tensor] && seg.count > 0 && seg.offset % 64 == 0, "segments tile each tensor");
    next[seg.tensor] += seg.count;
  }
  for (size_t t = 0; t < device.layout().tensor_count(); ++t) {
    Expect(next[t] == device.layout().size(t), "segments cover each tensor");
  }
  return skipped;
}

bool SameBytes(const void* a, const void* b, size_t n) { return n == 0 || std::memcmp(a, b, n) == 0; }

// Parameters with values that exercise rounding: wide magnitudes, exact ties, and a few
// non-finite values; `shift` elements in, so that views are not 16-byte aligned.
struct Params {
  std::vector<std::vector<uint8_t>> storage;
  ParamList buffers;
};
Params MakeParams(const std::vector<size_t>& sizes, int type_mix, size_t shift, std::mt19937_64& rng) {
  Params p;
  std::uniform_real_distribution<double> unit(-1.0, 1.0);
  std::uniform_int_distribution<int> exponent(-30, 20);
  for (size_t t = 0; t < sizes.size(); ++t) {
    ParamType type = type_mix == 0 ? ParamType::kFloat32 : type_mix == 1 ? ParamType::kFloat64
                                                                         : (t % 2 ? ParamType::kFloat64 : ParamType::kFloat32);
    const size_t element = ParamTypeSize(type);
    p.storage.emplace_back((sizes[t] + shift) * element + 16);
    uint8_t* base = p.storage.back().data() + shift * element;
    for (size_t i = 0; i < sizes[t]; ++i) {
      double v = unit(rng) * std::ldexp(1.0, exponent(rng));
      if (rng() % 997 == 0) v = (rng() % 2) ? INFINITY : NAN;
      if (type == ParamType::kFloat32) {
        float f = static_cast<float>(v);
        std::memcpy(base + i * 4, &f, 4);
      } else {
        std::memcpy(base + i * 8, &v, 8);
      }
    }
    p.buffers.push_back({base, type});
  }
  return p;
}

void RunCase(const CpuContext& cpu, DType dtype, const std::vector<size_t>& sizes, int type_mix, size_t capacity,
             std::mt19937_64& rng, const std::string& name) {
  const std::string what = name + " " + DTypeName(dtype) + " mix " + std::to_string(type_mix) + " capacity " + std::to_string(capacity);
  Params first = MakeParams(sizes, type_mix, 1, rng), second = MakeParams(sizes, type_mix, 0, rng);
  HostArena reference(dtype, sizes), device(dtype, sizes);
  const size_t bytes = reference.layout().byte_length();
  reference.CopyFromParams(cpu, first.buffers);
  EmulateStaged(cpu, Op::kCopyFromParams, device, first.buffers, capacity, {});
  Expect(SameBytes(reference.data(), device.data(), bytes), what + ": copy from params");
  // Decay 0 runs the update's copy rule (decay 1 runs nothing: Arena::Update skips it). Each
  // decay with every non-finite policy the kernels see and both roundings (the parameters hold a
  // few NaNs and infinities): same bytes, same count of skipped elements.
  uint64_t update_index = 0;
  for (double decay : {0.9, 0.999, 0.0, 0.5}) {
    for (NonFinitePolicy policy : {NonFinitePolicy::kPropagate, NonFinitePolicy::kSkipElement}) {
      for (Rounding rounding : {Rounding::kNearest, Rounding::kStochastic}) {
        UpdateDescription u{decay, policy, rounding, 0x5EEDull, update_index++};
        const std::string how = what + ": update decay " + std::to_string(decay) + " policy " +
                                std::to_string(static_cast<int>(policy)) + " rounding " + std::to_string(static_cast<int>(rounding));
        const size_t ref_skipped = reference.Update(cpu, second.buffers, u);
        const size_t dev_skipped = EmulateStaged(cpu, Op::kUpdate, device, second.buffers, capacity, u);
        Expect(SameBytes(reference.data(), device.data(), bytes), how);
        Expect(ref_skipped == dev_skipped, how + ": skipped " + std::to_string(ref_skipped) + " vs " + std::to_string(dev_skipped));
      }
    }
    if (decay == 0.0) second = MakeParams(sizes, type_mix, 0, rng);
  }
  Params out_ref = MakeParams(sizes, type_mix, 1, rng), out_dev = MakeParams(sizes, type_mix, 1, rng);
  reference.CopyToParams(cpu, out_ref.buffers);
  EmulateStaged(cpu, Op::kCopyToParams, device, out_dev.buffers, capacity, {});
  for (size_t t = 0; t < sizes.size(); ++t) {
    Expect(SameBytes(out_ref.buffers[t].data, out_dev.buffers[t].data, sizes[t] * ParamTypeSize(out_ref.buffers[t].type)),
           what + ": copy to params, tensor " + std::to_string(t));
  }
  Expect(reference.CountNonFinite(cpu) == [&] {
    std::vector<Span> spans;
    for (size_t t = 0; t < sizes.size(); ++t) spans.push_back({nullptr, device.tensor(t), sizes[t]});
    return EmulateCount(dtype, spans);
  }(), what + ": count non-finite");
  for (int to = 0; to < kNumDTypes; ++to) {
    HostArena ref_to(static_cast<DType>(to), sizes), dev_to(static_cast<DType>(to), sizes);
    ref_to.CopyFrom(cpu, reference);
    std::vector<Span> spans;
    for (size_t t = 0; t < sizes.size(); ++t) spans.push_back({dev_to.tensor(t), device.tensor(t), sizes[t]});
    EmulateConvert(dtype, static_cast<DType>(to), spans);
    Expect(SameBytes(ref_to.data(), dev_to.data(), ref_to.layout().byte_length()),
           what + ": convert to " + DTypeName(static_cast<DType>(to)));
  }
}

// The scalar path for pointers that are not vector-aligned (no caller passes them today).
void CheckMisalignedSpans(std::mt19937_64& rng) {
  const size_t n = 1000;
  Params p = MakeParams({n + 4}, 0, 0, rng);
  const float* params = static_cast<const float*>(p.buffers[0].data);
  for (size_t shift = 0; shift < 4; ++shift) {
    std::vector<float> copy(n + 4, 0.f), shadow(n + 4, 0.25f), expected(n + 4, 0.25f);
    const float* src = params + shift;
    EmulateConvert(DType::kFloat32, DType::kFloat32, {{copy.data() + (3 - shift), src, n}});
    Expect(SameBytes(copy.data() + (3 - shift), src, n * 4), "misaligned copy, shift " + std::to_string(shift));
    const UpdateShadow<float, float, UpdateRule::kAverage> op{0.125f, 0, 0, {}};
    for (size_t i = 0; i < n; ++i) expected[3 - shift + i] = op(expected[3 - shift + i], src[i], 0u);
    EmulateUpdate(UpdateDescription{0.875}, DType::kFloat32, ParamType::kFloat32, {{shadow.data() + (3 - shift), src, n}});
    Expect(SameBytes(shadow.data(), expected.data(), shadow.size() * 4), "misaligned update, shift " + std::to_string(shift));
  }
}

}  // namespace
}  // namespace model_ema

int main(int argc, char** argv) {
  using namespace model_ema;
  const bool quick = argc > 1 && std::strcmp(argv[1], "quick") == 0;
  ThreadPool pool(3);
  // A tiny threshold so that the host packing runs split over the pool too.
  const CpuContext cpu{&SelectCpuKernels(nullptr), &pool, 3, 1024};
  std::mt19937_64 rng(20240607);
  std::vector<std::pair<std::string, std::vector<size_t>>> shapes = {
      {"empty list", {}}, {"one empty tensor", {0}}, {"one element", {1}}, {"seven", {7}},
      {"4097", {4097}}, {"mixed", {0, 3, 8192, 8193, 70001, 5, 0, 64}},
  };
  std::vector<size_t> tiny(1000);
  for (size_t& n : tiny) n = rng() % 40;
  shapes.push_back({"1000 tiny tensors", tiny});
  if (!quick) shapes.push_back({"2^20+3", {(size_t{1} << 20) + 3}});
  for (const auto& [name, sizes] : shapes) {
    for (int d = 0; d < kNumDTypes; ++d) {
      for (int mix = 0; mix < 3; ++mix) {
        ParamList probe(sizes.size(), ParamBuffer{nullptr, mix == 1 ? ParamType::kFloat64 : ParamType::kFloat32});
        ArenaLayout layout(static_cast<DType>(d), sizes);
        size_t chosen = std::max<size_t>(ChooseStagingBytes(layout, probe), 1024);
        for (size_t capacity : {size_t{1024}, size_t{64} << 10, chosen}) {
          max_blocks = capacity == chosen ? 3 : multi_tensor::kMaxBlocksPerTable;
          RunCase(cpu, static_cast<DType>(d), sizes, mix, capacity, rng, name);
        }
      }
    }
  }
  CheckMisalignedSpans(rng);
  std::printf("%s: %d checks, %d failures\n", failures == 0 ? "ok" : "FAILED", checks, failures);
  return failures == 0 ? 0 : 1;
}
