// Argument checks for the native entry points. The TypeScript facade checks the same things first;
// these exist so that a direct call into the binding can never crash the process. Every error
// names the argument and what was received, in one shape: "Expected X for Y but received Z".
#pragma once

#include <napi.h>

#include <string>
#include <vector>

#include "../kernels/arena.h"
#include "../kernels/dtype.h"
#include "../kernels/update_description.h"

namespace model_ema {

// A short description of a JS value for error messages: "NaN", "'float8'", "Int32Array(4)", ...
std::string DescribeValue(const Napi::Value& value);

[[noreturn]] void ThrowTypeError(Napi::Env env, const std::string& expected, const std::string& arg,
                                 const Napi::Value& received);
[[noreturn]] void ThrowRangeError(Napi::Env env, const std::string& expected,
                                  const std::string& arg, const std::string& received);

DType ParseDType(const Napi::Value& value, const char* arg);
Napi::String DTypeToString(Napi::Env env, DType dtype);

// A number in [0, 1] (NaN and infinities are RangeErrors).
double ParseDecay(const Napi::Value& value, const char* arg);

// The update description, a plain object such as { decay: 0.999 }: the one place where its
// fields are read and checked, each error naming the field. Reading a field can run JS (a getter,
// a Proxy), so callers read it in phase 1 of the parameters (see ParamItems). It may also come
// packed, as a Float64Array [decay, nonFinite, rounding, seed, updateIndex] with the choices as
// their index in the enums of update_description.h: what the facade passes on every update, read
// with one Node-API call instead of a property lookup per field (binding.d.ts: PackedDescription).
constexpr size_t kPackedDescriptionLength = 5;
UpdateDescription ParseUpdateDescription(const Napi::Value& value, const char* arg);

// A non-negative safe integer, below `limit` when one is given.
size_t ParseIndex(const Napi::Value& value, const char* arg, size_t limit);

// Tensor sizes: an array of non-negative safe integers.
std::vector<size_t> ParseSizes(const Napi::Value& value, const char* arg);

// A CUDA device index, or -1 for host memory (null; undefined too when `optional`).
int ParseDevice(const Napi::Value& value, const char* arg, bool optional);

// Parameters are read in two phases because reading an array's items can run JS (index getters),
// and that JS may dispose the arena, start an async update on it or detach a buffer already
// looked at. Phase 1: the `count` items of a JS array (getters run here). The caller then checks
// its own state again (ShadowArena::Usable) before phase 2.
std::vector<Napi::Value> ParamItems(const Napi::Value& value, const char* arg, size_t count);

// Phase 2, where no JS runs: each item a Float32Array/Float64Array with its tensor's length.
// Nothing is kept: the pointers are valid only until JS runs again.
ParamList ParseParams(Napi::Env env, const std::vector<Napi::Value>& items, const char* arg,
                      const ArenaLayout& arena);
// For updateAsync in place: every item (already checked by ParseParams) is a view of a
// SharedArrayBuffer, whose memory nothing can take away while a worker thread reads it (it cannot
// be detached, transferred or shrunk). TypeError naming the item otherwise.
void CheckSharedMemory(Napi::Env env, const std::vector<Napi::Value>& items, const char* arg);

}  // namespace model_ema
