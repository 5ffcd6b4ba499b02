// The JS-visible arena object: one Arena of shadows (or backups), in host memory or in a CUDA
// device's memory, plus the entry points that check their arguments and run the whole-arena
// operations over a list of parameter buffers. It holds the arena through the Arena interface
// only: every method works on both kinds alike; parameters are always host typed arrays.
#pragma once

#include <napi.h>

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "../kernels/arena.h"
#include "../kernels/host_arena.h"
#include "addon_data.h"
#include "async_update.h"

namespace model_ema {

class ShadowArena : public Napi::ObjectWrap<ShadowArena> {
 public:
  static Napi::Function Define(Napi::Env env);
  // Hides ObjectWrap::Unwrap so that every method checks the type tag first: a `this` that is not
  // a ShadowArena (another addon's wrapped object included) is a TypeError, never a wild cast.
  static ShadowArena* Unwrap(Napi::Object object);
  // `value` as a ShadowArena, after the same check; a TypeError naming `arg` otherwise.
  static ShadowArena* FromValue(const Napi::Value& value, const std::string& arg);

  explicit ShadowArena(const Napi::CallbackInfo& info);
  ~ShadowArena() override;

  // Called by the async update when its work is done.
  void FinishAsync() { busy_ = false; }
  // Called by each async write when its work is done.
  void FinishWrite() { --writes_in_flight_; }

 private:
  Napi::Value Update(const Napi::CallbackInfo& info);
  Napi::Value UpdateAsync(const Napi::CallbackInfo& info);
  // EmaTracks (shadow_arena_tracks.cc): this arena and info[2]'s others, one description each
  // (info[1]), updated from one read of the parameters (Arena::UpdateTogether).
  Napi::Value UpdateTracks(const Napi::CallbackInfo& info);
  Napi::Value UpdateTracksAsync(const Napi::CallbackInfo& info);
  Napi::Value CopyFrom(const Napi::CallbackInfo& info);
  Napi::Value CopyTo(const Napi::CallbackInfo& info);
  Napi::Value CopyFromArena(const Napi::CallbackInfo& info);
  Napi::Value Read(const Napi::CallbackInfo& info);
  Napi::Value ReadBytes(const Napi::CallbackInfo& info);
  Napi::Value WriteBytes(const Napi::CallbackInfo& info);
  Napi::Value ReadBytesInto(const Napi::CallbackInfo& info);
  Napi::Value WriteBytesAt(const Napi::CallbackInfo& info);
  Napi::Value WriteBytesAtAsync(const Napi::CallbackInfo& info);
  Napi::Value Cast(const Napi::CallbackInfo& info);
  Napi::Value ToDevice(const Napi::CallbackInfo& info);
  Napi::Value CountNonFinite(const Napi::CallbackInfo& info);
  Napi::Value Dispose(const Napi::CallbackInfo& info);

  Napi::Value GetDType(const Napi::CallbackInfo& info);
  Napi::Value GetDevice(const Napi::CallbackInfo& info);
  Napi::Value GetSizes(const Napi::CallbackInfo& info);
  Napi::Value GetNumel(const Napi::CallbackInfo& info);
  Napi::Value GetByteLength(const Napi::CallbackInfo& info);
  Napi::Value GetThreads(const Napi::CallbackInfo& info);
  void SetThreads(const Napi::CallbackInfo& info, const Napi::Value& value);
  Napi::Value GetDisposed(const Napi::CallbackInfo& info);
  Napi::Value GetBusy(const Napi::CallbackInfo& info);

  // The arena's layout, after checking it is neither disposed nor in use by async work (async
  // writes are allowed alongside each other when `writing`).
  const ArenaLayout& Usable(Napi::Env env, const char* method, bool writing = false);
  // info[0] read as the parameters in the two phases of ParamItems; `read_more` reads any other
  // argument whose reading can run JS, between the phases.
  template <typename ReadMore>
  ParamList Params(const Napi::CallbackInfo& info, const char* method, const ReadMore& read_more);
  const ArenaLayout* Layout() const;  // null once disposed
  // updateTracks' arguments: the descriptions and the other arenas (read in phase 1 of the
  // parameters), then the arenas checked (phase 2) and returned, this one first.
  void ReadTracks(const Napi::CallbackInfo& info, std::vector<UpdateDescription>& descriptions,
                  std::vector<Napi::Object>& others);
  std::vector<ShadowArena*> TrackArenas(Napi::Env env, const std::vector<Napi::Object>& others, const char* method);
  static bool ParseInPlace(const Napi::Value& value);
  // Snapshots the parameters (unless in place), marks the targets busy and queues the work.
  Napi::Value QueueAsyncUpdate(Napi::Env env, std::vector<AsyncTarget> targets, bool several,
                               const std::vector<Napi::Value>& items, ParamList params, bool in_place);
  // info[1] (elementOffset) and info[2] (a Uint8Array of whole elements, named `bytes_arg` in errors)
  // checked against tensor `t`: the byte range they name, and the typed array's data.
  struct ByteRange {
    size_t offset;
    size_t length;
    uint8_t* data;
  };
  ByteRange TensorByteRange(const Napi::CallbackInfo& info, const ArenaLayout& layout, size_t t, const char* bytes_arg);
  Napi::Array SizesArray(Napi::Env env) const;  // empty once disposed
  CpuContext Cpu() const;
  // A new arena object of this one's sizes and thread count, with `dtype`, on `device` (-1: host),
  // holding this one's values (converted when the dtype differs).
  Napi::Object CopyAs(Napi::Env env, DType dtype, int device);
  void ReleaseMemory();

  AddonData* addon_;
  std::shared_ptr<Arena> arena_;  // null once disposed; shared with in-flight async work
  int device_ = -1;               // CUDA device index, -1 for host memory (kept after dispose)
  // The parameters as updateAsync read them, reused across calls (fresh pages are expensive).
  std::shared_ptr<HostArena> snapshot_;
  int64_t reported_bytes_ = 0;    // external memory reported to V8
  unsigned threads_ = 1;
  bool busy_ = false;
  // writeBytesAtAsync copies in flight: they may overlap each other, nothing else may run meanwhile.
  unsigned writes_in_flight_ = 0;
  std::shared_ptr<std::mutex> write_lock_ = std::make_shared<std::mutex>();  // held by each async write's copy
};

}  // namespace model_ema
