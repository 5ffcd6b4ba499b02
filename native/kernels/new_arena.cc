// NewArena, in an object file of its own: programs that link the kernels library but not the CUDA
// half (the host emulation test) use the rest of the arena code without pulling in the device arena.
#include "arena.h"
#include "cuda/device_arena.h"
#include "host_arena.h"

namespace model_ema {

std::unique_ptr<Arena> NewArena(DType dtype, std::vector<size_t> sizes, int device) {
  if (device < 0) return std::make_unique<HostArena>(dtype, std::move(sizes));
  return NewDeviceArena(dtype, std::move(sizes), device);
}

}  // namespace model_ema
