// Element types the kernels know: storage dtypes of an arena, and the two parameter dtypes.
#pragma once

#include <cstddef>
#include <cstdint>

namespace model_ema {

// Storage dtype of a shadow arena. The values are indices into the kernel tables.
enum class DType : uint8_t { kFloat32 = 0, kFloat64 = 1, kFloat16 = 2, kBFloat16 = 3 };
constexpr int kNumDTypes = 4;

// Element type of a parameter buffer (a Float32Array or a Float64Array on the JS side).
enum class ParamType : uint8_t { kFloat32 = 0, kFloat64 = 1 };
constexpr int kNumParamTypes = 2;

constexpr size_t DTypeSize(DType t) {
  return t == DType::kFloat64 ? 8 : t == DType::kFloat32 ? 4 : 2;
}

constexpr size_t ParamTypeSize(ParamType t) { return t == ParamType::kFloat64 ? 8 : 4; }

// Parameters are float32 or float64, which are storage dtypes too: every copy between parameters
// and an arena is a conversion between two DTypes.
constexpr DType AsDType(ParamType t) { return t == ParamType::kFloat64 ? DType::kFloat64 : DType::kFloat32; }

constexpr const char* DTypeName(DType t) {
  switch (t) {
    case DType::kFloat32: return "float32";
    case DType::kFloat64: return "float64";
    case DType::kFloat16: return "float16";
    case DType::kBFloat16: return "bfloat16";
  }
  return "unknown";
}

// Half-precision values travel as raw bit patterns; distinct types keep the two formats apart.
struct Half { uint16_t bits; };
struct BFloat16 { uint16_t bits; };

}  // namespace model_ema
