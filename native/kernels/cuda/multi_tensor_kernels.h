// Launchers of the multi-tensor kernels: each queues on `stream` as many launches as the spans
// need (see chunk_tables.h) and checks every launch. They return before the work is done.
#pragma once

#include <cuda_runtime.h>

#include <vector>

#include "../dtype.h"
#include "../update_description.h"
#include "chunk_tables.h"

namespace model_ema {

// span.dst: shadows of dtype `shadow`, span.src: parameters of type `param`; `u` as the CPU
// loops take it (the functor is built from it in WithUpdateOp, element_ops.h). With 'skip-element',
// the count of skipped elements is added to *device_skipped (device memory).
void LaunchUpdate(cudaStream_t stream, UpdateDescription u, DType shadow, ParamType param,
                  const std::vector<multi_tensor::Span>& spans, unsigned long long* device_skipped);
// span.dst (dtype `to`) = span.src (dtype `from`), converted.
void LaunchConvert(cudaStream_t stream, DType from, DType to, const std::vector<multi_tensor::Span>& spans);
// Adds the number of NaN and infinite values of span.src (dtype `dtype`) to *device_total.
void LaunchCountNonFinite(cudaStream_t stream, DType dtype, const std::vector<multi_tensor::Span>& spans,
                          unsigned long long* device_total);

}  // namespace model_ema
