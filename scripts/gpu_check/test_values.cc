#include "test_values.h"

#include <cmath>
#include <cstdio>
#include <cstring>

namespace model_ema {

namespace {

ParamType TypeOf(ParamMix mix, size_t tensor) {
  if (mix == ParamMix::kMixed) return tensor % 2 ? ParamType::kFloat64 : ParamType::kFloat32;
  return mix == ParamMix::kFloat64 ? ParamType::kFloat64 : ParamType::kFloat32;
}

// Whether element i of a `dtype` array is NaN, from its bits.
bool IsNaN(DType dtype, const uint8_t* p, size_t i) {
  switch (dtype) {
    case DType::kFloat32: { uint32_t b; std::memcpy(&b, p + 4 * i, 4); return (b & 0x7fffffffu) > 0x7f800000u; }
    case DType::kFloat64: { uint64_t b; std::memcpy(&b, p + 8 * i, 8); return (b & ~(uint64_t{1} << 63)) > 0x7ff0000000000000ull; }
    case DType::kFloat16: { uint16_t b; std::memcpy(&b, p + 2 * i, 2); return (b & 0x7fffu) > 0x7c00u; }
    case DType::kBFloat16: { uint16_t b; std::memcpy(&b, p + 2 * i, 2); return (b & 0x7fffu) > 0x7f80u; }
  }
  return false;
}

std::string Hex(const uint8_t* p, size_t n) {
  std::string out = "0x";
  char digits[3];
  for (size_t k = n; k-- > 0;) {  // little-endian: most significant byte last
    std::snprintf(digits, sizeof digits, "%02x", p[k]);
    out += digits;
  }
  return out;
}

}  // namespace

const char* ParamMixName(ParamMix mix) {
  return mix == ParamMix::kFloat32 ? "float32 params" : mix == ParamMix::kFloat64 ? "float64 params" : "mixed params";
}

TestParams MakeParams(const std::vector<size_t>& sizes, ParamMix mix, bool non_finite, std::mt19937_64& rng) {
  TestParams p;
  std::uniform_real_distribution<double> unit(-1.0, 1.0);
  std::uniform_int_distribution<int> exponent(-30, 20);
  for (size_t t = 0; t < sizes.size(); ++t) {
    const ParamType type = TypeOf(mix, t);
    p.storage.emplace_back(sizes[t] + 1);
    uint8_t* base = reinterpret_cast<uint8_t*>(p.storage.back().data());
    for (size_t i = 0; i < sizes[t]; ++i) {
      double v = unit(rng) * std::ldexp(1.0, exponent(rng));
      if (non_finite && (rng() % 500 == 0 || (i == 0 && sizes[t] >= 7))) v = (rng() % 3) == 0 ? NAN : (rng() % 2 ? INFINITY : -INFINITY);
      if (type == ParamType::kFloat32) {
        const float f = static_cast<float>(v);
        std::memcpy(base + i * 4, &f, 4);
      } else {
        std::memcpy(base + i * 8, &v, 8);
      }
    }
    p.buffers.push_back({base, type});
  }
  return p;
}

TestParams MakeOutputs(const std::vector<size_t>& sizes, ParamMix mix) {
  TestParams p;
  for (size_t t = 0; t < sizes.size(); ++t) {
    p.storage.emplace_back(sizes[t] + 1, 0x7f7f7f7f7f7f7f7full);
    p.buffers.push_back({p.storage.back().data(), TypeOf(mix, t)});
  }
  return p;
}

std::string CompareValues(DType dtype, const void* a, const void* b, size_t bytes) {
  if (bytes == 0 || std::memcmp(a, b, bytes) == 0) return "";
  const size_t size = DTypeSize(dtype);
  const auto* pa = static_cast<const uint8_t*>(a);
  const auto* pb = static_cast<const uint8_t*>(b);
  for (size_t i = 0; i < bytes / size; ++i) {
    if (std::memcmp(pa + i * size, pb + i * size, size) == 0) continue;
    if (IsNaN(dtype, pa, i) && IsNaN(dtype, pb, i)) continue;
    return std::string(DTypeName(dtype)) + " element " + std::to_string(i) + ": " + Hex(pa + i * size, size) +
           " (host) vs " + Hex(pb + i * size, size) + " (device)";
  }
  return "";
}

}  // namespace model_ema
