// One contiguous, owned, zero-filled block holding a tensor list in one storage dtype: the shadows of an EMA,
// or a backup of parameter values. Each tensor starts on a 64-byte boundary so that the vector
// stores of the update never straddle cache lines at a tensor's head; large tensors start half a
// page into a page (see ArenaLayout).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
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

class Arena {
 public:
  // Throws std::bad_alloc when the memory cannot be had, std::length_error when the sizes overflow.
  Arena(DType dtype, std::vector<size_t> sizes);

  const ArenaLayout& layout() const { return layout_; }
  DType dtype() const { return layout_.dtype(); }
  size_t tensor_count() const { return layout_.tensor_count(); }
  size_t size(size_t tensor) const { return layout_.size(tensor); }
  const std::vector<size_t>& sizes() const { return layout_.sizes(); }
  size_t numel() const { return layout_.numel(); }
  const std::vector<size_t>& offsets() const { return layout_.offsets(); }
  size_t byte_length() const { return layout_.byte_length(); }

  void* tensor(size_t t) { return data_ + layout_.byte_offset(t); }
  const void* tensor(size_t t) const { return data_ + layout_.byte_offset(t); }
  // The whole padded block (null when byte_length() is 0).
  void* data() { return data_; }
  const void* data() const { return data_; }

 private:
  struct Free {
    void operator()(void* p) const;
  };

  ArenaLayout layout_;
  std::unique_ptr<void, Free> allocation_;  // what calloc returned
  uint8_t* data_ = nullptr;                 // allocation_ rounded up to a page boundary
};

}  // namespace model_ema
