#include "async_write.h"

#include <exception>

#include "shadow_arena.h"

namespace model_ema {

AsyncWrite::AsyncWrite(const Napi::Object& owner_object, ShadowArena* owner, std::shared_ptr<Arena> arena,
                       std::shared_ptr<std::mutex> lock, size_t tensor, size_t offset, size_t length, const uint8_t* data,
                       const Napi::Value& bytes)
    : Napi::AsyncWorker(owner_object.Env(), "model-ema:writeBytesAtAsync"),
      owner_(owner),
      owner_reference_(Napi::Persistent(owner_object)),
      arena_(std::move(arena)),
      lock_(std::move(lock)),
      tensor_(tensor),
      offset_(offset),
      length_(length),
      data_(data),
      bytes_(Napi::Persistent(bytes)),
      deferred_(Napi::Promise::Deferred::New(owner_object.Env())) {}

void AsyncWrite::Execute() {
  try {
    std::lock_guard<std::mutex> hold(*lock_);
    arena_->WriteTensorRange(tensor_, offset_, length_, data_);
  } catch (const std::exception& e) {
    SetError(e.what());
  } catch (...) {  // node-addon-api catches only std::exception: anything else would abort the process
    SetError("writeBytesAtAsync failed with an unknown native exception");
  }
}

// As AsyncUpdate's: settling can throw while a worker_thread's environment shuts down.
void AsyncWrite::OnOK() {
  owner_->FinishWrite();
  try {
    deferred_.Resolve(Env().Undefined());
  } catch (const Napi::Error&) {
  }
}

void AsyncWrite::OnError(const Napi::Error& error) {
  owner_->FinishWrite();
  try {
    deferred_.Reject(error.Value());
  } catch (const Napi::Error&) {
  }
}

}  // namespace model_ema
