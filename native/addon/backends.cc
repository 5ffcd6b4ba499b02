#include "backends.h"

#include "addon_data.h"

namespace model_ema {

Napi::Value Backends(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto* data = env.GetInstanceData<AddonData>();
  Napi::Array list = Napi::Array::New(env, 2);

  Napi::Object cpu = Napi::Object::New(env);
  cpu.Set("name", "cpu");
  cpu.Set("compiled", true);
  cpu.Set("available", true);
  cpu.Set("isa", data->kernels->isa);
  cpu.Set("threads", data->pool->threads());
  list.Set(0u, cpu);

  // The CUDA backend is its own piece of work; until it is built in, say so plainly.
  Napi::Object cuda = Napi::Object::New(env);
  cuda.Set("name", "cuda");
  cuda.Set("compiled", false);
  cuda.Set("available", false);
  cuda.Set("reason", "this build of model-ema has no CUDA kernels");
  list.Set(1u, cuda);
  return list;
}

}  // namespace model_ema
