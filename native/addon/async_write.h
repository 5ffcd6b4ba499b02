// writeBytesAtAsync's work item: copies bytes into part of one tensor on a libuv thread, so that a
// checkpoint load checksums the next chunk on the JS thread while this one is copied (copies into
// a new arena's fresh pages are the slow part of a load). The bytes are read where they are, in a
// SharedArrayBuffer (memory that cannot be detached, transferred or shrunk) that the item keeps
// referenced until it settles.
#pragma once

#include <napi.h>

#include <memory>
#include <mutex>

#include "../kernels/arena.h"

namespace model_ema {

class ShadowArena;

class AsyncWrite : public Napi::AsyncWorker {
 public:
  // `data` (`length` bytes) lies in the SharedArrayBuffer under `bytes`; the range was checked.
  AsyncWrite(const Napi::Object& owner_object, ShadowArena* owner, std::shared_ptr<Arena> arena,
             std::shared_ptr<std::mutex> lock, size_t tensor, size_t offset, size_t length, const uint8_t* data,
             const Napi::Value& bytes);

  Napi::Promise Promise() const { return deferred_.Promise(); }

 protected:
  void Execute() override;
  void OnOK() override;
  void OnError(const Napi::Error& error) override;

 private:
  ShadowArena* owner_;
  Napi::ObjectReference owner_reference_;  // keeps owner_ from being collected while in flight
  std::shared_ptr<Arena> arena_;
  // One write into an arena at a time: a device arena's copies share its stream and are not thread-safe.
  std::shared_ptr<std::mutex> lock_;
  size_t tensor_;
  size_t offset_;
  size_t length_;
  const uint8_t* data_;
  Napi::Reference<Napi::Value> bytes_;  // keeps the SharedArrayBuffer alive
  Napi::Promise::Deferred deferred_;
};

}  // namespace model_ema
