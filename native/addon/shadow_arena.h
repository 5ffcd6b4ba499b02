// The JS-visible arena object: one Arena of shadows (or backups) plus the entry points that run
// the whole-arena kernels over a list of parameter buffers.
#pragma once

#include <napi.h>

#include <memory>

#include "../kernels/arena.h"
#include "../kernels/cpu_ops.h"
#include "addon_data.h"

namespace model_ema {

class ShadowArena : public Napi::ObjectWrap<ShadowArena> {
 public:
  static Napi::Function Define(Napi::Env env);
  // Hides ObjectWrap::Unwrap so that every method checks the type tag first: a `this` that is not
  // a ShadowArena (another addon's wrapped object included) is a TypeError, never a wild cast.
  static ShadowArena* Unwrap(Napi::Object object);

  explicit ShadowArena(const Napi::CallbackInfo& info);
  ~ShadowArena() override;

  // Called by the async update when its work is done.
  void FinishAsync() { busy_ = false; }

 private:
  Napi::Value Update(const Napi::CallbackInfo& info);
  Napi::Value UpdateAsync(const Napi::CallbackInfo& info);
  Napi::Value CopyFrom(const Napi::CallbackInfo& info);
  Napi::Value CopyTo(const Napi::CallbackInfo& info);
  Napi::Value Read(const Napi::CallbackInfo& info);
  Napi::Value ReadBytes(const Napi::CallbackInfo& info);
  Napi::Value WriteBytes(const Napi::CallbackInfo& info);
  Napi::Value Cast(const Napi::CallbackInfo& info);
  Napi::Value CountNonFinite(const Napi::CallbackInfo& info);
  Napi::Value Dispose(const Napi::CallbackInfo& info);

  Napi::Value GetDType(const Napi::CallbackInfo& info);
  Napi::Value GetSizes(const Napi::CallbackInfo& info);
  Napi::Value GetNumel(const Napi::CallbackInfo& info);
  Napi::Value GetByteLength(const Napi::CallbackInfo& info);
  Napi::Value GetThreads(const Napi::CallbackInfo& info);
  void SetThreads(const Napi::CallbackInfo& info, const Napi::Value& value);
  Napi::Value GetDisposed(const Napi::CallbackInfo& info);
  Napi::Value GetBusy(const Napi::CallbackInfo& info);

  // The arena, after checking it is neither disposed nor in use by async work.
  Arena& Usable(Napi::Env env, const char* method);
  CpuContext Cpu() const;
  void ReleaseMemory();

  AddonData* addon_;
  std::shared_ptr<Arena> arena_;  // null once disposed
  // Parameters snapshotted by updateAsync, reused across calls (fresh pages are expensive).
  std::shared_ptr<Arena> staging_;
  int64_t reported_bytes_ = 0;    // external memory reported to V8
  unsigned threads_ = 1;
  bool busy_ = false;
};

}  // namespace model_ema
