// Float32 bit patterns through every instruction set's conversion loops, against the baseline
// loops (the scalar functions of float_bits.h, which the tests check against the float64
// reference): float32 to bfloat16 and float16, and every 16-bit pattern back. The hand-written
// vector loops (cpu_vector_loops.h) use instructions that differ from the reference on a few inputs
// and redo those lanes; this finds any input they miss.
//
// Usage: conversion_parity_test [full]. Without `full` (seconds): both signs of every exponent,
// with every mantissa where the instructions and the reference part ways (MantissaStride); `full`:
// all 2^32 patterns (minutes). Prints "ok: N patterns, 0 mismatches" and exits 0, or names mismatches
// and exits 1.
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "cpu_kernels.h"

using namespace model_ema;

namespace {

// Every mantissa: zero and subnormals (bfloat16's flush), float16's overflow boundary (65504 to
// 65536) and infinities and NaNs (payloads). Every 7th: float16's subnormal range and its edges.
uint32_t MantissaStride(uint32_t exponent) {
  if (exponent == 0 || exponent == 0x8E || exponent == 0xFF) return 1;
  if ((exponent >= 0x65 && exponent <= 0x72) || exponent == 1 || exponent == 0x8D || exponent == 0x8F) return 7;
  return 61;
}

struct Check {
  const CpuKernelTable& reference = baseline::Kernels();
  std::vector<const CpuKernelTable*> tables;
  size_t patterns = 0;
  size_t mismatches = 0;

  void Compare(DType from, DType to, const void* in, size_t n, size_t out_size) {
    std::vector<uint8_t> want(n * out_size), got(n * out_size);
    reference.convert(from, to, in, want.data(), n);
    for (const CpuKernelTable* table : tables) {
      // Shifted by one element too, so that vectors start at every other alignment.
      for (size_t shift : {size_t{0}, size_t{1}}) {
        if (n <= shift) continue;
        std::memset(got.data(), 0xA5, got.size());
        const size_t in_size = DTypeSize(from);
        table->convert(from, to, static_cast<const uint8_t*>(in) + shift * in_size, got.data() + shift * out_size,
                       n - shift);
        if (std::memcmp(got.data() + shift * out_size, want.data() + shift * out_size, (n - shift) * out_size) == 0) {
          continue;
        }
        for (size_t i = shift; i < n; ++i) {
          if (std::memcmp(&got[i * out_size], &want[i * out_size], out_size) == 0) continue;
          if (++mismatches <= 20) {
            uint32_t bits = 0;
            std::memcpy(&bits, static_cast<const uint8_t*>(in) + i * in_size, in_size);
            std::printf("mismatch: %s %s to %s, input bits 0x%08x\n", table->isa, DTypeName(from), DTypeName(to),
                        bits);
          }
        }
      }
    }
  }

  void Floats(const std::vector<uint32_t>& bits) {
    patterns += bits.size();
    Compare(DType::kFloat32, DType::kBFloat16, bits.data(), bits.size(), 2);
    Compare(DType::kFloat32, DType::kFloat16, bits.data(), bits.size(), 2);
  }
};

}  // namespace

int main(int argc, char** argv) {
  const bool full = argc > 1 && std::string(argv[1]) == "full";
  Check check;
  for (const char* isa : {"avx2", "avx512", "avx512bf16"}) {
    const CpuKernelTable& table = SelectCpuKernels(isa);
    if (std::strcmp(table.isa, isa) == 0) check.tables.push_back(&table);  // what this CPU has
  }
  std::printf("instruction sets checked:");
  for (const CpuKernelTable* table : check.tables) std::printf(" %s", table->isa);
  std::printf("\n");

  std::vector<uint16_t> all16(65536);
  for (uint32_t i = 0; i < 65536; ++i) all16[i] = static_cast<uint16_t>(i);
  check.patterns += 2 * all16.size();
  check.Compare(DType::kBFloat16, DType::kFloat32, all16.data(), all16.size(), 4);
  check.Compare(DType::kFloat16, DType::kFloat32, all16.data(), all16.size(), 4);

  std::vector<uint32_t> bits;
  const size_t kChunk = size_t{1} << 22;
  bits.reserve(kChunk);
  for (uint32_t top = 0; top < 512; ++top) {  // sign and exponent
    const uint32_t stride = full ? 1 : MantissaStride(top & 0xFF);
    for (uint32_t mantissa = 0; mantissa < (1u << 23); mantissa += stride) {
      bits.push_back(top << 23 | mantissa);
      if (bits.size() == kChunk) {
        check.Floats(bits);
        bits.clear();
      }
    }
  }
  check.Floats(bits);
  std::printf("%s: %zu patterns, %zu mismatches\n", check.mismatches == 0 ? "ok" : "FAILED", check.patterns,
              check.mismatches);
  return check.mismatches == 0 ? 0 : 1;
}
