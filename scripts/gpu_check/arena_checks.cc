#include "arena_checks.h"

#include <chrono>
#include <cstring>
#include <memory>
#include <random>
#include <stdexcept>
#include <utility>
#include <vector>

#include "../../native/kernels/cuda/staging_plan.h"
#include "test_values.h"

namespace model_ema {

namespace {

const std::vector<ParamMix> kAllMixes = {ParamMix::kFloat32, ParamMix::kFloat64, ParamMix::kMixed};

struct Shape {
  std::string name;
  std::vector<size_t> sizes;
  bool large;
  // The pipelined shape takes mixed parameters only (both types, in one upload): each mix costs
  // seconds of the GPU machine's short lease there, and the kernels it runs are the small shapes'.
  std::vector<ParamMix> mixes = kAllMixes;
};

// Over four times kMaxStagingBytes (8 MiB) of parameters in any mix, so that the staging buffers
// are the largest and the upload runs many chunks through both slots, cutting tensors between them.
// With mixed parameters the big tensors are one float32 and one float64 (types alternate).
std::vector<size_t> PipelinedSizes() { return {(size_t{5} << 20) + 5, (size_t{7} << 20) + 1, 17, 4097}; }

std::vector<Shape> Shapes(std::mt19937_64& rng) {
  std::vector<size_t> tiny(1000);
  for (size_t& n : tiny) n = rng() % 40;  // zeros included
  return {
      {"no tensors", {}, false},
      {"[0]", {0}, false},
      {"[1]", {1}, false},
      {"[7]", {7}, false},
      {"[4097]", {4097}, false},
      {"mixed sizes", {0, 3, 8192, 8193, 70001, 5, 0, 64}, false},
      {"1000 tiny tensors", tiny, false},
      {"[2^20+3]", {(size_t{1} << 20) + 3}, true},
      {"pipelined upload (>8 MiB)", PipelinedSizes(), true, {ParamMix::kMixed}},
  };
}

// Collects the failures of one (shape, dtype) check.
class Case {
 public:
  Case(const CpuContext& cpu, DType dtype, std::vector<size_t> sizes, int device)
      : cpu_(cpu), dtype_(dtype), sizes_(std::move(sizes)), device_(device) {}

  std::vector<std::string> failures;
  size_t comparisons = 0;

  void Expect(bool ok, const std::string& what) {
    ++comparisons;
    if (!ok) failures.push_back(what);
  }
  void ExpectSame(DType dtype, const void* host, const void* device, size_t bytes, const std::string& what) {
    ++comparisons;
    std::string diff = CompareValues(dtype, host, device, bytes);
    if (!diff.empty()) failures.push_back(what + ": " + diff);
  }
  void ExpectSameBlocks(const Arena& host, const Arena& device, const std::string& what) {
    const size_t bytes = host.layout().byte_length();
    if (bytes != device.layout().byte_length()) return Expect(false, what + ": block sizes differ");
    // Reused: fresh pages cost more than the copies themselves for the large shapes.
    if (host_block_.size() < bytes) host_block_.resize(bytes), device_block_.resize(bytes);
    host.CopyBlockToHost(host_block_.data());
    device.CopyBlockToHost(device_block_.data());
    ExpectSame(host.dtype(), host_block_.data(), device_block_.data(), bytes, what);
  }
  void ExpectSameOutputs(const TestParams& host, const TestParams& device, const std::string& what) {
    for (size_t t = 0; t < sizes_.size(); ++t) {
      const ParamType type = host.buffers[t].type;
      ExpectSame(AsDType(type), host.buffers[t].data, device.buffers[t].data, sizes_[t] * ParamTypeSize(type),
                 what + ", tensor " + std::to_string(t));
    }
  }

  std::unique_ptr<Arena> Host(DType dtype) const { return NewArena(dtype, sizes_, -1); }
  std::unique_ptr<Arena> Device(DType dtype) const { return NewArena(dtype, sizes_, device_); }

  void Run(ParamMix mix, std::mt19937_64& rng);

 private:
  void Updates(Arena& host, Arena& device, ParamMix mix, std::mt19937_64& rng);
  void Reads(const Arena& host, const Arena& device, std::mt19937_64& rng);
  void Writes(Arena& host, Arena& device, std::mt19937_64& rng);
  void Casts(const Arena& host, const Arena& device);

  const CpuContext& cpu_;
  std::vector<uint8_t> host_block_, device_block_;
  DType dtype_;
  std::vector<size_t> sizes_;
  int device_;
};

void Case::Run(ParamMix mix, std::mt19937_64& rng) {
  const std::string how = ParamMixName(mix);
  std::unique_ptr<Arena> host = Host(dtype_), device = Device(dtype_);
  ExpectSameBlocks(*host, *device, how + ": a new arena is zeros");
  const TestParams start = MakeParams(sizes_, mix, false, rng);
  host->CopyFromParams(cpu_, start.buffers);
  device->CopyFromParams(cpu_, start.buffers);
  ExpectSameBlocks(*host, *device, how + ": copy from params");
  Updates(*host, *device, mix, rng);
  TestParams out_host = MakeOutputs(sizes_, mix), out_device = MakeOutputs(sizes_, mix);
  host->CopyToParams(cpu_, out_host.buffers);
  device->CopyToParams(cpu_, out_device.buffers);
  ExpectSameOutputs(out_host, out_device, how + ": copy to params");
  Expect(host->CountNonFinite(cpu_) == device->CountNonFinite(cpu_), how + ": count non-finite");
  Reads(*host, *device, rng);
  Casts(*host, *device);
  Writes(*host, *device, rng);
}

// Every description the kernels distinguish: decays inside (0, 1) and both exact end points, each
// non-finite policy, both roundings (stochastic with a new seed and update index each time), from
// parameters without and with NaN and infinities. The counts each call returns must agree too.
void Case::Updates(Arena& host, Arena& device, ParamMix mix, std::mt19937_64& rng) {
  const TestParams clean = MakeParams(sizes_, mix, false, rng), dirty = MakeParams(sizes_, mix, true, rng);
  const std::string how = ParamMixName(mix);
  uint64_t update_index = 0;
  for (double decay : {0.9, 0.999, 0.0, 1.0, 0.5}) {
    for (NonFinitePolicy policy : {NonFinitePolicy::kPropagate, NonFinitePolicy::kSkipUpdate, NonFinitePolicy::kSkipElement}) {
      for (Rounding rounding : {Rounding::kNearest, Rounding::kStochastic}) {
        for (const TestParams* params : {&clean, &dirty}) {
          const UpdateDescription u{decay, policy, rounding, rng(), update_index++ * 7919};
          const std::string what = how + ": update decay " + std::to_string(decay) + " policy " +
                                   std::to_string(static_cast<int>(policy)) + " rounding " +
                                   std::to_string(static_cast<int>(rounding)) + (params == &dirty ? " non-finite" : "");
          const size_t a = host.Update(cpu_, params->buffers, u);
          const size_t b = device.Update(cpu_, params->buffers, u);
          Expect(a == b, what + ": returned " + std::to_string(a) + " (host) vs " + std::to_string(b) + " (device)");
          ExpectSameBlocks(host, device, what);
        }
      }
    }
    // Propagated NaNs would stay for good: start the next decay from finite shadows again.
    host.CopyFromParams(cpu_, clean.buffers);
    device.CopyFromParams(cpu_, clean.buffers);
  }
  // Leave some NaN and infinite shadows for the counts, reads and casts that follow.
  const UpdateDescription u{0.75, NonFinitePolicy::kPropagate, Rounding::kNearest, 0, 0};
  host.Update(cpu_, dirty.buffers, u);
  device.Update(cpu_, dirty.buffers, u);
  ExpectSameBlocks(host, device, how + ": update with non-finite parameters, propagated");
}

void Case::Reads(const Arena& host, const Arena& device, std::mt19937_64& rng) {
  (void)rng;
  for (size_t t = 0; t < sizes_.size(); ++t) {
    const std::string tensor = "tensor " + std::to_string(t);
    const size_t bytes = sizes_[t] * DTypeSize(dtype_);
    std::vector<uint8_t> h(bytes + 1, 0xAB), d(bytes + 1, 0xCD);
    host.ReadTensorBytes(t, h.data());
    device.ReadTensorBytes(t, d.data());
    ExpectSame(dtype_, h.data(), d.data(), bytes, "read tensor bytes, " + tensor);
    Expect(d[bytes] == 0xCD, "read tensor bytes writes no further than the tensor, " + tensor);
    for (ParamType type : {ParamType::kFloat32, ParamType::kFloat64}) {
      std::vector<uint64_t> hv(sizes_[t] + 1, ~0ull), dv(sizes_[t] + 1, ~0ull);
      host.ReadTensor(cpu_, t, {hv.data(), type});
      device.ReadTensor(cpu_, t, {dv.data(), type});
      ExpectSame(AsDType(type), hv.data(), dv.data(), sizes_[t] * ParamTypeSize(type),
                 std::string("read tensor as ") + DTypeName(AsDType(type)) + ", " + tensor);
    }
  }
}

// Raw bytes into the first, a middle and the last tensor (any bit pattern: NaNs, subnormals).
void Case::Writes(Arena& host, Arena& device, std::mt19937_64& rng) {
  if (sizes_.empty()) return;
  for (size_t t : {size_t{0}, sizes_.size() / 2, sizes_.size() - 1}) {
    std::vector<uint8_t> bytes(sizes_[t] * DTypeSize(dtype_));
    for (uint8_t& b : bytes) b = static_cast<uint8_t>(rng());
    host.WriteTensorBytes(t, bytes.data());
    device.WriteTensorBytes(t, bytes.data());
  }
  ExpectSameBlocks(host, device, "write tensor bytes");
  Expect(host.CountNonFinite(cpu_) == device.CountNonFinite(cpu_), "count non-finite after raw writes");
}

// Casts on the device (same device, any dtype), and moves between host and device (same dtype):
// what ema.to({ dtype }) and ema.to({ device }) run.
void Case::Casts(const Arena& host, const Arena& device) {
  for (int to_index = 0; to_index < kNumDTypes; ++to_index) {
    const DType to = static_cast<DType>(to_index);
    const std::string name = std::string(DTypeName(dtype_)) + " to " + DTypeName(to);
    std::unique_ptr<Arena> host_to = Host(to), device_to = Device(to);
    host_to->CopyFrom(cpu_, host);
    device_to->CopyFrom(cpu_, device);
    ExpectSameBlocks(*host_to, *device_to, "cast " + name);
    if (to == dtype_) {
      std::unique_ptr<Arena> uploaded = Device(to), downloaded = Host(to);
      uploaded->CopyFrom(cpu_, host);
      downloaded->CopyFrom(cpu_, device);
      ExpectSameBlocks(host, *uploaded, "move host to device");
      ExpectSameBlocks(host, *downloaded, "move device to host");
    } else if (device_ >= 0) {
      // A cast and a move at once is refused (the addon never asks for one), changing nothing.
      bool refused = false;
      try {
        device_to->CopyFrom(cpu_, host);
      } catch (const std::invalid_argument&) {
        refused = true;
      }
      Expect(refused, "cast and move at once (" + name + ", host to device) throws invalid_argument");
      ExpectSameBlocks(*host_to, *device_to, "a refused copy changes nothing");
    }
  }
}

}  // namespace

void CheckArenas(const CpuContext& cpu, const ArenaCheckOptions& options, CheckLog& log) {
  std::mt19937_64 rng(20261203);
  for (const Shape& shape : Shapes(rng)) {
    if (shape.large && options.quick) continue;
    for (int d = 0; d < kNumDTypes; ++d) {
      const DType dtype = static_cast<DType>(d);
      const std::string name = std::string("arena ops  ") + DTypeName(dtype) + "  " + shape.name;
      const auto start = std::chrono::steady_clock::now();
      Case c(cpu, dtype, shape.sizes, options.device);
      try {
        for (ParamMix mix : shape.mixes) c.Run(mix, rng);
      } catch (const std::exception& e) {
        c.failures.push_back(std::string("threw: ") + e.what());
      }
      const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
      log.Report(name, c.failures, std::to_string(c.comparisons) + " comparisons, " + std::to_string(static_cast<long>(ms)) + " ms");
    }
  }
}

void CheckComparison(CheckLog& log) {
  std::vector<std::string> failures;
  // Per dtype: a value, the same with its lowest bit flipped, two NaNs of other sign and payload.
  struct Probe { DType dtype; uint64_t value, flipped, nan_a, nan_b; };
  const Probe probes[] = {
      {DType::kFloat32, 0x3eaaaaabu, 0x3eaaaaaau, 0x7fc00000u, 0xffc00001u},
      {DType::kFloat64, 0x3fd5555555555555ull, 0x3fd5555555555554ull, 0x7ff8000000000000ull, 0xfff8000000000123ull},
      {DType::kFloat16, 0x3555u, 0x3554u, 0x7e00u, 0xfe01u},
      {DType::kBFloat16, 0x3eabu, 0x3eaau, 0x7fc0u, 0xffc1u},
  };
  for (const Probe& p : probes) {
    const size_t n = DTypeSize(p.dtype);
    auto differs = [&](uint64_t a, uint64_t b) {
      std::vector<uint8_t> x(3 * n, 0), y(3 * n, 0);  // the odd element in the middle
      std::memcpy(x.data() + n, &a, n);  // little-endian: the low bytes hold the value
      std::memcpy(y.data() + n, &b, n);
      return !CompareValues(p.dtype, x.data(), y.data(), x.size()).empty();
    };
    const std::string name = DTypeName(p.dtype);
    if (differs(p.value, p.value)) failures.push_back(name + ": equal values differ");
    if (!differs(p.value, p.flipped)) failures.push_back(name + ": a one-bit difference went unseen");
    if (differs(p.nan_a, p.nan_b)) failures.push_back(name + ": two NaNs differ");
    if (!differs(p.nan_a, p.value)) failures.push_back(name + ": NaN against a number went unseen");
  }
  log.Report("comparison sees a one-bit difference, takes any NaN for any NaN (negative control)", failures);
}

void CheckPipelinedPlan(CheckLog& log) {
  const std::vector<size_t> sizes = PipelinedSizes();
  ArenaLayout layout(DType::kFloat32, sizes);
  std::vector<std::string> failures;
  std::string detail;
  for (ParamType type : {ParamType::kFloat32, ParamType::kFloat64}) {
    ParamList probe(sizes.size(), ParamBuffer{nullptr, type});
    const size_t capacity = ChooseStagingBytes(layout, probe);
    const size_t chunks = PlanStaging(layout, probe, capacity).chunks.size();
    if (capacity != kMaxStagingBytes || chunks < 3) {
      failures.push_back(std::string(DTypeName(AsDType(type))) + ": " + std::to_string(chunks) + " chunks of " +
                         std::to_string(capacity) + " bytes (expected the largest staging buffer, several chunks)");
    }
    detail += (detail.empty() ? "" : ", ") + std::to_string(chunks) + " chunks of " + std::to_string(capacity >> 20) +
              " MiB for " + DTypeName(AsDType(type)) + " params";
  }
  log.Report("pipelined upload shape takes several staging chunks", failures, detail);
}

}  // namespace model_ema
