#include "snapshot_copy.h"

#include <cstdint>
#include <cstring>

#include "../kernels/pieces.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define MODEL_EMA_STREAMING_STORES 1
#endif

namespace model_ema {

namespace {

// `bytes` from `from` to `to`, streaming the stores where the destination is 16-byte aligned (SSE2,
// part of every x86-64 CPU). Elsewhere, and on other architectures, a plain memcpy.
void StreamCopy(void* to, const void* from, size_t bytes) {
#if MODEL_EMA_STREAMING_STORES
  auto* out = static_cast<uint8_t*>(to);
  const auto* in = static_cast<const uint8_t*>(from);
  const size_t head = (16 - reinterpret_cast<uintptr_t>(out) % 16) % 16;
  if (head >= bytes || bytes < 256) {  // small pieces: not worth the fence
    std::memcpy(out, in, bytes);
    return;
  }
  std::memcpy(out, in, head);
  size_t i = head;
  for (; i + 64 <= bytes; i += 64) {
    const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(in + i));
    const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(in + i + 16));
    const __m128i c = _mm_loadu_si128(reinterpret_cast<const __m128i*>(in + i + 32));
    const __m128i d = _mm_loadu_si128(reinterpret_cast<const __m128i*>(in + i + 48));
    _mm_stream_si128(reinterpret_cast<__m128i*>(out + i), a);
    _mm_stream_si128(reinterpret_cast<__m128i*>(out + i + 16), b);
    _mm_stream_si128(reinterpret_cast<__m128i*>(out + i + 32), c);
    _mm_stream_si128(reinterpret_cast<__m128i*>(out + i + 48), d);
  }
  std::memcpy(out + i, in + i, bytes - i);
  // Streaming stores are weakly ordered: make them visible before the pool reports this piece done
  // (the worker thread that reads the snapshot synchronises with that report).
  _mm_sfence();
#else
  std::memcpy(to, from, bytes);
#endif
}

}  // namespace

void SnapshotParams(const CpuContext& cpu, const ParamList& params, HostArena& snapshot) {
  const DType dtype = snapshot.dtype();
  const size_t size = DTypeSize(dtype);
  ForEachPiece(cpu, snapshot.layout(), [&](size_t t, size_t first, size_t count) {
    const ParamBuffer& p = params[t];
    const uint8_t* from = static_cast<const uint8_t*>(p.data) + first * ParamTypeSize(p.type);
    uint8_t* to = static_cast<uint8_t*>(snapshot.tensor(t)) + first * size;
    if (AsDType(p.type) == dtype) {
      StreamCopy(to, from, count * size);
    } else {
      cpu.kernels->convert(AsDType(p.type), dtype, from, to, count);
    }
  });
}

}  // namespace model_ema
