// Parameter values and comparisons for gpu_check.
#pragma once

#include <cstddef>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "../../native/kernels/arena.h"

namespace model_ema {

// Host parameter buffers (pageable memory, as a typed array's) that own their storage.
struct TestParams {
  std::vector<std::vector<uint64_t>> storage;  // 8-byte words: aligned for float64
  ParamList buffers;
};

// Which parameter types a list has: all float32, all float64, or alternating.
enum class ParamMix { kFloat32, kFloat64, kMixed };
const char* ParamMixName(ParamMix mix);

// Values over many magnitudes (exercising rounding into every dtype, float16's saturation and
// subnormals); `non_finite` puts a NaN or an infinity at about one element in 500 (and at element
// 0 of every tensor of 7 or more, so that small tensors have some too).
TestParams MakeParams(const std::vector<size_t>& sizes, ParamMix mix, bool non_finite, std::mt19937_64& rng);
// Parameters of the same types, every element a signalling pattern (0x7f... bytes), to be overwritten.
TestParams MakeOutputs(const std::vector<size_t>& sizes, ParamMix mix);

// "" when the `bytes` bytes at a and b hold the same `dtype` elements bit for bit, or NaN in both
// (GPUs return their canonical NaN where x86 keeps an operand's payload and sign); else where and how
// they first differ.
std::string CompareValues(DType dtype, const void* a, const void* b, size_t bytes);

}  // namespace model_ema
