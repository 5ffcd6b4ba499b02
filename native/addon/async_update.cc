#include "async_update.h"

#include <exception>

#include "shadow_arena.h"

namespace model_ema {

AsyncUpdate::AsyncUpdate(const Napi::Object& owner_object, ShadowArena* owner,
                         std::shared_ptr<Arena> shadows, std::shared_ptr<DeviceArena> device_shadows,
                         std::shared_ptr<Arena> snapshot, std::shared_ptr<ThreadPool> pool,
                         CpuContext cpu, double decay)
    : Napi::AsyncWorker(owner_object.Env(), "model-ema:updateAsync"),
      owner_(owner),
      owner_reference_(Napi::Persistent(owner_object)),
      shadows_(std::move(shadows)),
      device_shadows_(std::move(device_shadows)),
      snapshot_(std::move(snapshot)),
      pool_(std::move(pool)),
      cpu_(cpu),
      decay_(decay),
      deferred_(Napi::Promise::Deferred::New(owner_object.Env())) {}

void AsyncUpdate::Execute() {
  try {
    const ParamType type =
        snapshot_->dtype() == DType::kFloat64 ? ParamType::kFloat64 : ParamType::kFloat32;
    std::vector<ParamBuffer> params;
    params.reserve(snapshot_->tensor_count());
    for (size_t t = 0; t < snapshot_->tensor_count(); ++t) params.push_back({snapshot_->tensor(t), type});
    if (device_shadows_) {
      device_shadows_->Update(cpu_, params, decay_);
    } else {
      UpdateShadows(cpu_, *shadows_, params, decay_);
    }
  } catch (const std::exception& e) {
    SetError(e.what());
  } catch (...) {  // node-addon-api catches only std::exception: anything else would abort the process
    SetError("updateAsync failed with an unknown native exception");
  }
}

// When a worker_thread terminates (or calls process.exit) with an update in flight, this still
// runs while its environment shuts down, and settling the promise throws: that must not escape
// as a C++ exception (it would abort the whole process); nobody is left to see the promise.
void AsyncUpdate::OnOK() {
  owner_->FinishAsync();
  try {
    deferred_.Resolve(Env().Undefined());
  } catch (const Napi::Error&) {
  }
}

void AsyncUpdate::OnError(const Napi::Error& error) {
  owner_->FinishAsync();
  try {
    deferred_.Reject(error.Value());
  } catch (const Napi::Error&) {
  }
}

}  // namespace model_ema
