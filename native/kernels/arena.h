// One contiguous, owned, zero-filled block holding a tensor list in one storage dtype: the shadows of an EMA,
// or a backup of parameter values. Each tensor starts on a 64-byte boundary so that the vector
// stores of the update never straddle cache lines at a tensor's head.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "dtype.h"

namespace model_ema {

class Arena {
 public:
  // Throws std::bad_alloc when the memory cannot be had, std::length_error when the sizes overflow.
  Arena(DType dtype, std::vector<size_t> sizes);

  DType dtype() const { return dtype_; }
  size_t tensor_count() const { return sizes_.size(); }
  size_t size(size_t tensor) const { return sizes_[tensor]; }
  const std::vector<size_t>& sizes() const { return sizes_; }
  size_t numel() const { return numel_; }  // sum of sizes, without padding
  // Element offsets of each tensor in the padded layout, plus the total padded length at the end.
  const std::vector<size_t>& offsets() const { return offsets_; }
  size_t byte_length() const { return offsets_.back() * DTypeSize(dtype_); }

  void* tensor(size_t t) { return data_ + offsets_[t] * DTypeSize(dtype_); }
  const void* tensor(size_t t) const { return data_ + offsets_[t] * DTypeSize(dtype_); }

 private:
  struct Free {
    void operator()(void* p) const;
  };

  DType dtype_;
  std::vector<size_t> sizes_;
  std::vector<size_t> offsets_;
  size_t numel_ = 0;
  std::unique_ptr<void, Free> allocation_;  // what calloc returned
  uint8_t* data_ = nullptr;                 // allocation_ rounded up to 64 bytes
};

}  // namespace model_ema
