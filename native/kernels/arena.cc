#include "arena.h"

#include <cstdlib>
#include <new>
#include <stdexcept>

namespace model_ema {

namespace {
constexpr size_t kAlignBytes = 64;
// 64 bytes of the narrowest dtype; a multiple of every dtype's elements per cache line.
constexpr size_t kAlignElements = 32;
}  // namespace

void Arena::FreeAligned::operator()(uint8_t* p) const { std::free(p); }

Arena::Arena(DType dtype, std::vector<size_t> sizes) : dtype_(dtype), sizes_(std::move(sizes)) {
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
  size_t bytes = byte_length();
  if (bytes > 0) {
    void* p = std::aligned_alloc(kAlignBytes, bytes);  // bytes is a multiple of 64 by construction
    if (p == nullptr) throw std::bad_alloc();
    data_.reset(static_cast<uint8_t*>(p));
  }
}

}  // namespace model_ema
