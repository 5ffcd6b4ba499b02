#include "async_update.h"

#include <exception>

#include "shadow_arena.h"

namespace model_ema {

AsyncUpdate::AsyncUpdate(Napi::Env env, std::vector<AsyncTarget> targets, bool several, std::shared_ptr<HostArena> snapshot,
                         ParamList params, const std::vector<Napi::Value>& pinned, std::shared_ptr<ThreadPool> pool, CpuContext cpu)
    : Napi::AsyncWorker(env, "model-ema:updateAsync"),
      several_(several),
      snapshot_(std::move(snapshot)),
      params_(std::move(params)),
      pool_(std::move(pool)),
      cpu_(cpu),
      deferred_(Napi::Promise::Deferred::New(env)) {
  for (AsyncTarget& target : targets) {
    owners_.push_back(target.owner);
    owner_references_.push_back(Napi::Persistent(target.object));
    arenas_.push_back(target.shadows.get());
    shadows_.push_back(std::move(target.shadows));
    descriptions_.push_back(target.description);
  }
  for (const Napi::Value& array : pinned) pinned_.push_back(Napi::Persistent(array));
}

void AsyncUpdate::Execute() {
  try {
    non_finite_ = several_ ? Arena::UpdateTogether(cpu_, params_, arenas_, descriptions_)
                           : std::vector<size_t>{arenas_[0]->Update(cpu_, params_, descriptions_[0])};
  } catch (const std::exception& e) {
    SetError(e.what());
  } catch (...) {  // node-addon-api catches only std::exception: anything else would abort the process
    SetError("updateAsync failed with an unknown native exception");
  }
}

void AsyncUpdate::FinishOwners() {
  for (ShadowArena* owner : owners_) owner->FinishAsync();
}

// When a worker_thread terminates (or calls process.exit) with an update in flight, this still
// runs while its environment shuts down, and settling the promise throws: that must not escape
// as a C++ exception (it would abort the whole process); nobody is left to see the promise.
void AsyncUpdate::OnOK() {
  FinishOwners();
  try {
    if (!several_) {
      deferred_.Resolve(Napi::Number::New(Env(), static_cast<double>(non_finite_[0])));
      return;
    }
    Napi::Array counts = Napi::Array::New(Env(), non_finite_.size());
    for (size_t i = 0; i < non_finite_.size(); ++i) counts.Set(static_cast<uint32_t>(i), static_cast<double>(non_finite_[i]));
    deferred_.Resolve(counts);
  } catch (const Napi::Error&) {
  }
}

void AsyncUpdate::OnError(const Napi::Error& error) {
  FinishOwners();
  try {
    deferred_.Reject(error.Value());
  } catch (const Napi::Error&) {
  }
}

}  // namespace model_ema
