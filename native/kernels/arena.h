// One arena: an owned, zero-filled block holding a list of tensors in one storage dtype (the
// shadows of an EMA, or a backup of parameter values), in host memory (HostArena) or in one CUDA
// device's memory (the device arena of cuda/device_arena.cc). The addon holds arenas only through
// this interface and never asks which kind it has; parameters are host buffers for both kinds.
//
// Every method returns only once its work, device work included, has finished. Not thread-safe:
// the addon serialises calls per arena (its busy flag).
#pragma once

#include <cstddef>
#include <memory>
#include <utility>
#include <vector>

#include "arena_layout.h"
#include "cpu_kernels.h"
#include "dtype.h"
#include "update_description.h"

namespace model_ema {

// A parameter buffer as the addon sees it: a typed array's data and element type. Its length has
// been checked against the arena's tensor size before any arena method runs.
struct ParamBuffer {
  void* data;
  ParamType type;
};
using ParamList = std::vector<ParamBuffer>;

class Arena {
 public:
  virtual ~Arena() = default;
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;

  const ArenaLayout& layout() const { return layout_; }
  DType dtype() const { return layout_.dtype(); }
  int device() const { return device_; }  // the CUDA device index, -1 for host memory

  // shadows = UpdateShadow(shadows, params) as `u` describes, every tensor in one pass. `cpu` runs
  // the loops of a host arena, and packs the parameters into pinned buffers for a device arena.
  // Returns the number of parameter elements that are NaN or infinite, when the policy looks
  // (0 for kPropagate); with kSkipUpdate, a count above 0 means nothing was written.
  size_t Update(const CpuContext& cpu, const ParamList& params, UpdateDescription u);
  // The tracks of EmaTracks: several arenas of one layout, device and dtype, each with its own
  // description, updated from one read of the parameters. Returns, per arena, what Update would
  // have returned for it; the result is the same bytes as one Update per arena. Throws
  // std::invalid_argument when the arenas differ in layout, dtype or device.
  static std::vector<size_t> UpdateTogether(const CpuContext& cpu, const ParamList& params,
                                            const std::vector<Arena*>& arenas, std::vector<UpdateDescription> us);
  // arena = params (rounded to the storage dtype).
  virtual void CopyFromParams(const CpuContext& cpu, const ParamList& params) = 0;
  // params = arena (converted to each parameter's type).
  virtual void CopyToParams(const CpuContext& cpu, const ParamList& params) const = 0;
  // arena = source, which has the same sizes and either this dtype (on any device: one copy of
  // the whole block, exact) or this device (any dtype: converted). Throws std::invalid_argument
  // otherwise.
  virtual void CopyFrom(const CpuContext& cpu, const Arena& source) = 0;
  virtual size_t CountNonFinite(const CpuContext& cpu) const = 0;

  // One tensor converted into a host buffer of a parameter type.
  virtual void ReadTensor(const CpuContext& cpu, size_t tensor, ParamBuffer out) const = 0;
  // One tensor's raw storage bytes (size x dtype size) to or from host memory.
  void ReadTensorBytes(size_t tensor, void* out) const { ReadTensorRange(tensor, 0, TensorByteLength(tensor), out); }
  void WriteTensorBytes(size_t tensor, const void* bytes) { WriteTensorRange(tensor, 0, TensorByteLength(tensor), bytes); }
  // `length` raw bytes of one tensor from byte `offset` on, to or from host memory: a checkpoint
  // streams a large tensor through a small buffer this way. The caller checked the range.
  virtual void ReadTensorRange(size_t tensor, size_t offset, size_t length, void* out) const = 0;
  virtual void WriteTensorRange(size_t tensor, size_t offset, size_t length, const void* bytes) = 0;
  size_t TensorByteLength(size_t tensor) const { return layout_.size(tensor) * DTypeSize(layout_.dtype()); }
  // The whole padded block (layout().byte_length() bytes) into host memory.
  virtual void CopyBlockToHost(void* out) const = 0;
  // The block's address, in the memory of device() (null when the block is empty).
  virtual const void* block() const = 0;

 protected:
  Arena(ArenaLayout layout, int device) : layout_(std::move(layout)), device_(device) {}
  // The update proper, returning the parameter elements kSkipElement left out; Update has already
  // dealt with the rule that changes nothing and with kSkipUpdate.
  virtual size_t UpdateShadows(const CpuContext& cpu, const ParamList& params, UpdateDescription u) = 0;
  // UpdateShadows for several arenas of this one's kind and layout (this one among them), adding
  // each one's skipped elements to skipped[i]. By default one pass per arena; the host arena fuses
  // them so that each parameter is read from memory once.
  virtual void UpdateShadowsTogether(const CpuContext& cpu, const ParamList& params, const std::vector<Arena*>& arenas,
                                     const std::vector<UpdateDescription>& us, std::vector<size_t>& skipped);
  // What CopyFrom promises of its source, checked (std::invalid_argument).
  void CheckCopySource(const Arena& source) const;

 private:
  ArenaLayout layout_;
  int device_;
};

// A zero-filled arena in host memory (device < 0) or on a CUDA device. Throws std::length_error
// when the sizes overflow, std::bad_alloc when host memory cannot be had, DeviceUnavailable
// (cuda/device_arena.h) when the device cannot be used, a CUDA error when its memory cannot be had.
std::unique_ptr<Arena> NewArena(DType dtype, std::vector<size_t> sizes, int device);

}  // namespace model_ema
