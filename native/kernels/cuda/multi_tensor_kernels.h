// Launchers of the multi-tensor kernels: each queues on `stream` as many launches as the spans
// need (see chunk_tables.h) and checks every launch. They return before the work is done.
#pragma once

#include <cuda_runtime.h>

#include <vector>

#include "../dtype.h"
#include "chunk_tables.h"

namespace model_ema {

// Parameters are float32 or float64, which are storage dtypes too: every conversion (parameters
// into an arena, an arena into parameters, arena to arena) is a conversion between DTypes.
constexpr DType AsDType(ParamType type) {
  return type == ParamType::kFloat64 ? DType::kFloat64 : DType::kFloat32;
}

// span.dst: shadows of dtype `shadow`, span.src: parameters of type `param`.
void LaunchUpdate(cudaStream_t stream, DType shadow, ParamType param, const std::vector<multi_tensor::Span>& spans,
                  double one_minus_decay);
// span.dst (dtype `to`) = span.src (dtype `from`), converted.
void LaunchConvert(cudaStream_t stream, DType from, DType to, const std::vector<multi_tensor::Span>& spans);
// Adds the number of NaN and infinite values of span.src (dtype `dtype`) to *device_total.
void LaunchCountNonFinite(cudaStream_t stream, DType dtype, const std::vector<multi_tensor::Span>& spans,
                          unsigned long long* device_total);

}  // namespace model_ema
