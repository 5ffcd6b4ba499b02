#include "device_checks.h"

#include <climits>
#include <memory>
#include <vector>

#include "../../native/kernels/cuda/device_arena.h"

namespace model_ema {

DeviceReport ProbeCuda(int device) {
  const CudaStatus status = QueryCuda();
  DeviceReport report;
  report.count = static_cast<int>(status.devices.size());
  if (!status.available) {
    report.reason = status.reason;
  } else if (device < 0 || device >= report.count) {
    report.reason = "--device " + std::to_string(device) + ": this machine has " + std::to_string(report.count) + " CUDA device(s)";
  } else {
    report.usable = true;
    report.name = status.devices[device].name;
  }
  return report;
}

void CheckBadDevices(const CpuContext& cpu, const DeviceReport& report, int device, CheckLog& log) {
  // Without a device, index 0 (report.count) is as bad as any.
  const std::vector<int> bad = {report.count, report.count + 1, 1 << 20, INT_MAX};
  for (int index : bad) {
    std::vector<std::string> failures;
    auto expect_unavailable = [&](const char* what, auto&& call) {
      try {
        call();
        failures.push_back(std::string(what) + " did not throw");
      } catch (const DeviceUnavailable& e) {
        const std::string named = "CUDA device " + std::to_string(index) + " is not available: ";
        if (std::string(e.what()).rfind(named, 0) != 0) failures.push_back(std::string(what) + ": message '" + e.what() + "'");
      } catch (const std::exception& e) {
        failures.push_back(std::string(what) + " threw something else: " + e.what());
      }
    };
    expect_unavailable("NewArena", [&] { NewArena(DType::kFloat32, {16, 3}, index); });
    expect_unavailable("QueryDeviceMemory", [&] { QueryDeviceMemory(index); });
    log.Report("bad device index " + std::to_string(index) + " throws DeviceUnavailable", failures);
  }
  if (!report.usable) return;
  // The refusals above must leave no error behind for the next CUDA call on this thread.
  std::vector<std::string> failures;
  try {
    std::unique_ptr<Arena> arena = NewArena(DType::kFloat32, {5}, device);
    std::vector<float> p = {1, 2, 3, 4, 5}, out(5, 0.f);
    arena->CopyFromParams(cpu, {{p.data(), ParamType::kFloat32}});
    arena->CopyToParams(cpu, {{out.data(), ParamType::kFloat32}});
    if (out != p) failures.push_back("values did not round-trip");
  } catch (const std::exception& e) {
    failures.push_back(std::string("threw: ") + e.what());
  }
  log.Report("device " + std::to_string(device) + " still works after the refusals", failures);
}

void CheckMemoryReturned(int device, CheckLog& log) {
  std::vector<std::string> failures;
  std::string detail;
  try {
    const size_t bytes = size_t{1} << 30;  // 256 Mi float32 shadows: far above allocator slack
    const size_t before = QueryDeviceMemory(device).free;
    size_t during = 0;
    {
      std::unique_ptr<Arena> arena = NewArena(DType::kFloat32, {bytes / 4}, device);
      during = QueryDeviceMemory(device).free;
    }
    const size_t after = QueryDeviceMemory(device).free;
    if (during > before || before - during < bytes) failures.push_back("a 1 GiB arena took only " + std::to_string(during > before ? 0 : (before - during) >> 20) + " MiB");
    if (after + (size_t{64} << 20) < before) failures.push_back(std::to_string((before - after) >> 20) + " MiB not given back");
    detail = "free " + std::to_string(before >> 20) + " -> " + std::to_string(during >> 20) + " -> " + std::to_string(after >> 20) + " MiB";
  } catch (const std::exception& e) {
    failures.push_back(std::string("threw: ") + e.what());
  }
  log.Report("a destroyed device arena gives its memory back", failures, detail);
}

}  // namespace model_ema
