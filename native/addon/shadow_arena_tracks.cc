// updateTracks / updateTracksAsync: the native half of EmaTracks. The first arena (`this`) and the
// others share one read of the parameters (Arena::UpdateTogether); each has its own description.
// The facade passes arenas it made alike; every argument is checked again here all the same.
#include <string>

#include "args.h"
#include "shadow_arena.h"

namespace model_ema {

void ShadowArena::ReadTracks(const Napi::CallbackInfo& info, std::vector<UpdateDescription>& descriptions,
                             std::vector<Napi::Object>& others) {
  Napi::Env env = info.Env();
  if (!info[2].IsArray()) ThrowTypeError(env, "an array of ShadowArena", "others", info[2]);
  Napi::Array list = info[2].As<Napi::Array>();
  const uint32_t count = list.Length();
  for (uint32_t i = 0; i < count; ++i) {
    std::string arg = "others[" + std::to_string(i) + "]";
    Napi::Value item = list.Get(i);
    FromValue(item, arg);  // type check now; usability after every getter ran (TrackArenas)
    others.push_back(item.As<Napi::Object>());
  }
  if (!info[1].IsArray() || info[1].As<Napi::Array>().Length() != count + 1) {
    ThrowTypeError(env, "an array of " + std::to_string(count + 1) + " update descriptions (this arena's, then one per other)",
                   "descriptions", info[1]);
  }
  Napi::Array items = info[1].As<Napi::Array>();
  for (uint32_t i = 0; i <= count; ++i) {
    std::string arg = "descriptions[" + std::to_string(i) + "]";
    try {
      descriptions.push_back(ParseUpdateDescription(items.Get(i), arg.c_str()));
    } catch (Napi::Error& e) {
      // Its fields' errors name the field alone ("for decay"): say which description.
      e.Value().Set("message", arg + ": " + e.Message());
      throw;
    }
  }
}

std::vector<ShadowArena*> ShadowArena::TrackArenas(Napi::Env env, const std::vector<Napi::Object>& others, const char* method) {
  const ArenaLayout& layout = Usable(env, method);
  std::vector<ShadowArena*> arenas{this};
  for (size_t i = 0; i < others.size(); ++i) {
    const std::string arg = "others[" + std::to_string(i) + "]";
    ShadowArena* other = FromValue(others[i], arg);
    for (ShadowArena* seen : arenas) {
      // Twice the same arena would be updated twice, by threads racing on its memory.
      if (seen == other) ThrowTypeError(env, "an arena not already in the list (nor this one)", arg, others[i]);
    }
    const ArenaLayout& theirs = other->Usable(env, method);
    if (theirs.sizes() != layout.sizes() || theirs.dtype() != layout.dtype() || other->device_ != device_) {
      ThrowRangeError(env, "an arena of this one's sizes, dtype and device", arg,
                      std::string(DTypeName(theirs.dtype())) + " arena of " + std::to_string(theirs.tensor_count()) +
                          " tensors, " + std::to_string(theirs.numel()) + " elements, device " + std::to_string(other->device_));
    }
    arenas.push_back(other);
  }
  return arenas;
}

Napi::Value ShadowArena::UpdateTracks(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::vector<Napi::Value> items = ParamItems(info[0], "params", Usable(env, "updateTracks").tensor_count());
  std::vector<UpdateDescription> descriptions;
  std::vector<Napi::Object> others;
  ReadTracks(info, descriptions, others);
  std::vector<Arena*> arenas;
  for (ShadowArena* a : TrackArenas(env, others, "updateTracks")) arenas.push_back(a->arena_.get());  // after the getters
  ParamList params = ParseParams(env, items, "params", arena_->layout());
  std::vector<size_t> counts = Arena::UpdateTogether(Cpu(), params, arenas, descriptions);
  Napi::Array result = Napi::Array::New(env, counts.size());
  for (size_t i = 0; i < counts.size(); ++i) result.Set(static_cast<uint32_t>(i), static_cast<double>(counts[i]));
  return result;
}

Napi::Value ShadowArena::UpdateTracksAsync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::vector<Napi::Value> items = ParamItems(info[0], "params", Usable(env, "updateTracksAsync").tensor_count());
  std::vector<UpdateDescription> descriptions;
  std::vector<Napi::Object> others;
  ReadTracks(info, descriptions, others);
  const bool in_place = ParseInPlace(info[3]);
  std::vector<ShadowArena*> arenas = TrackArenas(env, others, "updateTracksAsync");  // again: getters ran JS
  ParamList params = ParseParams(env, items, "params", arena_->layout());
  std::vector<AsyncTarget> targets;
  targets.push_back({info.This().As<Napi::Object>(), this, arena_, descriptions[0]});
  for (size_t i = 0; i < others.size(); ++i) targets.push_back({others[i], arenas[i + 1], arenas[i + 1]->arena_, descriptions[i + 1]});
  return QueueAsyncUpdate(env, std::move(targets), true, items, params, in_place);
}

}  // namespace model_ema
