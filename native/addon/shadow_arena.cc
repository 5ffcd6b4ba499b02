#include "shadow_arena.h"

#include <cstring>
#include <new>
#include <stdexcept>

#include "args.h"
#include "async_update.h"

namespace model_ema {

namespace {

// Marks objects made by this constructor; checked before every unwrap.
constexpr napi_type_tag kShadowArenaTag = {0x6d6f64656c2d656dULL, 0x612d736861646f77ULL};

std::shared_ptr<Arena> AllocateArena(Napi::Env env, DType dtype, std::vector<size_t> sizes) {
  try {
    return std::make_shared<Arena>(dtype, std::move(sizes));
  } catch (const std::bad_alloc&) {
    throw Napi::RangeError::New(env, "Cannot allocate a " + std::string(DTypeName(dtype)) +
                                         " arena of that size: out of memory");
  } catch (const std::length_error&) {
    throw Napi::RangeError::New(env, "Expected tensor sizes whose total fits in memory for sizes");
  }
}

}  // namespace

Napi::Function ShadowArena::Define(Napi::Env env) {
  return DefineClass(
      env, "ShadowArena",
      {
          InstanceMethod<&ShadowArena::Update>("update"),
          InstanceMethod<&ShadowArena::UpdateAsync>("updateAsync"),
          InstanceMethod<&ShadowArena::CopyFrom>("copyFrom"),
          InstanceMethod<&ShadowArena::CopyTo>("copyTo"),
          InstanceMethod<&ShadowArena::Read>("read"),
          InstanceMethod<&ShadowArena::ReadBytes>("readBytes"),
          InstanceMethod<&ShadowArena::WriteBytes>("writeBytes"),
          InstanceMethod<&ShadowArena::Cast>("cast"),
          InstanceMethod<&ShadowArena::CountNonFinite>("countNonFinite"),
          InstanceMethod<&ShadowArena::Dispose>("dispose"),
          InstanceAccessor<&ShadowArena::GetDType>("dtype"),
          InstanceAccessor<&ShadowArena::GetSizes>("sizes"),
          InstanceAccessor<&ShadowArena::GetNumel>("numel"),
          InstanceAccessor<&ShadowArena::GetByteLength>("byteLength"),
          InstanceAccessor<&ShadowArena::GetThreads, &ShadowArena::SetThreads>("threads"),
          InstanceAccessor<&ShadowArena::GetDisposed>("disposed"),
          InstanceAccessor<&ShadowArena::GetBusy>("busy"),
      });
}

ShadowArena* ShadowArena::Unwrap(Napi::Object object) {
  Napi::Env env = object.Env();
  bool tagged = false;
  napi_valuetype type;
  NAPI_THROW_IF_FAILED(env, napi_typeof(env, object, &type), nullptr);
  if (type == napi_object) {
    NAPI_THROW_IF_FAILED(env, napi_check_object_type_tag(env, object, &kShadowArenaTag, &tagged),
                         nullptr);
  }
  if (!tagged) ThrowTypeError(env, "a ShadowArena", "this", object);
  return Napi::ObjectWrap<ShadowArena>::Unwrap(object);
}

ShadowArena::ShadowArena(const Napi::CallbackInfo& info)
    : Napi::ObjectWrap<ShadowArena>(info), addon_(info.Env().GetInstanceData<AddonData>()) {
  Napi::Env env = info.Env();
  DType dtype = ParseDType(info[0], "dtype");
  std::vector<size_t> sizes = ParseSizes(info[1], "sizes");
  arena_ = AllocateArena(env, dtype, std::move(sizes));
  threads_ = addon_->pool->threads();
  reported_bytes_ = static_cast<int64_t>(arena_->byte_length());
  Napi::MemoryManagement::AdjustExternalMemory(env, reported_bytes_);
  NAPI_THROW_IF_FAILED_VOID(env, napi_type_tag_object(env, info.This(), &kShadowArenaTag));
}

ShadowArena::~ShadowArena() { ReleaseMemory(); }

void ShadowArena::ReleaseMemory() {
  arena_.reset();
  staging_.reset();
  if (reported_bytes_ != 0) {
    Napi::MemoryManagement::AdjustExternalMemory(Env(), -reported_bytes_);
    reported_bytes_ = 0;
  }
}

Arena& ShadowArena::Usable(Napi::Env env, const char* method) {
  if (!arena_) {
    throw Napi::Error::New(env, std::string("Cannot call ShadowArena.") + method +
                                    "(): the arena has been disposed");
  }
  if (busy_) {
    throw Napi::Error::New(env, std::string("Cannot call ShadowArena.") + method +
                                    "() while an updateAsync() on this arena is running; await it first");
  }
  return *arena_;
}

CpuContext ShadowArena::Cpu() const {
  return {addon_->kernels, addon_->pool.get(), threads_, addon_->parallel_threshold};
}

Napi::Value ShadowArena::Update(const Napi::CallbackInfo& info) {
  Arena& arena = Usable(info.Env(), "update");
  std::vector<ParamBuffer> params = ParseParams(info[0], "params", arena);
  double decay = ParseDecay(info[1], "decay");
  UpdateShadows(Cpu(), arena, params, decay);
  return info.Env().Undefined();
}

Napi::Value ShadowArena::UpdateAsync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Arena& arena = Usable(env, "updateAsync");
  std::vector<ParamBuffer> params = ParseParams(info[0], "params", arena);
  double decay = ParseDecay(info[1], "decay");

  // Snapshot the parameters now: once this returns, the caller may change, detach or transfer its
  // buffers (the next optimizer step, say) without affecting the average being computed.
  bool any_f64 = false;
  for (const ParamBuffer& p : params) any_f64 |= p.type == ParamType::kFloat64;
  DType snapshot_dtype = any_f64 ? DType::kFloat64 : DType::kFloat32;
  if (!staging_ || staging_->dtype() != snapshot_dtype) {
    int64_t old_bytes = staging_ ? static_cast<int64_t>(staging_->byte_length()) : 0;
    staging_ = AllocateArena(env, snapshot_dtype, arena.sizes());
    int64_t delta = static_cast<int64_t>(staging_->byte_length()) - old_bytes;
    reported_bytes_ += delta;
    Napi::MemoryManagement::AdjustExternalMemory(env, delta);
  }
  LoadParams(Cpu(), *staging_, params);

  auto* work = new AsyncUpdate(info.This().As<Napi::Object>(), this, arena_, staging_, addon_->pool,
                               Cpu(), decay);
  Napi::Promise promise = work->Promise();
  busy_ = true;
  work->Queue();
  return promise;
}

Napi::Value ShadowArena::CopyFrom(const Napi::CallbackInfo& info) {
  Arena& arena = Usable(info.Env(), "copyFrom");
  LoadParams(Cpu(), arena, ParseParams(info[0], "params", arena));
  return info.Env().Undefined();
}

Napi::Value ShadowArena::CopyTo(const Napi::CallbackInfo& info) {
  Arena& arena = Usable(info.Env(), "copyTo");
  StoreParams(Cpu(), arena, ParseParams(info[0], "params", arena));
  return info.Env().Undefined();
}

Napi::Value ShadowArena::Read(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Arena& arena = Usable(env, "read");
  size_t t = ParseIndex(info[0], "index", arena.tensor_count());
  const CpuKernelTable& k = *addon_->kernels;
  const int sd = static_cast<int>(arena.dtype());
  if (arena.dtype() == DType::kFloat64) {
    auto out = Napi::Float64Array::New(env, arena.size(t));
    k.store_params[sd][static_cast<int>(ParamType::kFloat64)](arena.tensor(t), out.Data(), arena.size(t));
    return out;
  }
  auto out = Napi::Float32Array::New(env, arena.size(t));
  k.store_params[sd][static_cast<int>(ParamType::kFloat32)](arena.tensor(t), out.Data(), arena.size(t));
  return out;
}

Napi::Value ShadowArena::ReadBytes(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Arena& arena = Usable(env, "readBytes");
  size_t t = ParseIndex(info[0], "index", arena.tensor_count());
  size_t bytes = arena.size(t) * DTypeSize(arena.dtype());
  auto out = Napi::Uint8Array::New(env, bytes);
  if (bytes > 0) std::memcpy(out.Data(), arena.tensor(t), bytes);
  return out;
}

Napi::Value ShadowArena::WriteBytes(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Arena& arena = Usable(env, "writeBytes");
  size_t t = ParseIndex(info[0], "index", arena.tensor_count());
  if (!info[1].IsTypedArray() || info[1].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    ThrowTypeError(env, "a Uint8Array", "bytes", info[1]);
  }
  auto bytes = info[1].As<Napi::Uint8Array>();
  size_t expected = arena.size(t) * DTypeSize(arena.dtype());
  if (bytes.ByteLength() != expected) {
    ThrowRangeError(env, std::to_string(expected) + " bytes", "bytes", std::to_string(bytes.ByteLength()));
  }
  if (expected > 0) std::memcpy(arena.tensor(t), bytes.Data(), expected);
  return env.Undefined();
}

Napi::Value ShadowArena::Cast(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Arena& arena = Usable(env, "cast");
  DType dtype = ParseDType(info[0], "dtype");
  Napi::Array sizes = GetSizes(info).As<Napi::Array>();
  Napi::Object result = addon_->arena_constructor.New({DTypeToString(env, dtype), sizes});
  ShadowArena* target = Unwrap(result);
  target->threads_ = threads_;
  ConvertArena(Cpu(), arena, *target->arena_);
  return result;
}

Napi::Value ShadowArena::CountNonFinite(const Napi::CallbackInfo& info) {
  Arena& arena = Usable(info.Env(), "countNonFinite");
  return Napi::Number::New(info.Env(), static_cast<double>(model_ema::CountNonFinite(Cpu(), arena)));
}

Napi::Value ShadowArena::Dispose(const Napi::CallbackInfo& info) {
  if (busy_) {
    throw Napi::Error::New(info.Env(),
                           "Cannot dispose a ShadowArena while an updateAsync() on it is running");
  }
  ReleaseMemory();
  return info.Env().Undefined();
}

Napi::Value ShadowArena::GetDType(const Napi::CallbackInfo& info) {
  if (!arena_) return info.Env().Undefined();
  return DTypeToString(info.Env(), arena_->dtype());
}

Napi::Value ShadowArena::GetSizes(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!arena_) return Napi::Array::New(env, 0);
  Napi::Array sizes = Napi::Array::New(env, arena_->tensor_count());
  for (size_t t = 0; t < arena_->tensor_count(); ++t) {
    sizes.Set(static_cast<uint32_t>(t), Napi::Number::New(env, static_cast<double>(arena_->size(t))));
  }
  return sizes;
}

Napi::Value ShadowArena::GetNumel(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), arena_ ? static_cast<double>(arena_->numel()) : 0.0);
}

Napi::Value ShadowArena::GetByteLength(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), arena_ ? static_cast<double>(arena_->byte_length()) : 0.0);
}

Napi::Value ShadowArena::GetThreads(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), threads_);
}

void ShadowArena::SetThreads(const Napi::CallbackInfo& info, const Napi::Value& value) {
  unsigned max = addon_->pool->threads();
  size_t n = ParseIndex(value, "threads", SIZE_MAX);
  if (n < 1 || n > max) {
    ThrowRangeError(info.Env(), "an integer from 1 to " + std::to_string(max), "threads",
                    std::to_string(n));
  }
  threads_ = static_cast<unsigned>(n);
}

Napi::Value ShadowArena::GetDisposed(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), !arena_);
}

Napi::Value ShadowArena::GetBusy(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), busy_);
}

}  // namespace model_ema
