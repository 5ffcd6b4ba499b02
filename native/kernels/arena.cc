#include "arena.h"

#include <cstdlib>
#include <new>
#include <stdexcept>

namespace model_ema {

namespace {
constexpr size_t kAlignBytes = 64;
}  // namespace

ArenaLayout::ArenaLayout(DType dtype, std::vector<size_t> sizes) : dtype_(dtype), sizes_(std::move(sizes)) {
  offsets_.reserve(sizes_.size() + 1);
  size_t offset = 0;
  const size_t limit = SIZE_MAX / 8 - kAlignElements;  // keeps byte_length() from overflowing
  for (size_t n : sizes_) {
    offsets_.push_back(offset);
    if (n > limit - offset) throw std::length_error("arena sizes overflow");
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
    void* p = std::calloc(bytes + kAlignBytes, 1);
    if (p == nullptr) throw std::bad_alloc();
    allocation_.reset(p);
    uintptr_t address = reinterpret_cast<uintptr_t>(p);
    data_ = reinterpret_cast<uint8_t*>((address + kAlignBytes - 1) / kAlignBytes * kAlignBytes);
  }
}

}  // namespace model_ema
