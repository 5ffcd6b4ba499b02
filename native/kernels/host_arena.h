// The host implementation of Arena: the block in page-aligned host memory, every operation one
// pass over it with the CPU loops of cpu_kernels.h, split over the thread pool when the arena is
// large enough for that to pay.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "arena.h"

namespace model_ema {

class HostArena final : public Arena {
 public:
  // Throws std::bad_alloc when the memory cannot be had, std::length_error when the sizes overflow.
  HostArena(DType dtype, std::vector<size_t> sizes);

  void CopyFromParams(const CpuContext& cpu, const ParamList& params) override;
  void CopyToParams(const CpuContext& cpu, const ParamList& params) const override;
  void CopyFrom(const CpuContext& cpu, const Arena& source) override;
  size_t CountNonFinite(const CpuContext& cpu) const override;
  void ReadTensor(const CpuContext& cpu, size_t tensor, ParamBuffer out) const override;
  void ReadTensorRange(size_t tensor, size_t offset, size_t length, void* out) const override;
  void WriteTensorRange(size_t tensor, size_t offset, size_t length, const void* bytes) override;
  void CopyBlockToHost(void* out) const override;
  const void* block() const override { return data_; }

  void* data() { return data_; }
  void* tensor(size_t t) { return data_ + layout().byte_offset(t); }
  const void* tensor(size_t t) const { return data_ + layout().byte_offset(t); }
  // The tensors as parameter buffers, for an arena of float32 or float64 (the parameters that
  // updateAsync snapshots, and the host emulation test's).
  ParamList AsParams();

 protected:
  size_t UpdateShadows(const CpuContext& cpu, const ParamList& params, UpdateDescription u) override;
  void UpdateShadowsTogether(const CpuContext& cpu, const ParamList& params, const std::vector<Arena*>& arenas,
                             const std::vector<UpdateDescription>& us, std::vector<size_t>& skipped) override;

 private:
  struct Free {
    void operator()(void* p) const;
  };

  std::unique_ptr<void, Free> allocation_;  // what calloc returned
  uint8_t* data_ = nullptr;                 // allocation_ rounded up to a page boundary
};

}  // namespace model_ema
