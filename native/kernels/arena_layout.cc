#include "arena_layout.h"

#include <cstdint>
#include <stdexcept>
#include <utility>

namespace model_ema {

ArenaLayout::ArenaLayout(DType dtype, std::vector<size_t> sizes) : dtype_(dtype), sizes_(std::move(sizes)) {
  offsets_.reserve(sizes_.size() + 1);
  size_t offset = 0;
  const size_t limit = SIZE_MAX / 8 - kAlignElements - kPageBytes;  // keeps byte_length() from overflowing
  const size_t element = DTypeSize(dtype_);
  const size_t half_page = kPageBytes / 2 / element, page = kPageBytes / element;
  for (size_t n : sizes_) {
    if (n * element >= kHalfPageFromBytes && n <= limit) {
      offset += (half_page + page - offset % page) % page;
    }
    offsets_.push_back(offset);
    if (offset > limit || n > limit - offset) throw std::length_error("arena sizes overflow");
    numel_ += n;
    offset += (n + kAlignElements - 1) / kAlignElements * kAlignElements;
  }
  offsets_.push_back(offset);
}

}  // namespace model_ema
