// The padded layout of an arena's block. Each tensor starts on a 64-byte boundary so that the
// vector stores of the update never straddle cache lines at a tensor's head; large tensors start
// half a page into a page (see kHalfPageFromBytes).
#pragma once

#include <cstddef>
#include <vector>

#include "dtype.h"

namespace model_ema {

// Where each tensor of a list sits in an arena's padded block. Host arenas and CUDA device arenas
// share it, so a block can move between them in one copy and both sides index it alike.
class ArenaLayout {
 public:
  // Tensor starts are multiples of this many elements: 64 bytes of the narrowest dtype, a
  // multiple of every dtype's elements per cache line (and of every 16-byte vector).
  static constexpr size_t kAlignElements = 32;
  // Large tensors start half a page past a page boundary. Large parameter buffers usually start
  // just past one (mmap'd allocations: V8's backing stores, our own), and a shadow at the same
  // offset within its page as its parameter makes every load of the parameter wait on the store
  // just made to the shadow (4K aliasing): the update then runs 30-50% slower.
  static constexpr size_t kPageBytes = 4096;
  static constexpr size_t kHalfPageFromBytes = 64 * 1024;

  // Throws std::length_error when the sizes overflow.
  ArenaLayout(DType dtype, std::vector<size_t> sizes);

  DType dtype() const { return dtype_; }
  size_t tensor_count() const { return sizes_.size(); }
  size_t size(size_t tensor) const { return sizes_[tensor]; }
  const std::vector<size_t>& sizes() const { return sizes_; }
  size_t numel() const { return numel_; }  // sum of sizes, without padding
  // Element offsets of each tensor in the padded layout, plus the total padded length at the end.
  const std::vector<size_t>& offsets() const { return offsets_; }
  size_t byte_length() const { return offsets_.back() * DTypeSize(dtype_); }
  size_t byte_offset(size_t tensor) const { return offsets_[tensor] * DTypeSize(dtype_); }

 private:
  DType dtype_;
  std::vector<size_t> sizes_;
  std::vector<size_t> offsets_;
  size_t numel_ = 0;
};

}  // namespace model_ema
