#include "async_update.h"

#include <exception>

#include "shadow_arena.h"

namespace model_ema {

AsyncUpdate::AsyncUpdate(const Napi::Object& owner_object, ShadowArena* owner, std::shared_ptr<Arena> shadows,
                         std::shared_ptr<HostArena> snapshot, ParamList params, const std::vector<Napi::Value>& pinned,
                         std::shared_ptr<ThreadPool> pool, CpuContext cpu, UpdateDescription description)
    : Napi::AsyncWorker(owner_object.Env(), "model-ema:updateAsync"),
      owner_(owner),
      owner_reference_(Napi::Persistent(owner_object)),
      shadows_(std::move(shadows)),
      snapshot_(std::move(snapshot)),
      params_(std::move(params)),
      pool_(std::move(pool)),
      cpu_(cpu),
      description_(description),
      deferred_(Napi::Promise::Deferred::New(owner_object.Env())) {
  for (const Napi::Value& array : pinned) pinned_.push_back(Napi::Persistent(array));
}

void AsyncUpdate::Execute() {
  try {
    non_finite_ = shadows_->Update(cpu_, params_, description_);
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
    deferred_.Resolve(Napi::Number::New(Env(), static_cast<double>(non_finite_)));
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
