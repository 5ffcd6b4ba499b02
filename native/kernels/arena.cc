#include "arena.h"

#include <cstdlib>
#include <new>
#include <stdexcept>

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

void Arena::Free::operator()(void* p) const { std::free(p); }

Arena::Arena(DType dtype, std::vector<size_t> sizes) : layout_(dtype, std::move(sizes)) {
  size_t bytes = byte_length();
  if (bytes > 0) {
    // calloc rather than aligned_alloc + memset: large blocks come straight from mmap as zero pages,
    // so no page is touched here (first touches are expensive; copyFrom pays for them once).
    // Page-aligned base, so that the layout's offsets within a page are the addresses' offsets.
    const size_t page = ArenaLayout::kPageBytes;
    void* p = std::calloc(bytes + page, 1);
    if (p == nullptr) throw std::bad_alloc();
    allocation_.reset(p);
    uintptr_t address = reinterpret_cast<uintptr_t>(p);
    data_ = reinterpret_cast<uint8_t*>((address + page - 1) / page * page);
  }
}

}  // namespace model_ema
