// updateAsync's work item: averages the parameters into the shadows (host or device alike) on a
// libuv thread. It reads either a snapshot that it co-owns, so nothing the caller does to its
// buffers meanwhile can tear the shadows, or (in place) SharedArrayBuffer memory that it keeps
// alive through references to the typed arrays: such memory cannot be detached or shrunk.
#pragma once

#include <napi.h>

#include <memory>
#include <vector>

#include "../kernels/arena.h"
#include "../kernels/host_arena.h"
#include "../kernels/thread_pool.h"
#include "../kernels/update_description.h"

namespace model_ema {

class ShadowArena;

class AsyncUpdate : public Napi::AsyncWorker {
 public:
  // `params` points into `snapshot` (when not null) or into the typed arrays of `pinned`.
  AsyncUpdate(const Napi::Object& owner_object, ShadowArena* owner, std::shared_ptr<Arena> shadows,
              std::shared_ptr<HostArena> snapshot, ParamList params, const std::vector<Napi::Value>& pinned,
              std::shared_ptr<ThreadPool> pool, CpuContext cpu, UpdateDescription description);

  Napi::Promise Promise() const { return deferred_.Promise(); }

 protected:
  void Execute() override;
  void OnOK() override;
  void OnError(const Napi::Error& error) override;

 private:
  ShadowArena* owner_;
  Napi::ObjectReference owner_reference_;  // keeps owner_ from being collected while in flight
  std::shared_ptr<Arena> shadows_;
  std::shared_ptr<HostArena> snapshot_;    // the parameters as they were when updateAsync was called, or null
  ParamList params_;                       // what the update reads
  std::vector<Napi::Reference<Napi::Value>> pinned_;  // in place: the typed arrays read
  std::shared_ptr<ThreadPool> pool_;       // keeps cpu_.pool alive
  CpuContext cpu_;
  UpdateDescription description_;
  size_t non_finite_ = 0;                  // what Arena::Update reported, for the promise
  Napi::Promise::Deferred deferred_;
};

}  // namespace model_ema
