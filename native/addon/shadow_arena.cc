#include "shadow_arena.h"

#include <cstring>
#include <new>
#include <stdexcept>

#include "args.h"
#include "async_update.h"
#include "async_write.h"
#include "snapshot_copy.h"

namespace model_ema {

namespace {

// Marks objects made by this constructor; checked before every unwrap.
constexpr napi_type_tag kShadowArenaTag = {0x6d6f64656c2d656dULL, 0x612d736861646f77ULL};

// Runs make(), an arena allocation, turning its failures into JS errors: sizes that overflow and
// host memory that cannot be had are RangeErrors; an unusable device (no CUDA in this build, no
// driver, no such device) and CUDA failures (out of memory) are plain Errors whose message names
// the device and the reason.
template <typename Make>
auto Allocate(Napi::Env env, DType dtype, const Make& make) -> decltype(make()) {
  try {
    return make();
  } catch (const std::bad_alloc&) {
    throw Napi::RangeError::New(env, "Cannot allocate a " + std::string(DTypeName(dtype)) +
                                         " arena of that size: out of memory");
  } catch (const std::length_error&) {
    throw Napi::RangeError::New(env, "Expected tensor sizes whose total fits in memory for sizes");
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, e.what());
  }
}

Napi::Value DeviceValue(Napi::Env env, int device) {
  return device < 0 ? env.Null() : Napi::Number::New(env, device);
}

}  // namespace

Napi::Function ShadowArena::Define(Napi::Env env) {
  return DefineClass(
      env, "ShadowArena",
      {
          InstanceMethod<&ShadowArena::Update>("update"),
          InstanceMethod<&ShadowArena::UpdateAsync>("updateAsync"),
          InstanceMethod<&ShadowArena::UpdateTracks>("updateTracks"),
          InstanceMethod<&ShadowArena::UpdateTracksAsync>("updateTracksAsync"),
          InstanceMethod<&ShadowArena::CopyFrom>("copyFrom"),
          InstanceMethod<&ShadowArena::CopyTo>("copyTo"),
          InstanceMethod<&ShadowArena::CopyFromArena>("copyFromArena"),
          InstanceMethod<&ShadowArena::Read>("read"),
          InstanceMethod<&ShadowArena::ReadBytes>("readBytes"),
          InstanceMethod<&ShadowArena::WriteBytes>("writeBytes"),
          InstanceMethod<&ShadowArena::ReadBytesInto>("readBytesInto"),
          InstanceMethod<&ShadowArena::WriteBytesAt>("writeBytesAt"),
          InstanceMethod<&ShadowArena::WriteBytesAtAsync>("writeBytesAtAsync"),
          InstanceMethod<&ShadowArena::Cast>("cast"),
          InstanceMethod<&ShadowArena::ToDevice>("toDevice"),
          InstanceMethod<&ShadowArena::CountNonFinite>("countNonFinite"),
          InstanceMethod<&ShadowArena::Dispose>("dispose"),
          InstanceAccessor<&ShadowArena::GetDType>("dtype"),
          InstanceAccessor<&ShadowArena::GetDevice>("device"),
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

ShadowArena* ShadowArena::FromValue(const Napi::Value& value, const std::string& arg) {
  Napi::Env env = value.Env();
  bool tagged = false;
  if (value.IsObject()) {
    NAPI_THROW_IF_FAILED(env, napi_check_object_type_tag(env, value, &kShadowArenaTag, &tagged), nullptr);
  }
  if (!tagged) ThrowTypeError(env, "a ShadowArena", arg, value);
  return Napi::ObjectWrap<ShadowArena>::Unwrap(value.As<Napi::Object>());
}

ShadowArena::ShadowArena(const Napi::CallbackInfo& info)
    : Napi::ObjectWrap<ShadowArena>(info), addon_(info.Env().GetInstanceData<AddonData>()) {
  Napi::Env env = info.Env();
  DType dtype = ParseDType(info[0], "dtype");
  std::vector<size_t> sizes = ParseSizes(info[1], "sizes");
  device_ = ParseDevice(info[2], "device", true);
  arena_ = Allocate(env, dtype, [&] { return std::shared_ptr<Arena>(NewArena(dtype, std::move(sizes), device_)); });
  threads_ = addon_->pool->threads();
  // Device memory is reported too: it is not V8's heap, but it lets the GC see what an arena that
  // was dropped without dispose() still holds, and collect it sooner.
  reported_bytes_ = static_cast<int64_t>(arena_->layout().byte_length());
  Napi::MemoryManagement::AdjustExternalMemory(env, reported_bytes_);
  NAPI_THROW_IF_FAILED_VOID(env, napi_type_tag_object(env, info.This(), &kShadowArenaTag));
}

ShadowArena::~ShadowArena() { ReleaseMemory(); }

void ShadowArena::ReleaseMemory() {
  arena_.reset();  // frees the memory now, unless async work still holds it
  snapshot_.reset();
  if (reported_bytes_ != 0) {
    Napi::MemoryManagement::AdjustExternalMemory(Env(), -reported_bytes_);
    reported_bytes_ = 0;
  }
}

const ArenaLayout* ShadowArena::Layout() const { return arena_ ? &arena_->layout() : nullptr; }

const ArenaLayout& ShadowArena::Usable(Napi::Env env, const char* method, bool writing) {
  const ArenaLayout* layout = Layout();
  if (layout == nullptr) {
    throw Napi::Error::New(env, std::string("Cannot call ShadowArena.") + method +
                                    "(): the arena has been disposed");
  }
  if (busy_) {
    throw Napi::Error::New(env, std::string("Cannot call ShadowArena.") + method +
                                    "() while an updateAsync() on this arena is running; await it first");
  }
  if (writes_in_flight_ > 0 && !writing) {
    throw Napi::Error::New(env, std::string("Cannot call ShadowArena.") + method +
                                    "() while a writeBytesAtAsync() on this arena is running; await it first");
  }
  return *layout;
}

template <typename ReadMore>
ParamList ShadowArena::Params(const Napi::CallbackInfo& info, const char* method, const ReadMore& read_more) {
  std::vector<Napi::Value> items = ParamItems(info[0], "params", Usable(info.Env(), method).tensor_count());
  read_more();
  const ArenaLayout& layout = Usable(info.Env(), method);  // again: the getters ran JS
  return ParseParams(info.Env(), items, "params", layout);
}

CpuContext ShadowArena::Cpu() const {
  return {addon_->kernels, addon_->pool.get(), threads_, addon_->parallel_threshold};
}

Napi::Object ShadowArena::CopyAs(Napi::Env env, DType dtype, int device) {
  Napi::Object result = addon_->arena_constructor.New({DTypeToString(env, dtype), SizesArray(env), DeviceValue(env, device)});
  ShadowArena* target = Unwrap(result);
  target->threads_ = threads_;
  try {
    target->arena_->CopyFrom(Cpu(), *arena_);
  } catch (...) {
    target->ReleaseMemory();  // device memory should not wait for the GC
    throw;
  }
  return result;
}

Napi::Value ShadowArena::Update(const Napi::CallbackInfo& info) {
  UpdateDescription description;
  ParamList params = Params(info, "update", [&] { description = ParseUpdateDescription(info[1], "description"); });
  return Napi::Number::New(info.Env(), static_cast<double>(arena_->Update(Cpu(), params, description)));
}

Napi::Value ShadowArena::UpdateAsync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::vector<Napi::Value> items = ParamItems(info[0], "params", Usable(env, "updateAsync").tensor_count());
  const UpdateDescription description = ParseUpdateDescription(info[1], "description");
  const bool in_place = ParseInPlace(info[2]);
  const ArenaLayout& layout = Usable(env, "updateAsync");  // again: the getters ran JS
  ParamList params = ParseParams(env, items, "params", layout);
  return QueueAsyncUpdate(env, {{info.This().As<Napi::Object>(), this, arena_, description}}, false, items, params, in_place);
}

bool ShadowArena::ParseInPlace(const Napi::Value& value) {
  if (!value.IsUndefined() && !value.IsBoolean()) ThrowTypeError(value.Env(), "a boolean", "inPlace", value);
  return value.IsBoolean() && value.As<Napi::Boolean>().Value();
}

Napi::Value ShadowArena::QueueAsyncUpdate(Napi::Env env, std::vector<AsyncTarget> targets, bool several,
                                          const std::vector<Napi::Value>& items, ParamList params, bool in_place) {
  std::vector<Napi::Value> pinned;
  if (in_place) {
    // Read where they are, on the worker thread: only memory nothing can take away meanwhile.
    CheckSharedMemory(env, items, "params");
    pinned = items;
  } else {
    // Snapshot the parameters now: once this returns, the caller may change, detach or transfer its
    // buffers (the next optimizer step, say) without affecting the average being computed.
    bool any_f64 = false;
    for (const ParamBuffer& p : params) any_f64 |= p.type == ParamType::kFloat64;
    DType snapshot_dtype = any_f64 ? DType::kFloat64 : DType::kFloat32;
    if (!snapshot_ || snapshot_->dtype() != snapshot_dtype) {
      int64_t old_bytes = snapshot_ ? static_cast<int64_t>(snapshot_->layout().byte_length()) : 0;
      snapshot_ = Allocate(env, snapshot_dtype,
                           [&] { return std::make_shared<HostArena>(snapshot_dtype, arena_->layout().sizes()); });
      int64_t delta = static_cast<int64_t>(snapshot_->layout().byte_length()) - old_bytes;
      reported_bytes_ += delta;
      Napi::MemoryManagement::AdjustExternalMemory(env, delta);
    }
    SnapshotParams(Cpu(), params, *snapshot_);
    params = snapshot_->AsParams();
  }
  for (const AsyncTarget& target : targets) target.owner->busy_ = true;
  auto* work = new AsyncUpdate(env, std::move(targets), several, in_place ? nullptr : snapshot_, std::move(params),
                               pinned, addon_->pool, Cpu());
  Napi::Promise promise = work->Promise();
  work->Queue();
  return promise;
}

Napi::Value ShadowArena::CopyFrom(const Napi::CallbackInfo& info) {
  arena_->CopyFromParams(Cpu(), Params(info, "copyFrom", [] {}));
  return info.Env().Undefined();
}

Napi::Value ShadowArena::CopyTo(const Napi::CallbackInfo& info) {
  arena_->CopyToParams(Cpu(), Params(info, "copyTo", [] {}));
  return info.Env().Undefined();
}

// this = source, into memory this arena already has: save() reuses its copy from one save to the
// next this way, because fresh pages cost far more than the copy.
Napi::Value ShadowArena::CopyFromArena(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const ArenaLayout& layout = Usable(env, "copyFromArena");
  ShadowArena* source = FromValue(info[0], "source");
  if (source == this) return env.Undefined();
  const ArenaLayout& from = source->Usable(env, "copyFromArena");
  if (from.sizes() != layout.sizes()) {
    ThrowRangeError(env, "an arena of the same tensor sizes", "source",
                    "one of " + std::to_string(from.tensor_count()) + " tensors, " + std::to_string(from.numel()) + " elements");
  }
  if (from.dtype() != layout.dtype() && source->device_ != device_) {
    ThrowRangeError(env, "an arena of the same dtype or on the same device", "source",
                    std::string(DTypeName(from.dtype())) + " on another device");
  }
  arena_->CopyFrom(Cpu(), *source->arena_);
  return env.Undefined();
}

Napi::Value ShadowArena::Read(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const ArenaLayout& layout = Usable(env, "read");
  size_t t = ParseIndex(info[0], "index", layout.tensor_count());
  // Float64Array for float64 storage, Float32Array otherwise: both hold every value exactly.
  const bool wide = layout.dtype() == DType::kFloat64;
  Napi::TypedArray out = wide ? Napi::TypedArray(Napi::Float64Array::New(env, layout.size(t)))
                              : Napi::TypedArray(Napi::Float32Array::New(env, layout.size(t)));
  void* out_data = static_cast<uint8_t*>(out.ArrayBuffer().Data()) + out.ByteOffset();
  arena_->ReadTensor(Cpu(), t, {out_data, wide ? ParamType::kFloat64 : ParamType::kFloat32});
  return out;
}

Napi::Value ShadowArena::ReadBytes(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const ArenaLayout& layout = Usable(env, "readBytes");
  size_t t = ParseIndex(info[0], "index", layout.tensor_count());
  auto out = Napi::Uint8Array::New(env, layout.size(t) * DTypeSize(layout.dtype()));
  arena_->ReadTensorBytes(t, out.Data());
  return out;
}

Napi::Value ShadowArena::WriteBytes(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const ArenaLayout& layout = Usable(env, "writeBytes");
  size_t t = ParseIndex(info[0], "index", layout.tensor_count());
  if (!info[1].IsTypedArray() || info[1].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    ThrowTypeError(env, "a Uint8Array", "bytes", info[1]);
  }
  auto bytes = info[1].As<Napi::Uint8Array>();
  size_t expected = layout.size(t) * DTypeSize(layout.dtype());
  if (bytes.ByteLength() != expected) {
    ThrowRangeError(env, std::to_string(expected) + " bytes", "bytes", std::to_string(bytes.ByteLength()));
  }
  arena_->WriteTensorBytes(t, bytes.Data());
  return env.Undefined();
}

ShadowArena::ByteRange ShadowArena::TensorByteRange(const Napi::CallbackInfo& info, const ArenaLayout& layout, size_t t,
                                                         const char* bytes_arg) {
  Napi::Env env = info.Env();
  const size_t size = layout.size(t);
  const size_t element = DTypeSize(layout.dtype());
  const size_t offset = ParseIndex(info[1], "elementOffset", SIZE_MAX);
  if (offset > size) {
    ThrowRangeError(env, "at most " + std::to_string(size) + " (tensor " + std::to_string(t) + "'s element count)",
                    "elementOffset", std::to_string(offset));
  }
  const Napi::Value value = info[2];
  if (!value.IsTypedArray() || value.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    ThrowTypeError(env, "a Uint8Array", bytes_arg, value);
  }
  size_t length = 0;
  void* data = nullptr;
  napi_value buffer;
  NAPI_THROW_IF_FAILED(env, napi_get_typedarray_info(env, value, nullptr, &length, &data, &buffer, nullptr), {});
  bool detached = false;
  NAPI_THROW_IF_FAILED(env, napi_is_detached_arraybuffer(env, buffer, &detached), {});
  if (detached) ThrowTypeError(env, "a Uint8Array whose buffer is not detached", bytes_arg, value);
  if (length % element != 0) {
    ThrowRangeError(env, "a multiple of " + std::to_string(element) + " bytes (whole " + DTypeName(layout.dtype()) + " elements)",
                    bytes_arg, std::to_string(length) + " bytes");
  }
  if (length / element > size - offset) {
    ThrowRangeError(env, "at most " + std::to_string((size - offset) * element) + " bytes (tensor " + std::to_string(t) + " has " +
                             std::to_string(size) + " elements, from elementOffset " + std::to_string(offset) + ")",
                    bytes_arg, std::to_string(length) + " bytes");
  }
  return {offset * element, length, static_cast<uint8_t*>(data)};
}

// Part of a tensor into `bytes`, which is reused: save() streams a copy through one buffer.
Napi::Value ShadowArena::ReadBytesInto(const Napi::CallbackInfo& info) {
  const ArenaLayout& layout = Usable(info.Env(), "readBytesInto");
  const size_t t = ParseIndex(info[0], "index", layout.tensor_count());
  const ByteRange range = TensorByteRange(info, layout, t, "out");
  arena_->ReadTensorRange(t, range.offset, range.length, range.data);
  return info.Env().Undefined();
}

// `bytes` into part of a tensor: load() streams a file into a new arena chunk by chunk.
Napi::Value ShadowArena::WriteBytesAt(const Napi::CallbackInfo& info) {
  const ArenaLayout& layout = Usable(info.Env(), "writeBytesAt");
  const size_t t = ParseIndex(info[0], "index", layout.tensor_count());
  const ByteRange range = TensorByteRange(info, layout, t, "bytes");
  arena_->WriteTensorRange(t, range.offset, range.length, range.data);
  return info.Env().Undefined();
}

// writeBytesAt on a libuv thread. The bytes are read in place, so only SharedArrayBuffer memory is
// taken (an ArrayBuffer could be detached or transferred while the copy runs); it is kept alive
// until the promise settles, and must not be written meanwhile.
Napi::Value ShadowArena::WriteBytesAtAsync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const ArenaLayout& layout = Usable(env, "writeBytesAtAsync", true);
  const size_t t = ParseIndex(info[0], "index", layout.tensor_count());
  const ByteRange range = TensorByteRange(info, layout, t, "bytes");
  napi_value buffer;
  NAPI_THROW_IF_FAILED(env, napi_get_typedarray_info(env, info[2], nullptr, nullptr, nullptr, &buffer, nullptr), {});
  bool is_array_buffer = false;  // Node-API tells ArrayBuffers apart; any other buffer is a SharedArrayBuffer
  NAPI_THROW_IF_FAILED(env, napi_is_arraybuffer(env, buffer, &is_array_buffer), {});
  if (is_array_buffer) {
    ThrowTypeError(env, "a Uint8Array over a SharedArrayBuffer (an ArrayBuffer can be detached or transferred while the copy runs)", "bytes", info[2]);
  }
  auto* work = new AsyncWrite(info.This().As<Napi::Object>(), this, arena_, write_lock_, t, range.offset, range.length, range.data, info[2]);
  Napi::Promise promise = work->Promise();
  ++writes_in_flight_;
  work->Queue();
  return promise;
}

Napi::Value ShadowArena::Cast(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Usable(env, "cast");
  DType dtype = ParseDType(info[0], "dtype");
  return CopyAs(env, dtype, device_);
}

Napi::Value ShadowArena::ToDevice(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const ArenaLayout& layout = Usable(env, "toDevice");
  int device = ParseDevice(info[0], "device", false);
  return CopyAs(env, layout.dtype(), device);  // the same padded layout: one copy of the whole block
}

Napi::Value ShadowArena::CountNonFinite(const Napi::CallbackInfo& info) {
  Usable(info.Env(), "countNonFinite");
  return Napi::Number::New(info.Env(), static_cast<double>(arena_->CountNonFinite(Cpu())));
}

Napi::Value ShadowArena::Dispose(const Napi::CallbackInfo& info) {
  if (busy_ || writes_in_flight_ > 0) {
    throw Napi::Error::New(info.Env(), std::string("Cannot dispose a ShadowArena while ") +
                                           (busy_ ? "an updateAsync()" : "a writeBytesAtAsync()") + " on it is running");
  }
  ReleaseMemory();
  return info.Env().Undefined();
}

Napi::Value ShadowArena::GetDType(const Napi::CallbackInfo& info) {
  const ArenaLayout* layout = Layout();
  if (layout == nullptr) return info.Env().Undefined();
  return DTypeToString(info.Env(), layout->dtype());
}

Napi::Value ShadowArena::GetDevice(const Napi::CallbackInfo& info) { return DeviceValue(info.Env(), device_); }

Napi::Value ShadowArena::GetSizes(const Napi::CallbackInfo& info) { return SizesArray(info.Env()); }

Napi::Array ShadowArena::SizesArray(Napi::Env env) const {
  const ArenaLayout* layout = Layout();
  if (layout == nullptr) return Napi::Array::New(env, 0);
  Napi::Array sizes = Napi::Array::New(env, layout->tensor_count());
  for (size_t t = 0; t < layout->tensor_count(); ++t) {
    sizes.Set(static_cast<uint32_t>(t), Napi::Number::New(env, static_cast<double>(layout->size(t))));
  }
  return sizes;
}

Napi::Value ShadowArena::GetNumel(const Napi::CallbackInfo& info) {
  const ArenaLayout* layout = Layout();
  return Napi::Number::New(info.Env(), layout ? static_cast<double>(layout->numel()) : 0.0);
}

Napi::Value ShadowArena::GetByteLength(const Napi::CallbackInfo& info) {
  const ArenaLayout* layout = Layout();
  return Napi::Number::New(info.Env(), layout ? static_cast<double>(layout->byte_length()) : 0.0);
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
  return Napi::Boolean::New(info.Env(), Layout() == nullptr);
}

Napi::Value ShadowArena::GetBusy(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), busy_ || writes_in_flight_ > 0);
}

}  // namespace model_ema
