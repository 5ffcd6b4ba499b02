#include "args.h"

#include <cmath>
#include <cstring>
#include <stdexcept>

namespace model_ema {

namespace {

constexpr double kMaxSafeInteger = 9007199254740991.0;

const char* TypedArrayName(napi_typedarray_type type) {
  switch (type) {
    case napi_int8_array: return "Int8Array";
    case napi_uint8_array: return "Uint8Array";
    case napi_uint8_clamped_array: return "Uint8ClampedArray";
    case napi_int16_array: return "Int16Array";
    case napi_uint16_array: return "Uint16Array";
    case napi_int32_array: return "Int32Array";
    case napi_uint32_array: return "Uint32Array";
    case napi_float32_array: return "Float32Array";
    case napi_float64_array: return "Float64Array";
    case napi_bigint64_array: return "BigInt64Array";
    case napi_biguint64_array: return "BigUint64Array";
    default: return "TypedArray";
  }
  return "TypedArray";
}

std::string FormatNumber(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "Infinity" : "-Infinity";
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.17g", v);
  return buffer;
}

}  // namespace

std::string DescribeValue(const Napi::Value& value) {
  switch (value.Type()) {
    case napi_undefined: return "undefined";
    case napi_null: return "null";
    case napi_boolean: return value.As<Napi::Boolean>().Value() ? "true" : "false";
    case napi_number: return FormatNumber(value.As<Napi::Number>().DoubleValue());
    case napi_string: {
      std::string s = value.As<Napi::String>().Utf8Value();
      if (s.size() > 40) s = s.substr(0, 40) + "...";
      return "'" + s + "'";
    }
    case napi_symbol: return "a symbol";
    case napi_bigint: return "a bigint";
    case napi_function: return "a function";
    case napi_external: return "an external";
    case napi_object: break;
  }
  if (value.IsTypedArray()) {
    auto array = value.As<Napi::TypedArray>();
    return std::string(TypedArrayName(array.TypedArrayType())) + "(" +
           std::to_string(array.ElementLength()) + ")";
  }
  if (value.IsArray()) return "an array of length " + std::to_string(value.As<Napi::Array>().Length());
  if (value.IsArrayBuffer()) return "an ArrayBuffer";
  return "an object";
}

void ThrowTypeError(Napi::Env env, const std::string& expected, const std::string& arg,
                    const Napi::Value& received) {
  throw Napi::TypeError::New(env, "Expected " + expected + " for " + arg + " but received " +
                                      DescribeValue(received));
}

void ThrowRangeError(Napi::Env env, const std::string& expected, const std::string& arg,
                     const std::string& received) {
  throw Napi::RangeError::New(env, "Expected " + expected + " for " + arg + " but received " +
                                       received);
}

DType ParseDType(const Napi::Value& value, const char* arg) {
  const char* expected = "one of 'float32', 'float64', 'float16', 'bfloat16'";
  if (!value.IsString()) ThrowTypeError(value.Env(), expected, arg, value);
  std::string name = value.As<Napi::String>().Utf8Value();
  for (int i = 0; i < kNumDTypes; ++i) {
    if (name == DTypeName(static_cast<DType>(i))) return static_cast<DType>(i);
  }
  ThrowRangeError(value.Env(), expected, arg, DescribeValue(value));
}

Napi::String DTypeToString(Napi::Env env, DType dtype) {
  return Napi::String::New(env, DTypeName(dtype));
}

double ParseDecay(const Napi::Value& value, const char* arg) {
  const char* expected = "a number in [0, 1]";
  if (!value.IsNumber()) ThrowTypeError(value.Env(), expected, arg, value);
  double decay = value.As<Napi::Number>().DoubleValue();
  if (!(decay >= 0.0 && decay <= 1.0)) ThrowRangeError(value.Env(), expected, arg, FormatNumber(decay));
  return decay;
}

namespace {

// An optional string field that must be one of `names` (index into them; `fallback` when undefined).
template <size_t N>
size_t ParseChoice(const Napi::Value& value, const char* arg, const char* const (&names)[N], size_t fallback) {
  if (value.IsUndefined()) return fallback;
  // Built only for an error: this runs on every update.
  auto expected = [&] {
    std::string text = "one of";
    for (size_t i = 0; i < N; ++i) text += std::string(i == 0 ? " '" : ", '") + names[i] + "'";
    return text;
  };
  if (!value.IsString()) ThrowTypeError(value.Env(), expected(), arg, value);
  char text[32];
  size_t length = 0;
  NAPI_THROW_IF_FAILED(value.Env(), napi_get_value_string_utf8(value.Env(), value, text, sizeof text, &length), 0);
  for (size_t i = 0; i < N; ++i) {
    if (std::strcmp(text, names[i]) == 0 && length == std::strlen(names[i])) return i;
  }
  ThrowRangeError(value.Env(), expected(), arg, DescribeValue(value));
}

uint64_t ParseOptionalInteger(const Napi::Value& value, const char* arg) {
  return value.IsUndefined() ? 0 : static_cast<uint64_t>(ParseIndex(value, arg, SIZE_MAX));
}

}  // namespace

namespace {

// A packed field: an integer code below `limit`, or (limit 0) a safe non-negative integer.
uint64_t PackedInteger(Napi::Env env, double v, const char* field, uint64_t limit) {
  if (!(v >= 0 && v <= kMaxSafeInteger && std::floor(v) == v) || (limit != 0 && v >= static_cast<double>(limit))) {
    ThrowRangeError(env, limit != 0 ? "an integer code below " + std::to_string(limit) : std::string("a non-negative integer"),
                    std::string("description.") + field, FormatNumber(v));
  }
  return static_cast<uint64_t>(v);
}

// The packed form: Float64Array [decay, nonFinite code, rounding code, seed, updateIndex], read with
// one Node-API call and checked field by field like the object form.
UpdateDescription ParsePackedDescription(Napi::Env env, const Napi::Value& value, napi_typedarray_type type,
                                         size_t length, const void* data, const char* arg) {
  if (type != napi_float64_array || length != kPackedDescriptionLength) {
    ThrowTypeError(env, "an object such as { decay: 0.999 }, or a packed Float64Array(5)", arg, value);
  }
  double fields[kPackedDescriptionLength];
  std::memcpy(fields, data, sizeof fields);  // the array may be unaligned within its buffer
  UpdateDescription u;
  if (!(fields[0] >= 0.0 && fields[0] <= 1.0)) ThrowRangeError(env, "a number in [0, 1]", "description.decay", FormatNumber(fields[0]));
  u.decay = fields[0];
  u.non_finite = static_cast<NonFinitePolicy>(PackedInteger(env, fields[1], "nonFinite", 3));
  u.rounding = static_cast<Rounding>(PackedInteger(env, fields[2], "rounding", 2));
  u.seed = PackedInteger(env, fields[3], "seed", 0);
  u.update_index = PackedInteger(env, fields[4], "updateIndex", 0);
  return u;
}

}  // namespace

UpdateDescription ParseUpdateDescription(const Napi::Value& value, const char* arg) {
  Napi::Env env = value.Env();
  napi_typedarray_type type;
  size_t length;
  void* data;
  // One call tells a typed array (the packed form) from anything else (napi_invalid_arg).
  const napi_status status = napi_get_typedarray_info(env, value, &type, &length, &data, nullptr, nullptr);
  if (status == napi_ok) return ParsePackedDescription(env, value, type, length, data, arg);
  if (status != napi_invalid_arg) NAPI_THROW_IF_FAILED(env, status, UpdateDescription{});
  if (!value.IsObject()) ThrowTypeError(env, "an object such as { decay: 0.999 }", arg, value);
  const Napi::Object fields = value.As<Napi::Object>();
  static const char* const kPolicies[] = {"propagate", "skip-update", "skip-element"};
  static const char* const kRoundings[] = {"nearest", "stochastic"};
  UpdateDescription u;
  u.decay = ParseDecay(fields.Get("decay"), "decay");
  u.non_finite = static_cast<NonFinitePolicy>(ParseChoice(fields.Get("nonFinite"), "nonFinite", kPolicies, 0));
  u.rounding = static_cast<Rounding>(ParseChoice(fields.Get("rounding"), "rounding", kRoundings, 0));
  u.seed = ParseOptionalInteger(fields.Get("seed"), "seed");
  u.update_index = ParseOptionalInteger(fields.Get("updateIndex"), "updateIndex");
  return u;
}

size_t ParseIndex(const Napi::Value& value, const char* arg, size_t limit) {
  const char* expected = "a non-negative integer";
  if (!value.IsNumber()) ThrowTypeError(value.Env(), expected, arg, value);
  double v = value.As<Napi::Number>().DoubleValue();
  if (!(v >= 0 && v <= kMaxSafeInteger && std::floor(v) == v)) {
    ThrowRangeError(value.Env(), expected, arg, FormatNumber(v));
  }
  if (limit != SIZE_MAX && v >= static_cast<double>(limit)) {
    ThrowRangeError(value.Env(), "an integer below " + std::to_string(limit), arg, FormatNumber(v));
  }
  return static_cast<size_t>(v);
}

std::vector<size_t> ParseSizes(const Napi::Value& value, const char* arg) {
  if (!value.IsArray()) ThrowTypeError(value.Env(), "an array of element counts", arg, value);
  auto array = value.As<Napi::Array>();
  std::vector<size_t> sizes;
  for (uint32_t i = 0; i < array.Length(); ++i) {
    std::string name = std::string(arg) + "[" + std::to_string(i) + "]";
    sizes.push_back(ParseIndex(array.Get(i), name.c_str(), SIZE_MAX));
  }
  return sizes;
}

int ParseDevice(const Napi::Value& value, const char* arg, bool optional) {
  if (value.IsNull() || (optional && value.IsUndefined())) return -1;
  const char* expected = "a CUDA device index (a non-negative integer) or null for host memory";
  if (!value.IsNumber()) ThrowTypeError(value.Env(), expected, arg, value);
  double v = value.As<Napi::Number>().DoubleValue();
  if (!(v >= 0 && v <= 1 << 20 && std::floor(v) == v)) ThrowRangeError(value.Env(), expected, arg, FormatNumber(v));
  return static_cast<int>(v);
}

std::vector<Napi::Value> ParamItems(const Napi::Value& value, const char* arg, size_t count) {
  Napi::Env env = value.Env();
  if (!value.IsArray()) ThrowTypeError(env, "an array of Float32Array or Float64Array", arg, value);
  auto array = value.As<Napi::Array>();
  const uint32_t length = array.Length();
  if (length != count) {
    ThrowRangeError(env, std::to_string(count) + " parameters", arg, std::to_string(length));
  }
  std::vector<Napi::Value> items;
  items.reserve(length);
  for (uint32_t i = 0; i < length; ++i) items.push_back(array.Get(i));  // may run getters
  return items;
}

ParamList ParseParams(Napi::Env env, const std::vector<Napi::Value>& items, const char* arg,
                      const ArenaLayout& arena) {
  if (items.size() != arena.tensor_count()) {
    throw std::logic_error("ParseParams: item count does not match the arena");  // ParamItems checked
  }
  // One Node-API call per item on the way through (this runs on every update); the argument's
  // name is built only for an error.
  auto name = [&](size_t i) { return std::string(arg) + "[" + std::to_string(i) + "]"; };
  ParamList params(items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    const Napi::Value& item = items[i];
    napi_typedarray_type type;
    size_t length;
    void* data;
    // napi_invalid_arg: not a typed array (nothing is thrown for that; other failures are real).
    const napi_status status = napi_get_typedarray_info(env, item, &type, &length, &data, nullptr, nullptr);
    if (status == napi_invalid_arg) ThrowTypeError(env, "a Float32Array or Float64Array", name(i), item);
    NAPI_THROW_IF_FAILED(env, status, {});
    if (type != napi_float32_array && type != napi_float64_array) {
      ThrowTypeError(env, "a Float32Array or Float64Array", name(i), item);
    }
    if (length != arena.size(i)) {
      napi_value buffer;
      bool detached = false;
      NAPI_THROW_IF_FAILED(env, napi_get_typedarray_info(env, item, nullptr, nullptr, nullptr, &buffer, nullptr), {});
      NAPI_THROW_IF_FAILED(env, napi_is_detached_arraybuffer(env, buffer, &detached), {});
      ThrowRangeError(env, std::to_string(arena.size(i)) + " elements", name(i),
                      std::to_string(length) + (detached ? " (its buffer was detached)" : ""));
    }
    params[i] = {data, type == napi_float64_array ? ParamType::kFloat64 : ParamType::kFloat32};
  }
  return params;
}

void CheckSharedMemory(Napi::Env env, const std::vector<Napi::Value>& items, const char* arg) {
  for (size_t i = 0; i < items.size(); ++i) {
    napi_value buffer;
    NAPI_THROW_IF_FAILED(env, napi_get_typedarray_info(env, items[i], nullptr, nullptr, nullptr, &buffer, nullptr), );
    // Node-API tells ArrayBuffers apart; a typed array's buffer that is not one is a SharedArrayBuffer.
    bool is_array_buffer = false;
    NAPI_THROW_IF_FAILED(env, napi_is_arraybuffer(env, buffer, &is_array_buffer), );
    if (is_array_buffer) {
      ThrowTypeError(env, "a typed array over a SharedArrayBuffer (an ArrayBuffer can be transferred or resized while a worker reads it)",
                     std::string(arg) + "[" + std::to_string(i) + "]", items[i]);
    }
  }
}

}  // namespace model_ema
