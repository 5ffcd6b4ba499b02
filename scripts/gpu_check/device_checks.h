// What gpu_check asks of the CUDA runtime itself: which device to test, and that bad device
// indices are refused with DeviceUnavailable (no crash, no sticky CUDA error).
#pragma once

#include <string>

#include "../../native/kernels/arena.h"
#include "check_log.h"

namespace model_ema {

struct DeviceReport {
  bool usable = false;
  int count = 0;
  std::string name;    // of the device under test
  std::string reason;  // why none is usable
};
DeviceReport ProbeCuda(int device);

// Indices past the last device (and, without a usable device, every index) throw
// DeviceUnavailable from NewArena and QueryDeviceMemory; with one, a good arena still works after.
void CheckBadDevices(const CpuContext& cpu, const DeviceReport& report, int device, CheckLog& log);

// A device arena's memory goes back to the device when the arena is destroyed.
void CheckMemoryReturned(int device, CheckLog& log);

}  // namespace model_ema
