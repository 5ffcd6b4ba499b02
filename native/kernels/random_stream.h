// The random bits of stochastic rounding: a counter-based generator, so that an element's bits
// are a pure function of (seed, update index, tensor index, element index) and come out the same
// whichever thread, SIMD path or device computes them, in whatever order.
//
// Per update and tensor a 64-bit key is derived once (splitmix64's finaliser, scalar); per element
// one 32-bit integer hash of the element index xor the key, which vectorises (two 32-bit
// multiplies per element). Indices of 2^32 and beyond mix their high half into the key, so that
// the CPU loops can hoist it out of a run of 2^32 elements (KeyOfBlock) and CUDA can compute it
// per element (At): both give the same bits.
#pragma once

#include <cstdint>

#include "host_device.h"

namespace model_ema {

// splitmix64's output function (with its increment, so that 0 does not map to 0).
MODEL_EMA_HD_INLINE uint64_t Mix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// A 32-bit integer hash with low bias (xorshift-multiply, two rounds): a bijection, so distinct
// indices never share bits within one key.
MODEL_EMA_HD_INLINE uint32_t Mix32(uint32_t x) {
  x ^= x >> 16;
  x *= 0x7FEB352Du;
  x ^= x >> 15;
  x *= 0x846CA68Bu;
  x ^= x >> 16;
  return x;
}

struct RandomStream {
  uint32_t key = 0;       // elements [0, 2^32) of the tensor
  uint32_t key_high = 0;  // mixed with the high half of larger indices

  // The stream of one tensor in one update.
  static MODEL_EMA_HD_INLINE RandomStream Of(uint64_t seed, uint64_t update_index, uint64_t tensor) {
    const uint64_t k = Mix64(Mix64(Mix64(seed) ^ update_index) ^ tensor);
    return {static_cast<uint32_t>(k), static_cast<uint32_t>(k >> 32)};
  }

  // The key of the elements whose index has this high half.
  MODEL_EMA_HD_INLINE uint32_t KeyOfBlock(uint32_t high) const { return high == 0 ? key : key ^ Mix32(high ^ key_high); }
  static MODEL_EMA_HD_INLINE uint32_t Bits(uint32_t block_key, uint32_t low) { return Mix32(low ^ block_key); }
  MODEL_EMA_HD_INLINE uint32_t At(uint64_t index) const {
    return Bits(KeyOfBlock(static_cast<uint32_t>(index >> 32)), static_cast<uint32_t>(index));
  }
};

}  // namespace model_ema
