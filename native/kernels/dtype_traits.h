// The one mapping from the run-time element-type enums to C++ element types. Every dispatch goes
// through it: the CPU loops of each instruction set, the CUDA launches and the host emulation
// test, so a new storage dtype is one case here (plus its Storage<T> in element_ops.h).
#pragma once

#include <type_traits>

#include "dtype.h"

namespace model_ema {

// Calls f(T{}) with T the element type of `dtype`: float, double, Half or BFloat16.
template <typename F>
inline void VisitDType(DType dtype, F&& f) {
  switch (dtype) {
    case DType::kFloat32: return f(float{});
    case DType::kFloat64: return f(double{});
    case DType::kFloat16: return f(Half{});
    case DType::kBFloat16: return f(BFloat16{});
  }
}

// The same for a parameter's type. Through VisitDType, but instantiating `f` only for the types a
// parameter can have (float, double): half the template instances of a [storage][parameter] table.
template <typename F>
inline void VisitParamType(ParamType type, F&& f) {
  VisitDType(AsDType(type), [&](auto element) {
    using T = decltype(element);
    if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>) f(element);
  });
}

}  // namespace model_ema
