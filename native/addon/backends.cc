#include "backends.h"

#include <algorithm>

#include "../kernels/cuda/device_arena.h"
#include "addon_data.h"
#include "args.h"

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

  // Asked afresh each time (the CUDA runtime caches what it found), and only when asked: loading
  // the addon never touches CUDA.
  const CudaStatus status = QueryCuda();
  Napi::Object cuda = Napi::Object::New(env);
  cuda.Set("name", "cuda");
  cuda.Set("compiled", status.compiled);
  cuda.Set("available", status.available);
  if (!status.available) cuda.Set("reason", status.reason);
  if (status.available) {
    Napi::Array devices = Napi::Array::New(env, status.devices.size());
    for (size_t i = 0; i < status.devices.size(); ++i) {
      Napi::Object device = Napi::Object::New(env);
      device.Set("index", status.devices[i].index);
      device.Set("name", status.devices[i].name);
      device.Set("totalMemory", static_cast<double>(status.devices[i].total_memory));
      devices.Set(static_cast<uint32_t>(i), device);
    }
    cuda.Set("devices", devices);
  }
  list.Set(1u, cuda);
  return list;
}

Napi::Value CudaMemoryInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  size_t device = ParseIndex(info[0], "device", SIZE_MAX);
  DeviceMemoryInfo memory{0, 0};
  try {
    memory = QueryDeviceMemory(static_cast<int>(std::min<size_t>(device, 1 << 20)));
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, e.what());
  }
  Napi::Object result = Napi::Object::New(env);
  result.Set("free", static_cast<double>(memory.free));
  result.Set("total", static_cast<double>(memory.total));
  return result;
}

}  // namespace model_ema
