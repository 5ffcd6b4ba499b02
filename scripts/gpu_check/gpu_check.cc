// gpu_check: the CUDA path of model-ema proven on a GPU, without Node. Every operation of a
// device arena (NewArena(dtype, sizes, device) through the Arena interface, as the addon calls it)
// against a HostArena given the same inputs, bit for bit; bad device indices; then the two
// bandwidth ratios of bench/gpu.js. scripts/gpu-check.sh builds and runs it.
//
// Usage: gpu_check [--quick] [--full] [--device N] [--no-bandwidth] [--strict] [--require-gpu]
//                  [--elements N] [--tensors T] [--reps R]
//   --quick          leave out the large shapes (2^20+3 elements, the pipelined upload)
//   --full           without a GPU, run the large shapes in the dry run too (they are left out
//                    there by default: host against host, they prove little and cost CI time)
//   --no-bandwidth   skip the bandwidth ratios
//   --strict         a missed bandwidth goal is a failure too (exit 1)
//   --require-gpu    no usable GPU is a failure (exit 1), for runs on a machine that must have one
// One line per check, then the summary as the last line:
//   "gpu_check: PASS ..." (exit 0), "gpu_check: FAIL ..." (exit 1),
//   "gpu_check: NO GPU ..." (exit 0: no usable device; the checks that need none ran and passed,
//   and the arena checks ran host against host, as a dry run of this harness; exit 1 with
//   --require-gpu). Exit 2: bad usage, or --device names a device this machine does not have.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

#include "arena_checks.h"
#include "bandwidth_check.h"
#include "check_log.h"
#include "device_checks.h"

using namespace model_ema;

namespace {

struct Options {
  bool quick = false;
  bool full = false;
  bool bandwidth = true;
  bool strict = false;
  bool require_gpu = false;
  int device = 0;
  BandwidthOptions bench;
};

bool ParseCount(const char* text, long long min, long long* out) {
  char* end = nullptr;
  long long v = std::strtoll(text, &end, 10);
  if (end == text || *end != '\0' || v < min) return false;
  *out = v;
  return true;
}

bool Parse(int argc, char** argv, Options* o) {
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    long long v = 0;
    if (flag == "--quick") {
      o->quick = true;
    } else if (flag == "--full") {
      o->full = true;
    } else if (flag == "--no-bandwidth") {
      o->bandwidth = false;
    } else if (flag == "--strict") {
      o->strict = true;
    } else if (flag == "--require-gpu") {
      o->require_gpu = true;
    } else if (i + 1 < argc && flag == "--device" && ParseCount(argv[i + 1], 0, &v)) {
      o->device = static_cast<int>(v), ++i;
    } else if (i + 1 < argc && flag == "--elements" && ParseCount(argv[i + 1], 1, &v)) {
      o->bench.elements = static_cast<size_t>(v), ++i;
    } else if (i + 1 < argc && flag == "--tensors" && ParseCount(argv[i + 1], 1, &v)) {
      o->bench.tensors = static_cast<size_t>(v), ++i;
    } else if (i + 1 < argc && flag == "--reps" && ParseCount(argv[i + 1], 1, &v)) {
      o->bench.reps = static_cast<int>(v), ++i;
    } else {
      std::fprintf(stderr, "gpu_check: bad argument '%s'\nusage: gpu_check [--quick] [--full] [--device N] [--no-bandwidth] [--strict] [--require-gpu] [--elements N] [--tensors T] [--reps R]\n", argv[i]);
      return false;
    }
  }
  o->bench.device = o->device;
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  if (!Parse(argc, argv, &options)) return 2;
  // The CPU side as the addon sets it up by default: the best instruction set, one thread per
  // core, the same parallel threshold (results do not depend on either: the kernels' parity test).
  unsigned threads = std::thread::hardware_concurrency();
  if (threads == 0) threads = 1;
  ThreadPool pool(threads);
  const CpuContext cpu{&SelectCpuKernels(nullptr), &pool, threads, size_t{1} << 20};
  CheckLog log;

  const DeviceReport report = ProbeCuda(options.device);
  if (!report.usable && report.count > 0) {  // a GPU is there, but not the one asked for
    std::fprintf(stderr, "gpu_check: %s\n", report.reason.c_str());
    return 2;
  }
  if (report.usable) {
    std::printf("gpu_check: CUDA device %d of %d: %s; CPU kernels %s, %u threads\n", options.device, report.count,
                report.name.c_str(), cpu.kernels->isa, threads);
  } else {
    std::printf("gpu_check: NO usable CUDA GPU here (%s).\n"
                "gpu_check: running what needs no GPU; the arena checks run host arena against host arena\n"
                "           (a dry run of this harness: no GPU code runs).\n",
                report.reason.c_str());
  }
  std::fflush(stdout);

  CheckBadDevices(cpu, report, options.device, log);
  CheckComparison(log);
  CheckPipelinedPlan(log);
  CheckArenas(cpu, {report.usable ? options.device : -1, options.quick || (!report.usable && !options.full)}, log);
  if (report.usable) CheckMemoryReturned(options.device, log);

  std::string ratios;
  bool goals_met = true;
#ifdef MODEL_EMA_GPU_CHECK_HAS_CUDA
  if (report.usable && options.bandwidth) {
    try {
      const BandwidthRatios r = MeasureBandwidth(cpu, options.bench);
      char text[160];
      std::snprintf(text, sizeof text, "; fused/copy %.3f (goal >= %.2f), upload-fed/pinned %.3f (goal >= %.2f)",
                    r.fused_vs_copy, kFusedVsCopyGoal, r.upload_vs_pinned, kUploadVsPinnedGoal);
      ratios = text;
      goals_met = r.fused_vs_copy >= kFusedVsCopyGoal && r.upload_vs_pinned >= kUploadVsPinnedGoal;
      if (!goals_met) ratios += ", goal missed";
    } catch (const std::exception& e) {
      log.Fail("bandwidth measurement", e.what());
    }
  }
#endif

  const int failed = log.failed() + (options.strict && !goals_met ? 1 : 0);
  if (failed > 0) {
    std::printf("gpu_check: FAIL %d of %d checks failed%s\n", log.failed(), log.checks(), ratios.c_str());
    return 1;
  }
  if (!report.usable) {
    std::printf("gpu_check: NO GPU, %d checks passed without one (%s)%s\n", log.checks(), report.reason.c_str(),
                options.require_gpu ? "; --require-gpu: that is a failure" : "");
    return options.require_gpu ? 1 : 0;
  }
  std::printf("gpu_check: PASS %d checks on %s%s\n", log.checks(), report.name.c_str(), ratios.c_str());
  return 0;
}
