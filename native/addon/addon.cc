// Module entry: builds this instance's CPU context (kernel table, thread pool) and exports the
// surface declared in binding.d.ts. Nothing here is a global: each worker_thread gets its own.
#include <napi.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

#include "addon_data.h"
#include "backends.h"
#include "shadow_arena.h"

#ifndef MODEL_EMA_VERSION
#error "MODEL_EMA_VERSION must be defined by the build (package.json's version)"
#endif

// Without it, an addon call that is running when its worker_thread is terminated (or the process
// exits) aborts the whole process: see CMakeLists.txt.
#ifndef NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS
#error "NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS must be defined by the build (CMakeLists.txt)"
#endif

namespace model_ema {

namespace {

// Arenas below this many elements are updated on the calling thread alone. bench/threshold.js
// found two threads winning from 2^19 elements when the data is in cache and from 1.5 x 2^20
// when it is not (as after a training step); waking the pool costs 10-100 us on these VMs.
constexpr size_t kDefaultParallelThreshold = 1 << 20;

size_t ParallelThresholdFromEnv() {
  const char* text = std::getenv("MODEL_EMA_PARALLEL_THRESHOLD");
  if (text == nullptr || *text == '\0') return kDefaultParallelThreshold;
  char* end = nullptr;
  unsigned long long value = std::strtoull(text, &end, 10);
  return *end == '\0' ? static_cast<size_t>(value) : kDefaultParallelThreshold;
}

unsigned ThreadCountFromEnv() {
  unsigned hardware = std::thread::hardware_concurrency();
  if (hardware == 0) hardware = 1;
  const char* text = std::getenv("MODEL_EMA_THREADS");
  if (text == nullptr || *text == '\0') return hardware;
  long value = std::strtol(text, nullptr, 10);
  return value >= 1 && value <= 256 ? static_cast<unsigned>(value) : hardware;
}

// MODEL_EMA_CPU_ISA: the best instruction set the kernels may use (a ceiling; unset or empty: the
// best this CPU has). Any other value is refused, naming the valid ones, rather than ignored.
// Checked before anything is allocated, so a refused load leaks nothing.
const char* CpuIsaCeilingFromEnv(Napi::Env env) {
  const char* text = std::getenv("MODEL_EMA_CPU_ISA");
  if (text == nullptr || *text == '\0') return nullptr;
  for (const char* valid : {"avx512bf16", "avx512", "avx2", "baseline"}) {
    if (std::strcmp(text, valid) == 0) return text;
  }
  std::string value(text);
  if (value.size() > 40) value = value.substr(0, 40) + "...";
  Napi::Error error = Napi::Error::New(
      env, "Invalid MODEL_EMA_CPU_ISA='" + value +
               "': expected one of 'avx512bf16', 'avx512', 'avx2', 'baseline' (the best instruction set the CPU "
               "kernels may use), or leave it unset for the best this CPU supports");
  error.Set("code", "ERR_MODEL_EMA_CPU_ISA");  // src/native.ts passes this error on as it is
  throw error;
}

Napi::Value CpuInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto* data = env.GetInstanceData<AddonData>();
  Napi::Object result = Napi::Object::New(env);
  result.Set("isa", data->kernels->isa);
  result.Set("threads", data->pool->threads());
  result.Set("parallelThreshold", static_cast<double>(data->parallel_threshold));
  return result;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  const char* isa_ceiling = CpuIsaCeilingFromEnv(env);
  auto* data = new AddonData();
  data->kernels = &SelectCpuKernels(isa_ceiling);
  data->pool = std::make_shared<ThreadPool>(ThreadCountFromEnv());
  data->parallel_threshold = ParallelThresholdFromEnv();
  env.SetInstanceData<AddonData>(data);  // deleted by Node when this instance's env goes away

  Napi::Function arena = ShadowArena::Define(env);
  data->arena_constructor = Napi::Persistent(arena);
  exports.Set("ShadowArena", arena);
  exports.Set("cpuInfo", Napi::Function::New<CpuInfo>(env, "cpuInfo"));
  exports.Set("backends", Napi::Function::New<Backends>(env, "backends"));
  exports.Set("cudaMemoryInfo", Napi::Function::New<CudaMemoryInfo>(env, "cudaMemoryInfo"));
  exports.Set("version", Napi::String::New(env, MODEL_EMA_VERSION));
  return exports;
}

}  // namespace

}  // namespace model_ema

// NODE_API_MODULE needs an unqualified name.
static Napi::Object InitModelEma(Napi::Env env, Napi::Object exports) {
  return model_ema::Init(env, exports);
}

NODE_API_MODULE(model_ema, InitModelEma)
