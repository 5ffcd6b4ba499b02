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

// One arena the work item updates, with its description (EmaTracks' updateTracksAsync has several).
struct AsyncTarget {
  Napi::Object object;  // the ShadowArena's JS object, referenced until the work settles
  ShadowArena* owner;
  std::shared_ptr<Arena> shadows;
  UpdateDescription description;
};

class AsyncUpdate : public Napi::AsyncWorker {
 public:
  // `params` points into `snapshot` (when not null) or into the typed arrays of `pinned`. The
  // promise resolves to the non-finite count of Arena::Update, or with `several` to an array of
  // them, one per target (Arena::UpdateTogether).
  AsyncUpdate(Napi::Env env, std::vector<AsyncTarget> targets, bool several, std::shared_ptr<HostArena> snapshot,
              ParamList params, const std::vector<Napi::Value>& pinned, std::shared_ptr<ThreadPool> pool, CpuContext cpu);

  Napi::Promise Promise() const { return deferred_.Promise(); }

 protected:
  void Execute() override;
  void OnOK() override;
  void OnError(const Napi::Error& error) override;

 private:
  void FinishOwners();

  std::vector<ShadowArena*> owners_;
  std::vector<Napi::ObjectReference> owner_references_;  // keep owners_ from being collected while in flight
  std::vector<Arena*> arenas_;
  std::vector<std::shared_ptr<Arena>> shadows_;          // keep arenas_ alive
  std::vector<UpdateDescription> descriptions_;
  bool several_;
  std::shared_ptr<HostArena> snapshot_;    // the parameters as they were when updateAsync was called, or null
  ParamList params_;                       // what the update reads
  std::vector<Napi::Reference<Napi::Value>> pinned_;  // in place: the typed arrays read
  std::shared_ptr<ThreadPool> pool_;       // keeps cpu_.pool alive
  CpuContext cpu_;
  std::vector<size_t> non_finite_;         // what Arena::Update(Together) reported, for the promise
  Napi::Promise::Deferred deferred_;
};

}  // namespace model_ema
