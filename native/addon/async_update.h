// updateAsync's work item: averages a snapshot of the parameters into the shadows (host or
// device) on a libuv thread. It reads only native memory that it co-owns (the arena, the snapshot, the pool), never a
// JS value, so nothing the caller does to its buffers meanwhile can tear the shadows.
#pragma once

#include <napi.h>

#include <memory>

#include "../kernels/arena.h"
#include "../kernels/cpu_ops.h"
#include "../kernels/thread_pool.h"
#include "../kernels/cuda/device_arena.h"

namespace model_ema {

class ShadowArena;

class AsyncUpdate : public Napi::AsyncWorker {
 public:
  // Exactly one of `shadows` and `device_shadows` is set.
  AsyncUpdate(const Napi::Object& owner_object, ShadowArena* owner, std::shared_ptr<Arena> shadows,
              std::shared_ptr<DeviceArena> device_shadows, std::shared_ptr<Arena> snapshot,
              std::shared_ptr<ThreadPool> pool, CpuContext cpu, double decay);

  Napi::Promise Promise() const { return deferred_.Promise(); }

 protected:
  void Execute() override;
  void OnOK() override;
  void OnError(const Napi::Error& error) override;

 private:
  ShadowArena* owner_;
  Napi::ObjectReference owner_reference_;  // keeps owner_ from being collected while in flight
  std::shared_ptr<Arena> shadows_;
  std::shared_ptr<DeviceArena> device_shadows_;
  std::shared_ptr<Arena> snapshot_;
  std::shared_ptr<ThreadPool> pool_;
  CpuContext cpu_;
  double decay_;
  Napi::Promise::Deferred deferred_;
};

}  // namespace model_ema
